package installer

import (
	"io"
	"strings"
	"testing"
)

func TestRequireAdminRefusesWithOneLine(t *testing.T) {
	old := isAdmin
	t.Cleanup(func() { isAdmin = old })

	isAdmin = func() bool { return true }
	if err := RequireAdmin("install"); err != nil {
		t.Fatalf("admin refused: %v", err)
	}

	isAdmin = func() bool { return false }
	for _, tc := range []struct{ cmd, goos, want string }{
		{"install", "linux", "install needs administrator rights: run it as root (sudo stationsync install ...)"},
		{"stop", "linux", "stop needs administrator rights: run it as root (sudo stationsync stop ...)"},
		{"uninstall", "windows", `uninstall needs administrator rights: open Command Prompt with "Run as administrator" and run stationsync uninstall again`},
	} {
		if got := adminError(tc.cmd, tc.goos).Error(); got != tc.want {
			t.Errorf("%s on %s:\n got %q\nwant %q", tc.cmd, tc.goos, got, tc.want)
		}
	}
	// Every command that changes the service refuses before doing anything.
	for name, fn := range map[string]func() error{
		"install":   func() error { return Install(InstallOptions{ConfigFile: "does-not-matter.yaml"}, io.Discard) },
		"uninstall": func() error { return Uninstall(UninstallOptions{Purge: true}, io.Discard) },
		"start":     func() error { return Start(io.Discard) },
		"stop":      func() error { return Stop(io.Discard) },
	} {
		err := fn()
		if err == nil || !strings.HasPrefix(err.Error(), name+" needs administrator rights: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s without admin rights: %v", name, err)
		}
	}
}
