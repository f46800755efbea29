// Package transport carries all node-to-node traffic of stationsync over QUIC
// on one UDP port: the raft stream layer ([Transport.RaftLayer]), request and
// response calls (leader forwarding, center pulls) and change feeds, each a
// QUIC stream wrapped as a [net.Conn].
//
// # Protocol (version 1)
//
// Transport: QUIC v1 (RFC 9000) over UDP, default port 4610. One UDP socket
// (one quic.Transport) per node is used for listening and dialing alike.
//
// Handshake: TLS 1.3 with mutual authentication. ALPN is mandatory and must
// be "stationsync/1" ([ALPN]); a peer offering anything else fails the
// handshake. Both sides present a node certificate of the district CA
// (package pki); each verifies the other's chain to the CA and reads the
// peer's identity from its stationsync:// URI SAN. Addresses and host names
// are never used for authentication. Session resumption and 0-RTT are not
// used.
//
// Admission at the handshake, on both sides:
//
//   - a station node accepts center nodes and nodes of its own station;
//   - a center node accepts every node of the district CA.
//
// Anything else fails the handshake.
//
// Connections: a node keeps at most one outgoing connection per peer address
// and opens a new bidirectional stream for every dial. Either side may open
// streams on any connection. Keep-alives are sent every 2 s and a connection
// without traffic for 6 s is dead, so crashed peers are noticed quickly. A
// node closes its connections with CONNECTION_CLOSE (application error 0x100,
// "shutdown") when it stops, and with 0x101 ("stale") a connection it found
// dead and replaced; a node that crashed and restarted answers
// packets of old connections with a stateless reset, because its stateless
// reset key is persisted.
//
// Streams: the first byte the opener sends on every stream is its [Kind]:
//
//	'R' (0x52) raft    hashicorp/raft NetworkTransport RPCs (msgpack)
//	'C' (0x43) rpc     request/response calls
//	'F' (0x46) feed    change-feed pulls
//
// The opener writes the kind byte immediately after opening the stream (a QUIC
// stream is invisible to the peer until data is sent). The acceptor must
// receive it within 5 s. What follows the kind byte is defined by the stream's
// kind. A stream of an unknown kind, or of a kind without a handler, is reset
// in both directions with stream error 0x2 (unknown kind). A raft stream is
// accepted only from a node of the same raft cluster: same role and same
// station (center nodes form their own cluster); any other peer's raft stream
// is reset with stream error 0x1 (refused). Closing a stream sends FIN
// after the written data and stops reading (STOP_SENDING, error 0x0).
package transport
