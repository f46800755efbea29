// Package pki holds the district certificate authority of stationsync, the
// node certificates it issues, and the TLS 1.3 configurations that QUIC uses
// for mutual authentication between nodes.
//
// # Certificates
//
// All keys are ECDSA P-256. The district CA ([InitCA]) is a self-signed
// certificate valid for ten years, kept as ca.crt and ca.key (mode 0600) in one
// directory. A node certificate ([Issue]) names exactly one [Identity] as a URI
// SAN
//
//	stationsync://<role>/<station>/<node>
//
// where role is "station" or "center" and center certificates use the station
// "-". Every node certificate also carries the DNS SAN "stationsync" (the TLS
// server name nodes use) and both the server and client extended key usages,
// because every node both dials and accepts.
//
// # Verification
//
// Peers are authenticated by their certificate chain to the district CA and the
// identity in the URI SAN, never by IP address or host name: station PCs change
// addresses. [TLS.ServerConfig] and [TLS.ClientConfig] verify the chain
// themselves and hand the peer's identity to a caller-supplied policy.
//
// # Renewal without restart
//
// [TLS] watches the modification time and size of the certificate and key
// files and reloads them on the next handshake after they change. Files are
// written atomically (temporary file and rename) by [Issue], so a reader never
// sees half a file; a certificate and key that do not match (the renewal wrote
// one and not yet the other) are ignored until they do, and the previous pair
// keeps serving in the meantime.
package pki
