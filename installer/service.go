package installer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kardianos/service"
)

// systemdUnit is the unit install writes where systemd is the init
// (kardianos' SystemdScript option, rendered by its template engine;
// testdata/stationsync.service.golden is what it renders). A node that
// exits with an error is restarted after 10 s, forever: a station PC has
// nobody to restart it.
const systemdUnit = `[Unit]
Description={{Description}}
ConditionFileIsExecutable={{Path | cmdEscape}}
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}
{{range EnvVars}}{{.}}
{{end}}Restart=on-failure
RestartSec=10
TimeoutStopSec=20

[Install]
WantedBy=multi-user.target
`

// serviceConfig is the service definition for running exe with the config
// file configPath.
func serviceConfig(exe, configPath string) *service.Config {
	c := &service.Config{
		Name:        Name,
		DisplayName: "stationsync",
		Description: "stationsync: replicates a service station's item list and case records between its PCs",
		Executable:  exe,
		Arguments:   []string{"run", "--config", configPath},
		Option: service.KeyValue{
			// Windows: start after boot has settled, restart 10 s after
			// every failure (the last recovery action repeats), the
			// failure count reset after a day without one.
			"StartType":              "automatic",
			"DelayedAutoStart":       true,
			"OnFailure":              "restart",
			"OnFailureDelayDuration": "10s",
			"OnFailureResetPeriod":   86400,
			// systemd: our unit (Restart=on-failure).
			"SystemdScript": systemdUnit,
			// launchd: start at boot, restart when it exits.
			"RunAtLoad": true,
			"KeepAlive": true,
		},
	}
	if runtime.GOOS != "windows" {
		c.EnvVars = map[string]string{ServiceEnv: "1"}
	}
	return c
}

// control is the kardianos service for install and control commands
// (they do not run the program).
func control() (service.Service, error) {
	s, err := service.New(noProgram{}, &service.Config{Name: Name})
	if err != nil {
		return nil, fmt.Errorf("service manager: %w", err)
	}
	return s, nil
}

type noProgram struct{}

func (noProgram) Start(service.Service) error { return nil }
func (noProgram) Stop(service.Service) error  { return nil }

// systemdUnitPath is where kardianos writes the unit.
const systemdUnitPath = "/etc/systemd/system/" + Name + ".service"

// Platform names the service manager kardianos chose on this machine
// ("windows-service", "linux-systemd", "unix-systemv", "darwin-launchd", ...).
func Platform() string {
	if s := service.ChosenSystem(); s != nil {
		return s.String()
	}
	return "none"
}

// State is the service's state.
type State string

// The states Status reports.
const (
	NotInstalled State = "not installed"
	Running      State = "running"
	Stopped      State = "stopped"
	Installed    State = "installed" // but its state could not be read (Detail says why)
)

// Status is the service's state as the service manager sees it.
type Status struct {
	State    State
	Platform string
	Detail   string
}

func (s Status) String() string {
	line := fmt.Sprintf("service %s (%s): %s", Name, s.Platform, s.State)
	if s.Detail != "" {
		line += " (" + s.Detail + ")"
	}
	return line
}

// QueryStatus asks the service manager for the service's state. It needs
// no administrator rights.
func QueryStatus() Status {
	st := Status{Platform: Platform()}
	if st.Platform == sysvPlatform {
		st.State, st.Detail = sysvStatus()
		return st
	}
	s, err := control()
	if err != nil {
		st.State, st.Detail = Installed, err.Error()
		return st
	}
	ks, err := s.Status()
	switch {
	case errors.Is(err, service.ErrNotInstalled) && st.Platform == "linux-systemd" && exists(systemdUnitPath):
		// kardianos reads any ActiveState it does not know
		// ("deactivating", "reloading") as not installed.
		st.State, st.Detail = Installed, "systemctl is-active: neither active nor inactive"
	case errors.Is(err, service.ErrNotInstalled):
		st.State = NotInstalled
	case err != nil && strings.Contains(err.Error(), "failed state"):
		st.State, st.Detail = Stopped, "failed"
	case err != nil:
		st.State, st.Detail = Installed, err.Error()
	case ks == service.StatusRunning:
		st.State = Running
	case ks == service.StatusStopped:
		st.State = Stopped
	default:
		st.State = Installed
	}
	return st
}

// InstallOptions are install's arguments.
type InstallOptions struct {
	ConfigFile string // the config to install (required)
	ConfigDir  string // empty: ConfigDir()
	Executable string // empty: this executable
}

// Install registers the service: it copies the config (and its TLS and
// key files) into the config folder (see planInstall), then registers
// `<executable> run --config <config>` to start at boot. It does not start
// it.
func Install(o InstallOptions, out io.Writer) error {
	if err := RequireAdmin("install"); err != nil {
		return err
	}
	if o.ConfigFile == "" {
		return errors.New("install: --config FILE is required")
	}
	if o.ConfigDir == "" {
		o.ConfigDir = ConfigDir()
	}
	if st := QueryStatus(); st.State != NotInstalled {
		return fmt.Errorf("install: %s; run stationsync uninstall first (it keeps data and config)", st)
	}
	exe := o.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("install: this program's path: %w", err)
		}
	}
	exe = absClean(exe)
	plan, err := planInstall(o.ConfigFile, o.ConfigDir)
	if err != nil {
		return err
	}
	if err := plan.apply(out); err != nil {
		return err
	}
	s, err := service.New(noProgram{}, serviceConfig(exe, plan.config))
	if err != nil {
		return fmt.Errorf("install: service manager: %w", err)
	}
	if Platform() == sysvPlatform {
		// A minimal system (a container) may have no /etc/init.d yet.
		if err := os.MkdirAll(filepath.Dir(sysvScript), 0o755); err != nil {
			return fmt.Errorf("install: %w", err)
		}
	}
	if err := s.Install(); err != nil {
		return fmt.Errorf("install: %s: %w", Platform(), err)
	}
	fmt.Fprintf(out, "service %s installed (%s): %s run --config %s\n", Name, Platform(), exe, plan.config)
	fmt.Fprintf(out, "it starts at boot; it runs the program where it is now: keep it there\n")
	if Platform() == sysvPlatform {
		fmt.Fprintln(out, "note: SysV init does not restart a node that exits; systemd and Windows do")
	}
	fmt.Fprintln(out, "start it now: stationsync start")
	return nil
}

