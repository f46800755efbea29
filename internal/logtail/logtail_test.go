package logtail

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.log")
	if err := os.WriteFile(path, []byte("one\ntwo\nthree\nfour\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Tail(path, 2); got != "three\nfour" {
		t.Errorf("Tail(2) = %q, want the last two lines", got)
	}
	if got := Tail(path, 10); got != "one\ntwo\nthree\nfour" {
		t.Errorf("Tail(10) = %q, want the whole file", got)
	}
	if got := Tail(filepath.Join(t.TempDir(), "missing.log"), 2); !strings.HasPrefix(got, "(no log: ") {
		t.Errorf("Tail of a missing file = %q, want why it cannot", got)
	}
}
