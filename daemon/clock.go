package daemon

import "time"

// wallClock is the wall-time source of the node's hybrid logical clock
// (nil: time.Now). Only a test build replaces it: clock_chaos.go, built
// with the "chaos" tag, lets the fault-injection suite skew one node's
// clock while it runs.
var wallClock func() time.Time
