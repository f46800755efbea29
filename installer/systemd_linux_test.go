//go:build linux

package installer

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/kardianos/service"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestSystemdUnitGolden renders the unit through kardianos' own systemd
// backend (as a user service under a temporary HOME, with a systemctl that
// does nothing), so what is compared is exactly what install writes to
// /etc/systemd/system/stationsync.service. Rewrite with
// go test ./installer -run Golden -update.
func TestSystemdUnitGolden(t *testing.T) {
	var systemd service.System
	for _, s := range service.AvailableSystems() {
		if s.String() == "linux-systemd" {
			systemd = s
		}
	}
	if systemd == nil {
		t.Fatal("kardianos has no linux-systemd backend")
	}
	home, bin := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	c := serviceConfig("/opt/stationsync/stationsync", "/etc/stationsync/station.yaml")
	c.Option["UserService"] = true // only where the file goes: ~/.config/systemd/user
	s, err := systemd.New(noProgram{}, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Install(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(home, ".config", "systemd", "user", Name+".service"))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "stationsync.service.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (create it with -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("rendered unit differs from %s (rewrite with -update if intended)\n--- got\n%s--- want\n%s", golden, got, want)
	}
}
