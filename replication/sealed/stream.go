package sealed

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// KeySize is the length in bytes of a node key.
const KeySize = 32

// Format constants of version 1 (see the package documentation).
const (
	magic       = "SSEAL"
	version1    = 1
	prefixLen   = 8
	headerLen   = len(magic) + 1 + prefixLen // 14
	chunkSize   = 64 << 10                   // plaintext bytes per chunk
	tagLen      = 16                         // AES-GCM tag
	sealedChunk = chunkSize + tagLen         // sealed bytes per full chunk
	maxChunks   = math.MaxUint32 + 1         // the chunk counter is 4 bytes
	kdfInfo     = "stationsync sealed v1"
)

var (
	// ErrNotSealed is returned when data does not start with a sealed header
	// (for example a snapshot written before encryption was enabled), or
	// has a version this build does not read.
	ErrNotSealed = errors.New("not sealed data")

	// ErrCorrupt is returned when sealed data fails authentication: it was
	// tampered with, truncated or extended, or sealed with another key.
	ErrCorrupt = errors.New("sealed data is corrupt, truncated, or encrypted with another key")
)

// PlainSize returns the plaintext length of a sealed stream of sealedSize
// bytes (header included), or an error if no sealed stream has that length.
func PlainSize(sealedSize int64) (int64, error) {
	body := sealedSize - int64(headerLen)
	if body < tagLen {
		return 0, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, sealedSize)
	}
	chunks := (body + sealedChunk - 1) / sealedChunk
	if last := body - (chunks-1)*sealedChunk; last < tagLen {
		return 0, fmt.Errorf("%w: %d bytes is not a possible length", ErrCorrupt, sealedSize)
	}
	return body - chunks*tagLen, nil
}

