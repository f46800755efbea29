package replication

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/replication/sealed"
)

// Backups. A backup is a raft snapshot of the node taken online (the
// state machine's point-in-time view, with the raft index, term and
// cluster configuration it covers), preceded by a header, and sealed with
// the node's encryption key (it holds personal data). Restoring writes it
// into an empty data folder as the node's only snapshot: on start raft
// restores the state from it and the node is a member of the
// configuration it had, so it takes the entries after the snapshot from
// the leader (or, alone, goes on from there): it rejoins and catches up.

const backupFormat = "stationsync-backup v1"

// BackupHeader describes a backup.
type BackupHeader struct {
	Format             string             `json:"format"`
	Node               string             `json:"node"`
	Station            string             `json:"station"`
	ClusterID          string             `json:"cluster_id"`
	Created            time.Time          `json:"created"`
	Index              uint64             `json:"index"`
	Term               uint64             `json:"term"`
	Configuration      raft.Configuration `json:"configuration"`
	ConfigurationIndex uint64             `json:"configuration_index"`
	Size               int64              `json:"size"`
}

// Backup writes a consistent backup of this node to w, sealed with its
// encryption key (in the clear if it has none).
//
// It reads a raft snapshot, not the stores, so it does not hold the node
// open (hold): a backup streaming to a slow client does not keep Close
// waiting.
func (n *Node) Backup(w io.Writer) (BackupHeader, error) {
	var (
		meta *raft.SnapshotMeta
		rc   io.ReadCloser
	)
	rr := n.run()
	f := rr.Snapshot()
	err := rr.wait(f)
	switch {
	case err == nil:
		meta, rc, err = f.Open()
	case errors.Is(err, raft.ErrNothingNewToSnapshot):
		var metas []*raft.SnapshotMeta
		if metas, err = n.snapshots.List(); err == nil {
			if len(metas) == 0 {
				return BackupHeader{}, errors.New("backup: nothing to back up yet (the node has no state)")
			}
			meta, rc, err = n.snapshots.Open(metas[0].ID)
		}
	}
	if err != nil {
		return BackupHeader{}, fmt.Errorf("backup: take a snapshot: %w", err)
	}
	defer rc.Close()
	h := BackupHeader{
		Format: backupFormat, Node: n.cfg.NodeID, Station: n.cfg.Station, ClusterID: n.fsm.clusterID.Load().(string),
		Created: time.Now().UTC(), Index: meta.Index, Term: meta.Term, Configuration: meta.Configuration,
		ConfigurationIndex: meta.ConfigurationIndex, Size: meta.Size,
	}
	out := io.Writer(w)
	var sw *sealed.Writer
	if n.cfg.EncryptionKey != nil {
		if sw, err = sealed.NewWriter(w, n.cfg.EncryptionKey); err != nil {
			return h, fmt.Errorf("backup: %w", err)
		}
		out = sw
	}
	b, err := json.Marshal(h)
	if err != nil {
		return h, err
	}
	if _, err := out.Write(append(b, '\n')); err != nil {
		return h, fmt.Errorf("backup: %w", err)
	}
	if _, err := io.Copy(out, rc); err != nil {
		return h, fmt.Errorf("backup: %w", err)
	}
	if sw != nil {
		if err := sw.Close(); err != nil {
			return h, fmt.Errorf("backup: %w", err)
		}
	}
	return h, nil
}

// Restore writes the backup read from r into cfg.DataDir, which must hold
// no store: the node restores it when it starts. The backup must be of
// cfg.Station and sealed with cfg.EncryptionKey.
func Restore(cfg Config, r io.Reader) (BackupHeader, error) {
	cfg.setDefaults()
	for _, sub := range []string{"raft", "state", "snapshots"} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, sub)); err == nil {
			return BackupHeader{}, fmt.Errorf("restore: %s already holds a store (%s): move the data folder aside first", cfg.DataDir, sub)
		}
	}
	in := r
	if cfg.EncryptionKey != nil {
		var err error
		if in, err = sealed.NewReader(r, cfg.EncryptionKey); err != nil {
			return BackupHeader{}, fmt.Errorf("restore: %w (is it a backup of this node, sealed with this node's key file?)", err)
		}
	}
	br := bufio.NewReaderSize(in, 64<<10)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return BackupHeader{}, fmt.Errorf("restore: read the backup's header: %w", err)
	}
	var h BackupHeader
	if err := json.Unmarshal(line, &h); err != nil || h.Format != backupFormat {
		return h, errors.New("restore: not a stationsync backup (or a newer format)")
	}
	if h.Station != cfg.Station {
		return h, fmt.Errorf("restore: the backup is of station %q, this node is of %q", h.Station, cfg.Station)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return h, fmt.Errorf("restore: %w", err)
	}
	files, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.DataDir, "snapshots"), 2, newHCLog(cfg.Logger))
	if err != nil {
		return h, fmt.Errorf("restore: %w", err)
	}
	var store raft.SnapshotStore = files
	if cfg.EncryptionKey != nil {
		if store, err = sealed.NewSnapshotStore(files, cfg.EncryptionKey); err != nil {
			return h, fmt.Errorf("restore: %w", err)
		}
	}
	// The transport only encodes the legacy peer list of the snapshot's
	// metadata; addresses are kept as they are.
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	sink, err := store.Create(raft.SnapshotVersionMax, h.Index, h.Term, h.Configuration, h.ConfigurationIndex, trans)
	if err != nil {
		return h, fmt.Errorf("restore: %w", err)
	}
	if _, err := io.Copy(sink, br); err != nil {
		sink.Cancel()
		return h, fmt.Errorf("restore: %w", err)
	}
	if err := sink.Close(); err != nil {
		return h, fmt.Errorf("restore: %w", err)
	}
	return h, nil
}
