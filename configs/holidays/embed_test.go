package holidays

import (
	"strings"
	"testing"
)

func TestDefault(t *testing.T) {
	files, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	b, ok := files["2026.yaml"]
	if !ok {
		t.Fatalf("2026.yaml not embedded; have %d files", len(files))
	}
	if !strings.Contains(string(b), "year: 2026") {
		t.Errorf("2026.yaml does not declare year: 2026")
	}
	if !strings.Contains(string(b), "VERIFY") {
		t.Errorf("2026.yaml lost its verification warning")
	}
	for name := range files {
		if !strings.HasSuffix(name, ".yaml") {
			t.Errorf("unexpected embedded file %q", name)
		}
	}
}
