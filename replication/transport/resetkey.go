package transport

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/quic-go/quic-go"
)

// loadResetKey reads the stateless reset key from path. If the file is
// missing, or damaged (not 32 bytes), a new random key is written there
// (mode 0600, atomically): the key only matters for continuity across
// restarts, so an unattended node repairs it rather than refusing to start.
// An empty path gives a random key that is not persisted.
func loadResetKey(path string, log *slog.Logger) (*quic.StatelessResetKey, error) {
	var key quic.StatelessResetKey
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case err == nil && len(data) == len(key):
			copy(key[:], data)
			return &key, nil
		case err == nil:
			log.Warn("stateless reset key file damaged; replacing it", "file", path, "bytes", len(data))
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("stateless reset key: %w", err)
		}
	}
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("stateless reset key: %w", err)
	}
	if path == "" {
		return &key, nil
	}
	if err := writeKeyFile(path, key[:]); err != nil {
		return nil, fmt.Errorf("stateless reset key: %w", err)
	}
	log.Info("stateless reset key created", "file", path)
	return &key, nil
}

// writeKeyFile writes key to path through a synced temporary file and a
// rename.
func writeKeyFile(path string, key []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(key)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
