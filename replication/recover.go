package replication

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/replication/logstore"
	"github.com/stationsync/stationsync/replication/sealed"
)

// Recover forces a new cluster configuration on a stopped node after a
// permanent loss of quorum (hashicorp/raft RecoverCluster): it keeps every
// entry in this node's log (implicitly committing the uncommitted tail),
// writes a snapshot with the given servers, and truncates the log. Run it
// on every surviving node with the same servers, then start them.
func Recover(cfg Config, servers []raft.Server) error {
	cfg.setDefaults()
	if len(servers) == 0 {
		return errors.New("recover: at least one server is required")
	}
	self := false
	for _, s := range servers {
		self = self || string(s.ID) == cfg.NodeID
	}
	if !self {
		return fmt.Errorf("recover: the new configuration must include this node (%s)", cfg.NodeID)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "raft")); err != nil {
		return fmt.Errorf("recover: no raft log in %s: nothing to recover (%w)", cfg.DataDir, err)
	}
	logger := cfg.Logger.With("component", "recover")
	logs, err := logstore.OpenEncrypted(filepath.Join(cfg.DataDir, "raft"), cfg.EncryptionKey, logger)
	if err != nil {
		return fmt.Errorf("recover: open raft log (is the node still running?): %w", err)
	}
	defer logs.Close()
	stateDir := filepath.Join(cfg.DataDir, "state")
	db, err := badger.Open(logstore.WithKey(logstore.Options(stateDir, true, logger), cfg.EncryptionKey))
	if err != nil {
		return fmt.Errorf("recover: open state store: %w", logstore.KeyError(stateDir, cfg.EncryptionKey, err))
	}
	defer db.Close()
	f, err := newFSM(db, logger, 0)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	hl := newHCLog(logger)
	files, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.DataDir, "snapshots"), 2, hl)
	if err != nil {
		return fmt.Errorf("recover: open snapshot store: %w", err)
	}
	var snaps raft.SnapshotStore = files
	if cfg.EncryptionKey != nil {
		if snaps, err = sealed.NewSnapshotStore(files, cfg.EncryptionKey); err != nil {
			return fmt.Errorf("recover: %w", err)
		}
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hl
	_, trans := raft.NewInmemTransport(raft.ServerAddress(cfg.NodeID))
	if err := raft.RecoverCluster(rc, f, logs, logs, snaps, trans, raft.Configuration{Servers: servers}); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	logger.Info("cluster configuration recovered", "servers", len(servers))
	return nil
}
