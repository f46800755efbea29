package sealed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// SnapshotStore wraps a raft.SnapshotStore (normally a
// raft.FileSnapshotStore) so that snapshot data is sealed at rest with the
// node key while raft sees plain bytes: sinks from Create seal what the FSM,
// or an InstallSnapshot from the leader, writes; Open decrypts. The metadata
// (meta.json of a FileSnapshotStore: index, term, cluster configuration,
// size and CRC of the sealed file) stays plain. Sizes in the returned
// metadata are plain sizes.
type SnapshotStore struct {
	inner raft.SnapshotStore
	key   []byte
}

var _ raft.SnapshotStore = (*SnapshotStore)(nil)

// NewSnapshotStore returns a store sealing the snapshots of inner with key,
// which must be [KeySize] (32) bytes; the key is copied. A node without a
// key uses inner directly. inner must only hold sealed snapshots: a plain
// snapshot from before encryption was enabled fails to open with
// [ErrNotSealed].
func NewSnapshotStore(inner raft.SnapshotStore, key []byte) (*SnapshotStore, error) {
	if inner == nil {
		return nil, errors.New("sealed snapshot store: no inner store")
	}
	if _, err := newAEAD(key); err != nil {
		return nil, fmt.Errorf("sealed snapshot store: %w", err)
	}
	return &SnapshotStore{inner: inner, key: bytes.Clone(key)}, nil
}

// Create starts a snapshot in the inner store and returns a sink that seals
// what is written to it.
func (s *SnapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	inner, err := s.inner.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	w, err := newWriter(inner, s.key)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("create sealed snapshot: %w", err), inner.Cancel())
	}
	return &sink{inner: inner, w: w}, nil
}

// List returns the snapshots of the inner store, newest first, with plain
// sizes. A snapshot whose sealed size is impossible is listed with size 0;
// opening it fails.
func (s *SnapshotStore) List() ([]*raft.SnapshotMeta, error) {
	metas, err := s.inner.List()
	if err != nil {
		return nil, err
	}
	out := make([]*raft.SnapshotMeta, len(metas))
	for i, m := range metas {
		c := *m
		c.Size, _ = PlainSize(m.Size)
		out[i] = &c
	}
	return out, nil
}

// Open opens snapshot id and returns its metadata, with the plain size, and
// a reader of the plain data. The reader returns an error wrapping
// [ErrCorrupt] if the sealed data was altered, truncated or sealed with
// another key; it never returns short data with io.EOF.
func (s *SnapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.inner.Open(id)
	if err != nil {
		return nil, nil, err
	}
	// The header first: a plain snapshot is reported as not sealed rather
	// than as having an impossible size.
	r, err := newReader(rc, s.key)
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("open snapshot %s: %w", id, err), rc.Close())
	}
	plain, err := PlainSize(meta.Size)
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("open snapshot %s: %w", id, err), rc.Close())
	}
	c := *meta
	c.Size = plain
	return &c, &snapshotReader{id: id, r: r, c: rc}, nil
}

// sink seals into an inner sink. raft uses a sink from one goroutine; the
// mutex only makes misuse safe.
type sink struct {
	mu     sync.Mutex
	inner  raft.SnapshotSink
	w      *writer
	closed bool
}

func (s *sink) ID() string { return s.inner.ID() }

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errors.New("write to a closed snapshot sink")
	}
	return s.w.Write(p)
}

// Close seals the last chunk and closes the inner sink, which makes the
// snapshot available. If sealing fails the inner sink is cancelled.
func (s *sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.w.finish(); err != nil {
		return errors.Join(fmt.Errorf("seal snapshot %s: %w", s.inner.ID(), err), s.inner.Cancel())
	}
	return s.inner.Close()
}

// Cancel discards the snapshot.
func (s *sink) Cancel() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.w.wipe()
	return s.inner.Cancel()
}

// snapshotReader decrypts a snapshot and closes the inner reader.
type snapshotReader struct {
	id string
	r  *reader
	c  io.Closer
}

func (r *snapshotReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("read snapshot %s: %w", r.id, err)
	}
	return n, err
}

func (r *snapshotReader) Close() error {
	r.r.wipe()
	return r.c.Close()
}
