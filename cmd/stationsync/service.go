package main

// The OS service commands (install, uninstall, start, stop), the service
// state in status, and run under the service manager. The work is done by
// package installer.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/stationsync/stationsync/center"
	"github.com/stationsync/stationsync/daemon"
	"github.com/stationsync/stationsync/installer"
)

// nodeOptions is the role's part of a node: the district center plugs in
// as an extension.
func nodeOptions(cfg daemon.Config) []daemon.Option {
	if cfg.Role == "center" {
		return []daemon.Option{daemon.WithExtension(center.New())}
	}
	return nil
}

// cmdInstall: `install --config FILE`, or `install --center ADDR --token T`
// (enroll first).
func cmdInstall(args []string, out io.Writer) error {
	fs := newFlags("install")
	path := fs.String("config", "", "the node's config file: it, its certificate files and its encryption key are copied into the config folder")
	dir := fs.String("config-dir", installer.ConfigDir(), "config folder")
	centerAddr := fs.String("center", "", "with --token: enroll this PC at the district center first (host:4610)")
	token := fs.String("token", "", "with --center: the one-time token from `stationsync token` at the center")
	host, _ := os.Hostname()
	node := fs.String("node", host, "with --token: this PC's node id")
	expect := fs.Int("expect", 1, "with --token: expect: in the written config (the station's number of PCs)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if (*centerAddr == "") != (*token == "") {
		return errors.New("install: --center and --token go together")
	}
	if *token != "" {
		if *path != "" {
			return errors.New("install: give --config FILE or --center/--token, not both")
		}
		if err := installer.RequireAdmin("install"); err != nil {
			return err
		}
		if err := daemon.Enroll(context.Background(), daemon.EnrollOptions{Center: *centerAddr, Token: *token, Node: *node, OutDir: *dir, Expect: *expect, Out: out}); err != nil {
			return fmt.Errorf("install: enroll: %w", err)
		}
		*path = filepath.Join(*dir, "station.yaml")
	}
	if *path == "" {
		return errors.New("install: --config FILE (or --center ADDR --token T) is required")
	}
	return installer.Install(installer.InstallOptions{ConfigFile: *path, ConfigDir: *dir}, out)
}

func cmdUninstall(args []string, out io.Writer) error {
	fs := newFlags("uninstall")
	purge := fs.Bool("purge", false, "also remove the config folder and the data folder (the node's records, keys and certificates)")
	dir := fs.String("config-dir", installer.ConfigDir(), "config folder (removed by --purge)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	return installer.Uninstall(installer.UninstallOptions{Purge: *purge, ConfigDir: *dir}, out)
}

func cmdStart(args []string, out io.Writer) error {
	if _, err := parse(newFlags("start"), args, 0); err != nil {
		return err
	}
	return installer.Start(out)
}

func cmdStop(args []string, out io.Writer) error {
	if _, err := parse(newFlags("stop"), args, 0); err != nil {
		return err
	}
	return installer.Stop(out)
}

// cmdStatus prints the service's state, then the node's summary from its
// API (an error when the node does not answer).
func cmdStatus(args []string, out io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			return cmdGet(args, out, "status", "/v1/status")
		}
	}
	fmt.Fprintln(out, installer.QueryStatus())
	return cmdGet(args, out, "status", "/v1/status")
}
