package sealed

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// LoadOrCreateKey returns the node key stored in the file at path: 64
// hexadecimal characters (32 bytes), optionally followed by a newline
// (surrounding white space and a UTF-8 byte order mark are ignored, for
// files restored with an editor).
//
// If the file does not exist and create is true, LoadOrCreateKey makes its
// folder (0700) if needed and writes a new random key to it (0600)
// atomically: the file appears complete or not at all, and an existing file
// is never replaced (if another process creates it at the same time, its key
// is returned). If the file does not exist and create is false, it returns
// an error wrapping fs.ErrNotExist: the daemon passes create=false when a
// store already exists, so that a lost key is reported instead of silently
// replaced by one that cannot read the data.
//
// A file with other content gives an error naming the file (but not its
// content). Checking the file's permissions is up to the caller, see
// [KeyFilePermsOK].
func LoadOrCreateKey(path string, create bool) ([]byte, error) {
	if path == "" {
		return nil, errors.New("encryption key file: no path")
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		return parseKey(path, b)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read encryption key file: %w", err)
	case !create:
		return nil, fmt.Errorf("encryption key file %s is missing: the data of this node is encrypted with it; restore it from a backup or fix encryption_key_file: %w", path, fs.ErrNotExist)
	}
	return createKey(path)
}

// parseKey decodes the content b of the key file at path.
func parseKey(path string, b []byte) ([]byte, error) {
	b = bytes.TrimPrefix(b, []byte("\uFEFF"))
	b = bytes.TrimSpace(b)
	if len(b) != 2*KeySize {
		return nil, fmt.Errorf("encryption key file %s: want %d hexadecimal characters (a %d-byte key), found %d bytes", path, 2*KeySize, KeySize, len(b))
	}
	key := make([]byte, KeySize)
	if _, err := hex.Decode(key, b); err != nil {
		// hex's error quotes the offending byte: keep key material out of
		// error messages.
		return nil, fmt.Errorf("encryption key file %s: not hexadecimal", path)
	}
	return key, nil
}

// createKey writes a new key to path, which did not exist a moment ago.
func createKey(path string) ([]byte, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create encryption key file: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("create encryption key file: %w", err)
	}
	content := make([]byte, 0, 2*KeySize+1)
	content = hex.AppendEncode(content, key)
	content = append(content, '\n')

	// os.CreateTemp makes the file 0600.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create encryption key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	_, err = tmp.Write(content)
	clear(content)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("create encryption key file %s: %w", path, err)
	}

	// A hard link puts the complete file in place without replacing an
	// existing one; rename is the fallback for file systems without links.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateKey(path, false) // created concurrently
		}
		if _, serr := os.Lstat(path); serr == nil {
			return LoadOrCreateKey(path, false)
		}
		if err := os.Rename(tmpName, path); err != nil {
			return nil, fmt.Errorf("create encryption key file %s: %w", path, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("create encryption key file %s: %w", path, err)
	}
	return key, nil
}

// syncDir makes a new directory entry in dir durable (not needed, nor
// possible, on Windows).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// KeyFilePermsOK reports whether the key file at path is private to its
// owner: false when group or others have any permission on it (read, write
// or execute). On Windows, where access is governed by ACLs inherited from
// the folder, it always reports true once the file exists.
func KeyFilePermsOK(path string) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("check encryption key file: %w", err)
	}
	if runtime.GOOS == "windows" {
		return true, nil
	}
	return fi.Mode().Perm()&0o077 == 0, nil
}
