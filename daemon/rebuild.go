package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/stationsync/stationsync/replication"
	"github.com/stationsync/stationsync/replication/sealed"
)

// StoreDamagedError is Open's refusal to start on a damaged store: it
// names the store, what was found and the command that rebuilds it.
type StoreDamagedError struct {
	Err        *replication.StoreDamagedError
	ConfigFile string // "" when the config came from elsewhere
}

func (e *StoreDamagedError) Error() string {
	return fmt.Sprintf("%v; the node does not start on a damaged store (badger would drop what it cannot read, and with it acknowledged writes) and changed nothing; with the node stopped, rebuild it from the station's other nodes: %s",
		e.Err, RebuildCommand(e.ConfigFile))
}

func (e *StoreDamagedError) Unwrap() error { return e.Err }

// RebuildCommand is the command line that rebuilds the node of configFile.
func RebuildCommand(configFile string) string {
	if configFile == "" {
		configFile = "FILE"
	} else if strings.ContainsAny(configFile, " \t'\"") {
		configFile = `"` + configFile + `"`
	}
	return "stationsync rebuild --config " + configFile
}

// RebuildOptions: Force rebuilds even when no store is damaged.
type RebuildOptions struct {
	Force bool
}

// Rebuild rebuilds the stores of the stopped node of cfg from its
// station (replication.Rebuild): the stores go to
// data_dir/damaged-<time>, the outbox's undelivered writes are carried over
// when the old raft store is readable, and the node's identity stays.
func Rebuild(cfg Config, opts RebuildOptions, logger *slog.Logger) (replication.RebuildReport, error) {
	if cfg.Role == "center" {
		return replication.RebuildReport{}, errors.New("rebuild: a center node keeps the district's consolidated store: restore it from a backup instead")
	}
	if running(cfg) {
		return replication.RebuildReport{}, fmt.Errorf("rebuild: the node is running (its API %s answers): stop it first", cfg.API)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "raft")); err != nil {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "state")); err != nil {
			return replication.RebuildReport{}, fmt.Errorf("rebuild: no store in data_dir %s: nothing to rebuild (start the node: it joins its station)", cfg.DataDir)
		}
	}
	key, err := sealed.LoadOrCreateKey(cfg.EncryptionKeyFile, false)
	if err != nil {
		return replication.RebuildReport{}, fmt.Errorf("rebuild: encryption_key_file: %w (the node's key must stay: restore the key file first)", err)
	}
	rcfg := replication.Config{NodeID: cfg.NodeID, Station: cfg.StationID, DataDir: cfg.DataDir, EncryptionKey: key, Logger: logger}
	if !opts.Force {
		if errs := replication.CheckStores(rcfg); len(errs) == 0 {
			return replication.RebuildReport{}, fmt.Errorf("rebuild: no store in %s is damaged: nothing done (--force rebuilds anyway)", cfg.DataDir)
		}
	}
	return replication.Rebuild(rcfg)
}