// newAEAD returns AES-256-GCM keyed with the format key derived from the
// node key. Each stream gets its own instance.
func newAEAD(nodeKey []byte) (cipher.AEAD, error) {
	if len(nodeKey) != KeySize {
		return nil, fmt.Errorf("encryption key is %d bytes, want %d", len(nodeKey), KeySize)
	}
	k, err := hkdf.Key(sha256.New, nodeKey, nil, kdfInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// chunkParams fills nonce and aad for chunk i.
func chunkParams(nonce, aad []byte, header []byte, i uint64, last bool) {
	copy(nonce, header[len(magic)+1:])
	binary.BigEndian.PutUint32(nonce[prefixLen:], uint32(i))
	copy(aad, header)
	aad[headerLen] = 0
	if last {
		aad[headerLen] = 1
	}
}

// writer seals what is written to it into w. The last chunk is only known
// at finish, so a full chunk is held back until more data arrives.
type writer struct {
	w      io.Writer
	aead   cipher.AEAD
	header [headerLen]byte
	nonce  [12]byte
	aad    [headerLen + 1]byte
	chunk  uint64
	buf    []byte // plaintext of the current chunk, cap chunkSize
	out    []byte // sealed chunk
	err    error  // sticky
}

// newWriter writes the header to w and returns a writer sealing into w.
func newWriter(w io.Writer, nodeKey []byte) (*writer, error) {
	aead, err := newAEAD(nodeKey)
	if err != nil {
		return nil, err
	}
	sw := &writer{
		w:    w,
		aead: aead,
		buf:  make([]byte, 0, chunkSize),
		out:  make([]byte, 0, sealedChunk),
	}
	copy(sw.header[:], magic)
	sw.header[len(magic)] = version1
	if _, err := rand.Read(sw.header[len(magic)+1:]); err != nil {
		return nil, err
	}
	if _, err := w.Write(sw.header[:]); err != nil {
		return nil, err
	}
	return sw, nil
}

func (s *writer) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n := 0
	for len(p) > 0 {
		if len(s.buf) == chunkSize {
			if err := s.seal(false); err != nil {
				return n, err
			}
		}
		k := copy(s.buf[len(s.buf):chunkSize], p)
		s.buf = s.buf[:len(s.buf)+k]
		p = p[k:]
		n += k
	}
	return n, nil
}

// finish seals the last chunk. The writer cannot be used afterwards.
func (s *writer) finish() error {
	if s.err != nil {
		return s.err
	}
	err := s.seal(true)
	s.wipe()
	if err == nil {
		s.err = errors.New("sealed stream is finished")
	}
	return err
}

// wipe clears the plaintext buffer.
func (s *writer) wipe() {
	clear(s.buf[:cap(s.buf)])
	s.buf = s.buf[:0]
}

func (s *writer) seal(last bool) error {
	if s.chunk >= maxChunks {
		s.err = errors.New("sealed stream too large")
		return s.err
	}
	chunkParams(s.nonce[:], s.aad[:], s.header[:], s.chunk, last)
	s.out = s.aead.Seal(s.out[:0], s.nonce[:], s.buf, s.aad[:])
	if _, err := s.w.Write(s.out); err != nil {
		s.err = err
		return err
	}
	s.chunk++
	s.buf = s.buf[:0]
	return nil
}

// reader opens a sealed stream. It finds the last chunk by looking ahead
// for the end of the input, so it does not need to know the length.
type reader struct {
	r      *bufio.Reader
	aead   cipher.AEAD
	header [headerLen]byte
	nonce  [12]byte
	aad    [headerLen + 1]byte
	chunk  uint64
	sealed []byte
	plain  []byte // opened chunk not yet returned: plain[pos:]
	pos    int
	done   bool  // the last chunk was opened
	err    error // sticky
}

// newReader reads and checks the header of the sealed stream in r.
func newReader(r io.Reader, nodeKey []byte) (*reader, error) {
	aead, err := newAEAD(nodeKey)
	if err != nil {
		return nil, err
	}
	sr := &reader{
		r:      bufio.NewReader(r),
		aead:   aead,
		sealed: make([]byte, sealedChunk),
		plain:  make([]byte, 0, chunkSize),
	}
	if _, err := io.ReadFull(sr.r, sr.header[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: shorter than the header", ErrNotSealed)
		}
		return nil, err
	}
	if string(sr.header[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: no %q header", ErrNotSealed, magic)
	}
	if v := sr.header[len(magic)]; v != version1 {
		return nil, fmt.Errorf("%w: format version %d, this build reads version %d", ErrNotSealed, v, version1)
	}
	return sr, nil
}

func (s *reader) Read(p []byte) (int, error) {
	for s.pos == len(s.plain) {
		if s.err != nil {
			return 0, s.err
		}
		if s.done {
			return 0, io.EOF
		}
		s.err = s.next()
	}
	n := copy(p, s.plain[s.pos:])
	s.pos += n
	return n, nil
}

// next opens the next chunk into plain.
func (s *reader) next() error {
	n, err := io.ReadFull(s.r, s.sealed)
	last := false
	switch {
	case err == nil:
		// A full chunk: it is the last one if nothing follows.
		if _, err := s.r.Peek(1); errors.Is(err, io.EOF) {
			last = true
		} else if err != nil {
			return err
		}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		last = true
	default:
		return err
	}
	if n < tagLen {
		return fmt.Errorf("%w: chunk %d truncated", ErrCorrupt, s.chunk)
	}
	if s.chunk >= maxChunks {
		return fmt.Errorf("%w: too many chunks", ErrCorrupt)
	}
	chunkParams(s.nonce[:], s.aad[:], s.header[:], s.chunk, last)
	clear(s.plain[:cap(s.plain)])
	s.plain, err = s.aead.Open(s.plain[:0], s.nonce[:], s.sealed[:n], s.aad[:])
	s.pos = 0
	if err != nil {
		s.plain = s.plain[:0]
		return fmt.Errorf("%w: chunk %d fails authentication", ErrCorrupt, s.chunk)
	}
	s.chunk++
	s.done = last
	return nil
}

// wipe clears the plaintext buffer; the reader cannot be used afterwards.
func (s *reader) wipe() {
	clear(s.plain[:cap(s.plain)])
	s.plain, s.pos = s.plain[:0], 0
	if s.err == nil {
		s.err = errors.New("sealed reader is closed")
	}
}

// Writer seals a stream (a backup file, say) with a node key.
type Writer struct{ w *writer }

// NewWriter writes the sealed header to w and returns a Writer sealing
// into w. Close seals the last chunk (it does not close w); a stream not
// closed reads as truncated.
func NewWriter(w io.Writer, nodeKey []byte) (*Writer, error) {
	sw, err := newWriter(w, nodeKey)
	if err != nil {
		return nil, err
	}
	return &Writer{w: sw}, nil
}

func (w *Writer) Write(p []byte) (int, error) { return w.w.Write(p) }

// Close seals the last chunk.
func (w *Writer) Close() error { return w.w.finish() }

// NewReader returns a reader of the plaintext of the sealed stream r: a
// read fails with ErrCorrupt if the stream was tampered with, truncated or
// sealed with another key, and with ErrNotSealed if it is not sealed.
func NewReader(r io.Reader, nodeKey []byte) (io.Reader, error) {
	return newReader(r, nodeKey)
}
