// Package daemon wires one stationsync node: configuration, certificates,
// the QUIC transport, the replication node and the local HTTP API with the
// status page and metrics. It starts them in order in Open and closes them
// in reverse in Close; it knows nothing of raft internals.
package daemon
