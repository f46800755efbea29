package logstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// KeySize is the length in bytes of an encryption key (AES-256).
const KeySize = 32

// keyRotation is how often badger makes a new data key. Data keys are
// encrypted with the master key in the KEYREGISTRY file; rotating them
// bounds how much data one data key encrypts.
const keyRotation = 30 * 24 * time.Hour

// ErrWrongKey is returned, wrapped with the database folder and what to do,
// when badger refuses the encryption key: the store was encrypted with
// another key, or it is encrypted and no key was given, or it is not
// encrypted and a key was given.
var ErrWrongKey = errors.New("wrong encryption key")

// WithKey returns opts with badger encryption at rest using key (AES-256 for
// a 32-byte key) and a data-key rotation of 30 days. A nil or empty key
// returns opts unchanged. The key is copied.
//
// Encryption needs badger's block cache and works best with an index cache:
// if opts has none, WithKey sets the small sizes of [Options]. Badger itself
// checks the key length when the database is opened.
func WithKey(opts badger.Options, key []byte) badger.Options {
	if len(key) == 0 {
		return opts
	}
	opts = opts.
		WithEncryptionKey(bytes.Clone(key)).
		WithEncryptionKeyRotationDuration(keyRotation)
	if opts.IndexCacheSize <= 0 {
		opts = opts.WithIndexCacheSize(indexCacheSize)
	}
	if opts.BlockCacheSize <= 0 {
		opts = opts.WithBlockCacheSize(blockCacheSize)
	}
	return opts
}

// OpenEncrypted is [Open] with badger encryption at rest: key must be
// [KeySize] (32) bytes; a nil key opens the store unencrypted, exactly like
// Open. If badger refuses the key (see [ErrWrongKey]) the error wraps
// ErrWrongKey and names dir.
func OpenEncrypted(dir string, key []byte, logger *slog.Logger) (*Store, error) {
	if key != nil && len(key) != KeySize {
		return nil, fmt.Errorf("open log store %s: encryption key is %d bytes, want %d", dir, len(key), KeySize)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Writers are serialized by Store and never read in a write transaction,
	// so badger's conflict detection would only cost memory.
	opts := WithKey(Options(dir, true, logger).WithDetectConflicts(false), key)
	s, err := open(opts, DefaultGCInterval, logger)
	if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
		return nil, fmt.Errorf("open log store: %w", KeyError(dir, key, err))
	}
	return s, err
}

// KeyError returns err unchanged unless it is badger's refusal of the
// encryption key (badger.ErrEncryptionKeyMismatch) when opening the
// database in dir with key (nil: no key). Then it returns an error wrapping
// [ErrWrongKey] that says which case it is and what to check. Use it for
// other badger databases opened with [WithKey].
func KeyError(dir string, key []byte, err error) error {
	if err == nil || !errors.Is(err, badger.ErrEncryptionKeyMismatch) {
		return err
	}
	switch {
	case len(key) == 0:
		return fmt.Errorf("%w: the store in %s is encrypted but no encryption key was given: check encryption_key_file", ErrWrongKey, dir)
	case storeUnencrypted(dir):
		return fmt.Errorf("%w: the store in %s is not encrypted but an encryption key was given: it was created without encryption and must be migrated or removed", ErrWrongKey, dir)
	default:
		return fmt.Errorf("%w: the store in %s is encrypted with another key: check encryption_key_file", ErrWrongKey, dir)
	}
}

// storeUnencrypted reports whether badger's key registry in dir is
// unencrypted: badger writes a 16-byte IV and then the sanity text "Hello
// Badger", XORed with the key stream when the store is encrypted. It reports
// false when it cannot tell.
func storeUnencrypted(dir string) bool {
	f, err := os.Open(filepath.Join(dir, badger.KeyRegistryFileName))
	if err != nil {
		return false
	}
	defer f.Close()
	const ivLen = 16
	sanity := []byte("Hello Badger")
	buf := make([]byte, ivLen+len(sanity))
	if _, err := io.ReadFull(f, buf); err != nil {
		return false
	}
	return bytes.Equal(buf[ivLen:], sanity)
}
