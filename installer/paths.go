package installer

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/stationsync/stationsync/daemon"
)

// Name is the service's name in every service manager.
const Name = "stationsync"

// ServiceEnv is set (to "1") in the service's environment by every service
// definition install writes except the Windows one, where the service
// manager is always detected. It makes `run` take the service path even
// where kardianos cannot tell (in a container, where it reports every
// process as interactive, and in the moment before a SysV script's shell
// exits). It must not start with STATIONSYNC_: the node reads every such
// variable as a config key.
const ServiceEnv = "SERVICE_STATIONSYNC"

// LogFile is the name of the service's rotating log in the data folder.
const LogFile = "stationsync.log"

// ConfigDir is the per-OS config folder: %ProgramData%\stationsync on
// Windows (config, certificates and data together), /etc/stationsync
// elsewhere (config and certificates; data in /var/lib/stationsync).
func ConfigDir() string {
	if runtime.GOOS == "windows" {
		return daemon.DefaultDataDir()
	}
	return "/etc/stationsync"
}

// DataDir is the per-OS data folder used when the config's data_dir is
// empty.
func DataDir() string { return daemon.DefaultDataDir() }

// samePath reports whether a and b name the same path (case-insensitive on
// Windows); both are made absolute and clean first.
func samePath(a, b string) bool {
	a, b = absClean(a), absClean(b)
	if runtime.GOOS == "windows" {
		return strings.EqualFold(a, b)
	}
	return a == b
}

func absClean(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return filepath.Clean(p)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
