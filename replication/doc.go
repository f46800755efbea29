// Package replication keeps one station's state replicated across its PCs:
// a hashicorp/raft node whose FSM state lives in badger, the badger raft
// log (package logstore), the QUIC stream layer (package transport), leader
// forwarding with group commit, bootstrap from static peers, and the change
// feed. It knows nothing of HTTP: the daemon calls Submit, View, Feed and
// Status.
//
// See DESIGN.md in this folder for the wire and disk formats and the
// reasons behind them.
package replication
