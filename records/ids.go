package records

import (
	"crypto/rand"
	"time"
)

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewID returns a ULID: 48 bits of milliseconds and 80 random bits in
// Crockford base32. IDs are unique without coordination between nodes and
// sort by creation time, which keeps case listings in time order.
func NewID(t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	if _, err := rand.Read(b[6:]); err != nil {
		panic("crypto/rand: " + err.Error()) // never fails on supported platforms
	}
	// 128 bits -> 26 base32 characters, most significant first.
	var out [26]byte
	var acc uint64
	var bits uint
	i := 0
	// The first character encodes the top 3 bits (128 = 3 + 25*5).
	acc = uint64(b[0] >> 5)
	out[i] = crockford[acc]
	i++
	acc = uint64(b[0] & 0x1f)
	bits = 5
	for _, x := range b[1:] {
		acc = acc<<8 | uint64(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[i] = crockford[(acc>>bits)&0x1f]
			i++
		}
	}
	return string(out[:i])
}