// UninstallOptions are uninstall's arguments.
type UninstallOptions struct {
	Purge     bool   // also remove the config folder and the data folder
	ConfigDir string // empty: ConfigDir()
}

// Uninstall stops the service and removes it. Data and config stay unless
// Purge.
func Uninstall(o UninstallOptions, out io.Writer) error {
	if err := RequireAdmin("uninstall"); err != nil {
		return err
	}
	if o.ConfigDir == "" {
		o.ConfigDir = ConfigDir()
	}
	st := QueryStatus()
	if st.State == NotInstalled {
		if !o.Purge {
			return fmt.Errorf("uninstall: service %s is not installed", Name)
		}
		fmt.Fprintf(out, "service %s is not installed\n", Name)
	} else {
		if st.State == Running {
			if err := stopAndWait(out); err != nil {
				return fmt.Errorf("uninstall: %w", err)
			}
		}
		s, err := control()
		if err != nil {
			return fmt.Errorf("uninstall: %w", err)
		}
		if err := s.Uninstall(); err != nil {
			return fmt.Errorf("uninstall: %s: %w", Platform(), err)
		}
		if Platform() == sysvPlatform {
			sysvRemoveLinks()
		}
		fmt.Fprintf(out, "service %s removed\n", Name)
	}
	if o.Purge {
		return purge(o.ConfigDir, out)
	}
	fmt.Fprintf(out, "kept the config (%s) and the data; stationsync uninstall --purge removes them\n", o.ConfigDir)
	return nil
}

// startCheck is how long start watches the service after starting it: a
// node that cannot open (a wrong certificate, a port in use) exits at once.
const startCheck = 3 * time.Second

// Start starts the installed service and checks it keeps running for a
// moment.
func Start(out io.Writer) error {
	if err := RequireAdmin("start"); err != nil {
		return err
	}
	switch st := QueryStatus(); st.State {
	case NotInstalled:
		return fmt.Errorf("start: service %s is not installed: run stationsync install --config FILE first", Name)
	case Running:
		fmt.Fprintf(out, "service %s is already running\n", Name)
		return nil
	}
	s, err := control()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("start: %s: %w", Platform(), err)
	}
	deadline := time.Now().Add(startCheck)
	for {
		time.Sleep(250 * time.Millisecond)
		if st := QueryStatus(); st.State == Stopped || systemdRestarting() {
			return fmt.Errorf("start: service %s stopped right after it started: see %s", Name, logHint())
		}
		if time.Now().After(deadline) {
			break
		}
	}
	fmt.Fprintf(out, "service %s started\n", Name)
	return nil
}

// Stop stops the service and waits until it has.
func Stop(out io.Writer) error {
	if err := RequireAdmin("stop"); err != nil {
		return err
	}
	switch st := QueryStatus(); st.State {
	case NotInstalled:
		return fmt.Errorf("stop: service %s is not installed", Name)
	case Stopped:
		fmt.Fprintf(out, "service %s is not running\n", Name)
		return nil
	}
	if err := stopAndWait(out); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}

func stopAndWait(out io.Writer) error {
	s, err := control()
	if err != nil {
		return err
	}
	if err := s.Stop(); err != nil {
		return fmt.Errorf("%s: %w", Platform(), err)
	}
	deadline := time.Now().Add(StopTimeout + 5*time.Second)
	for st := QueryStatus(); st.State != Stopped && st.State != NotInstalled; st = QueryStatus() {
		if time.Now().After(deadline) {
			return fmt.Errorf("service %s is still running %v after it was told to stop", Name, StopTimeout+5*time.Second)
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Fprintf(out, "service %s stopped\n", Name)
	return nil
}

// systemdRestarting reports whether systemd is waiting to restart the
// node after it exited (systemctl is-active says "activating" then).
func systemdRestarting() bool {
	if Platform() != "linux-systemd" {
		return false
	}
	out, err := exec.Command("systemctl", "show", Name, "-p", "SubState", "--value").Output()
	return err == nil && strings.TrimSpace(string(out)) == "auto-restart"
}

// logHint says where a failed start is explained.
func logHint() string {
	switch Platform() {
	case "windows-service":
		return `the Windows Event Log (Application, source stationsync) and stationsync.log in the data folder (default ` + DataDir() + `)`
	case sysvPlatform:
		return "syslog, /var/log/" + Name + ".err and " + LogFile + " in the data folder (default " + DataDir() + ")"
	case "linux-systemd":
		return "journalctl -u " + Name + " and " + LogFile + " in the data folder (default " + DataDir() + ")"
	}
	return "the system log and " + LogFile + " in the data folder (default " + DataDir() + ")"
}
