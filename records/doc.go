// Package records is the stationsync domain: service items (事项), cases (办件)
// as immutable events, and the rules that turn commands into stored state.
//
// It is pure Go without I/O: it reads and writes through the small State and
// Reader interfaces that the replication layer implements on top of its
// store, so every node (and later the district center) computes the same
// state from the same commands.
package records
