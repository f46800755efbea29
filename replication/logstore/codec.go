package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// formatV1 is the only log entry encoding this package writes and reads.
//
// Layout (all integers are encoding/binary varints):
//
//	byte     format version (1)
//	uvarint  Index
//	uvarint  Term
//	byte     Type
//	uvarint  len(Data),       then Data
//	uvarint  len(Extensions), then Extensions
//	byte     AppendedAt present: 0 = zero time (nothing follows), 1 = set
//	varint   AppendedAt Unix seconds      (only if present)
//	uvarint  AppendedAt nanoseconds 0..1e9 (only if present)
//
// Nothing may follow. AppendedAt keeps its instant but not its location or
// monotonic reading; it decodes in the local time zone. Empty Data and
// Extensions decode as nil.
const formatV1 byte = 1

// errShortBuffer reports a truncated encoded entry.
var errShortBuffer = errors.New("truncated entry")

// encodeLog returns the formatV1 encoding of l in a new slice.
func encodeLog(l *raft.Log) []byte {
	n := 1 + 3*binary.MaxVarintLen64 + 1 +
		2*binary.MaxVarintLen64 + len(l.Data) + len(l.Extensions) +
		1 + 2*binary.MaxVarintLen64
	b := make([]byte, 0, n)
	b = append(b, formatV1)
	b = binary.AppendUvarint(b, l.Index)
	b = binary.AppendUvarint(b, l.Term)
	b = append(b, byte(l.Type))
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	b = append(b, l.Extensions...)
	if l.AppendedAt.IsZero() {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.AppendVarint(b, l.AppendedAt.Unix())
		b = binary.AppendUvarint(b, uint64(l.AppendedAt.Nanosecond()))
	}
	return b
}

// decodeLog decodes b into l. Data and Extensions alias b (with their
// capacity capped), so b must be owned by the caller, e.g. a ValueCopy.
func decodeLog(b []byte, l *raft.Log) error {
	if len(b) == 0 {
		return errShortBuffer
	}
	if v := b[0]; v != formatV1 {
		return fmt.Errorf("unsupported log entry format version %d (this build reads version %d)", v, formatV1)
	}
	d := decoder{b: b[1:]}
	var out raft.Log
	out.Index = d.uvarint()
	out.Term = d.uvarint()
	out.Type = raft.LogType(d.u8())
	out.Data = d.bytes()
	out.Extensions = d.bytes()
	switch d.u8() {
	case 0:
	case 1:
		sec := d.varint()
		nsec := d.uvarint()
		if d.err == nil && nsec >= uint64(time.Second) {
			return fmt.Errorf("invalid AppendedAt nanoseconds %d", nsec)
		}
		out.AppendedAt = time.Unix(sec, int64(nsec))
	default:
		if d.err == nil {
			return errors.New("invalid AppendedAt flag")
		}
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d trailing bytes", len(d.b))
	}
	*l = out
	return nil
}

// decoder reads varint-encoded fields; the first failure sticks in err and
// makes all further reads return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) u8() byte {
	if len(d.b) < 1 {
		d.fail(errShortBuffer)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShortBuffer)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShortBuffer)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(errShortBuffer)
		return nil
	}
	if n == 0 {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
