package installer

import (
	"fmt"
	"os"
	"sync"
)

// Default size cap of the service log: at most LogFiles files of
// LogMaxBytes each (stationsync.log, stationsync.log.1, stationsync.log.2).
const (
	LogMaxBytes = 10 << 20
	LogFiles    = 3
)

// RotatingFile is an io.Writer that appends to path and, before a write
// would take it over maxBytes, renames path to path.1 (path.1 to path.2,
// ...) keeping files files in all, the oldest dropped. A write is never
// split: one larger than maxBytes goes whole into a fresh file. Safe for
// concurrent use.
type RotatingFile struct {
	path     string
	maxBytes int64
	files    int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// OpenRotatingFile opens (or creates, mode 0600) path for appending.
// files is the number of files kept, the current one included (at least 1).
func OpenRotatingFile(path string, maxBytes int64, files int) (*RotatingFile, error) {
	if maxBytes < 1 || files < 1 {
		return nil, fmt.Errorf("rotating log %s: maxBytes and files must be positive", path)
	}
	r := &RotatingFile{path: path, maxBytes: maxBytes, files: files}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *RotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log: %w", err)
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Write appends p, rotating first when p would not fit.
func (r *RotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	if r.size > 0 && r.size+int64(len(p)) > r.maxBytes {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

// rotate shifts the files by one. The current file is closed first (on
// Windows an open file cannot be renamed). When a rename fails (a reader
// holds the file open on Windows) the current file is reopened and
// written on: the cap is exceeded rather than lines lost; the next write
// tries again.
func (r *RotatingFile) rotate() error {
	r.f.Close()
	r.f = nil
	if r.files == 1 {
		_ = os.Remove(r.path)
	} else {
		_ = os.Remove(r.name(r.files - 1))
		for i := r.files - 2; i >= 1; i-- {
			if err := os.Rename(r.name(i), r.name(i+1)); err != nil && !os.IsNotExist(err) {
				break
			}
		}
		_ = os.Rename(r.path, r.name(1))
	}
	return r.open()
}

func (r *RotatingFile) name(i int) string { return fmt.Sprintf("%s.%d", r.path, i) }

// Close closes the current file; later writes fail with os.ErrClosed.
func (r *RotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
