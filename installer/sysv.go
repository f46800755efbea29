package installer

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// sysvPlatform is kardianos' name for SysV init, its choice where no other
// init system is detected (Debian without systemd, containers).
const sysvPlatform = "unix-systemv"

// sysvScript is where kardianos writes the init script.
var sysvScript = "/etc/init.d/" + Name

// sysvStatus reads the state from the init script. kardianos' own Status
// reports a stopped SysV service as an error (the script's "status" exits
// 1 when stopped) and cannot tell it from one not installed.
func sysvStatus() (State, string) {
	if _, err := os.Stat(sysvScript); err != nil {
		return NotInstalled, ""
	}
	out, err := exec.Command(sysvScript, "status").Output()
	switch s := strings.TrimSpace(string(out)); {
	case strings.HasPrefix(s, "Running"):
		return Running, ""
	case strings.HasPrefix(s, "Stopped"):
		return Stopped, ""
	case err != nil:
		return Installed, sysvScript + " status: " + err.Error()
	default:
		return Installed, sysvScript + " status: " + s
	}
}

// sysvRemoveLinks removes the /etc/rc?.d links kardianos made at install
// (its Uninstall removes only the script, leaving them dangling).
func sysvRemoveLinks() {
	links, _ := filepath.Glob("/etc/rc?.d/[SK][0-9][0-9]" + Name)
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && target == sysvScript {
			os.Remove(l)
		}
	}
}
