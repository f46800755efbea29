package daemon

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/stationsync/stationsync/replication"
	"github.com/stationsync/stationsync/replication/sealed"
)

// GET /v1/backup streams a consistent backup of this node, sealed with its
// encryption key (replication.Node.Backup).
func (d *Daemon) handleBackup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="stationsync-%s-%s.backup"`, d.cfg.NodeID, time.Now().Format("20060102-150405")))
	h, err := d.node.Backup(w)
	if err != nil {
		// Nothing or part of the body went out: the client sees a short,
		// unreadable backup (sealed streams detect truncation).
		d.logger.Error("backup failed", "error", err)
		return
	}
	d.logger.Info("backup written", "index", h.Index, "bytes", h.Size)
}

// RestoreNode restores a backup file onto the stopped node of cfg: its
// data folder is moved aside (to <data_dir>.before-restore-<time>, never
// deleted) and the backup becomes the new store; started, the node
// rejoins its station and catches up.
func RestoreNode(cfg Config, backupFile string) (replication.BackupHeader, string, error) {
	if running(cfg) {
		return replication.BackupHeader{}, "", fmt.Errorf("the node is running (its API %s answers): stop it first", cfg.API)
	}
	key, err := sealed.LoadOrCreateKey(cfg.EncryptionKeyFile, false)
	if err != nil {
		return replication.BackupHeader{}, "", fmt.Errorf("encryption_key_file: %w (a backup is sealed with the node's key: restore the key file first)", err)
	}
	f, err := os.Open(backupFile)
	if err != nil {
		return replication.BackupHeader{}, "", err
	}
	defer f.Close()
	aside := ""
	if _, err := os.Stat(cfg.DataDir); err == nil {
		aside = fmt.Sprintf("%s.before-restore-%s", filepath.Clean(cfg.DataDir), time.Now().Format("20060102-150405"))
		if err := os.Rename(cfg.DataDir, aside); err != nil {
			return replication.BackupHeader{}, "", fmt.Errorf("move the data folder aside: %w", err)
		}
	}
	h, err := replication.Restore(replication.Config{NodeID: cfg.NodeID, Station: cfg.StationID, DataDir: cfg.DataDir, EncryptionKey: key}, f)
	if err != nil {
		if aside != "" {
			os.RemoveAll(cfg.DataDir)
			if rerr := os.Rename(aside, cfg.DataDir); rerr != nil {
				err = fmt.Errorf("%w; and putting the old data folder back failed: %v (it is at %s)", err, rerr, aside)
			} else {
				aside = ""
			}
		}
		return h, aside, err
	}
	return h, aside, nil
}

// running says whether the node of cfg answers on its API.
func running(cfg Config) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + cfg.API + "/v1/status")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}
