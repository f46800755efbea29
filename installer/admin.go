package installer

import (
	"fmt"
	"runtime"
)

// isAdmin reports whether this process may install and control services
// (root on Unix, an elevated token on Windows). A variable for tests.
var isAdmin = processIsAdmin

// RequireAdmin returns a one-line error for command (install, uninstall,
// start, stop) when the process lacks administrator rights.
func RequireAdmin(command string) error {
	if isAdmin() {
		return nil
	}
	return adminError(command, runtime.GOOS)
}

func adminError(command, goos string) error {
	if goos == "windows" {
		return fmt.Errorf("%s needs administrator rights: open Command Prompt with \"Run as administrator\" and run stationsync %s again", command, command)
	}
	return fmt.Errorf("%s needs administrator rights: run it as root (sudo stationsync %s ...)", command, command)
}
