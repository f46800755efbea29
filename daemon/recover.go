package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/replication"
	"github.com/stationsync/stationsync/replication/sealed"
)

// Recover runs the offline recovery of a stopped node after a permanent
// loss of quorum: peers is "ID=ADDR,..." of every node that remains (this
// one included); all of them become voters.
func Recover(cfg Config, peers string, logger *slog.Logger) error {
	servers, err := parseRecoverPeers(peers)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "raft")); err != nil {
		return fmt.Errorf("recover: no store in data_dir %s", cfg.DataDir)
	}
	key, err := sealed.LoadOrCreateKey(cfg.EncryptionKeyFile, false)
	if err != nil {
		return fmt.Errorf("recover: encryption_key_file: %w", err)
	}
	return replication.Recover(replication.Config{
		NodeID: cfg.NodeID, Station: cfg.StationID, DataDir: cfg.DataDir, EncryptionKey: key, Logger: logger,
	}, servers)
}

func parseRecoverPeers(s string) ([]raft.Server, error) {
	var servers []raft.Server
	seen := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		id, addr, ok := strings.Cut(p, "=")
		if !ok || !validID(id) {
			return nil, fmt.Errorf("recover: --peers entry %q must be ID=HOST:PORT", p)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("recover: --peers entry %q: %q is not host:port", p, addr)
		}
		if seen[id] {
			return nil, fmt.Errorf("recover: --peers names %s twice", id)
		}
		seen[id] = true
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr), Suffrage: raft.Voter})
	}
	return servers, nil
}
