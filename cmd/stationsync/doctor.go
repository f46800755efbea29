package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/stationsync/stationsync/daemon"
	"github.com/stationsync/stationsync/installer"
)

// cmdDoctor checks what the node needs (config, data folder, QUIC port,
// certificates, multicast, peers) and prints one line per finding; it
// fails when any check FAILs. daemon.Doctor does the work.
func cmdDoctor(args []string, out io.Writer) error {
	fs := newFlags("doctor")
	path := fs.String("config", "", "config file (default: the installed service's config in "+installer.ConfigDir()+", else station.yaml here)")
	sets := setFlags{}
	fs.Var(sets, "set", "override a config key as run does, e.g. --set listen=0.0.0.0:4610 (repeatable)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: stationsync doctor [--config FILE] [--set key=value ...]\n\n"+
			"Checks, in order: config, data dir, QUIC port, certificates, multicast (mDNS), peers.\n"+
			"Each finding is one line: OK|WARN|FAIL  <check>: <finding> [— hint].\n"+
			"Exits non-zero when a check FAILs; an unreachable peer is only a WARN.\n\n")
		fs.PrintDefaults()
	}
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *path == "" {
		p, err := defaultDoctorConfig()
		if err != nil {
			fmt.Fprintln(out, daemon.DoctorFinding{Level: daemon.DoctorFail, Check: "config", Message: err.Error(), Hint: "give --config FILE"})
			return errors.New("doctor: check config failed")
		}
		*path = p
	}
	ctx, cancel := signalContext()
	defer cancel()
	rep, err := daemon.Doctor(ctx, *path, out, daemon.DoctorOptions{Env: os.Environ(), Set: sets})
	if err != nil {
		return err
	}
	return rep.Err()
}

// defaultDoctorConfig is the config the service runs (the one config
// install copied into the config folder), else station.yaml in the
// current folder.
func defaultDoctorConfig() (string, error) {
	dir := installer.ConfigDir()
	matches, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(matches) == 1 {
		return matches[0], nil
	}
	if fi, err := os.Stat("station.yaml"); err == nil && !fi.IsDir() {
		return "station.yaml", nil
	}
	if len(matches) > 1 {
		return "", fmt.Errorf("no --config given, and %s holds %d config files", dir, len(matches))
	}
	return "", fmt.Errorf("no --config given, no config in %s and no station.yaml in the current folder", dir)
}
