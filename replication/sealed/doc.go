// Package sealed encrypts a node's raft snapshots at rest and manages the
// node's encryption key file.
//
// Every node has its own 32-byte key, kept hex-encoded in the file named by
// encryption_key_file ([LoadOrCreateKey]). The same key encrypts the raft log
// and the FSM state store (badger encryption, see logstore.WithKey) and, via
// [SnapshotStore], the raft snapshot files. Nodes never exchange keys: a
// leader decrypts its snapshot and sends plain bytes over the (TLS) raft
// transport, and the follower encrypts them again with its own key.
//
// # Sealed file format, version 1
//
// A snapshot's state.bin holds a sealed stream:
//
//	header   "SSEAL" (5 bytes), version (1 byte, = 1), nonce prefix (8 random bytes)
//	chunk 0  AES-256-GCM(plaintext 0)        64 KiB plaintext + 16-byte tag
//	chunk 1  AES-256-GCM(plaintext 1)        ...
//	...
//	chunk n  AES-256-GCM(plaintext n)        0..64 KiB plaintext + 16-byte tag (the last chunk)
//
// Every chunk but the last holds exactly 64 KiB of plaintext; the last holds
// 1 to 64 KiB, or 0 bytes when the whole plaintext is empty (so a stream has
// at least one chunk). Chunk i is sealed with:
//
//	key              HKDF-SHA256(node key, salt none, info "stationsync sealed v1"), 32 bytes
//	nonce (12 bytes) nonce prefix || uint32 big-endian i
//	additional data  the 14 header bytes || 1 if the chunk is the last, else 0
//
// The random prefix makes nonces unique across files sealed with the same
// key (a collision needs about 2^32 files); the counter makes them unique
// within a file and, being authenticated, fixes the chunk order; the last
// flag makes a truncation at a chunk boundary, or appended chunks, fail
// authentication. A reader therefore returns an error, never short or
// altered data, for a tampered, truncated or extended file, or one sealed
// with another key ([ErrCorrupt]); a file without the header fails with
// [ErrNotSealed].
//
// Sizes: a sealed stream of S bytes holds S - 14 - 16*ceil((S-14)/(64 KiB+16))
// bytes of plaintext, so the plain size follows from the file size alone
// ([PlainSize]). [SnapshotStore] reports plain sizes in SnapshotMeta.Size,
// as raft requires (it compares meta.Size with the bytes it copies when it
// sends or installs a snapshot).
//
// History:
//
//	2026-11  version 1.
package sealed
