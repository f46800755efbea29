// Package slot puts an idle node's periodic work on one clock.
//
// Most of an idle node's CPU is the cost of waking up: each wakeup of an
// idle Go process costs context switches (the thread, the netpoller, and
// sysmon, which polls for a while after it). Periodic work that waits for
// the next multiple of its period on the wall clock wakes at the same
// instants as every other such wait whose period is a multiple of, or
// divides, its own, so a node wakes once for all of them. With the
// default timeouts raft's heartbeats leave on multiples of 187.5 ms
// (third_party/raft, slotTimeout); the node's monitor and disk guard run
// on multiples of 750 ms and badger's idle compactors on multiples of
// 1.5 s (third_party/badger), all of them heartbeat instants. PCs whose
// clocks agree (NTP) wake together too: a follower's own periodic work
// coincides with the heartbeat it gets.
package slot

import "time"

// Until is how long from now until the next multiple of period on the
// clock (a whole period at most, never zero).
func Until(now time.Time, period time.Duration) time.Duration {
	return now.Truncate(period).Add(period).Sub(now)
}

// Timer is a timer that fires on the multiples of its period.
type Timer struct {
	C      <-chan time.Time
	t      *time.Timer
	period time.Duration
}

// NewTimer returns a Timer that fires at the next multiple of period;
// call Next after each firing for the one after.
func NewTimer(period time.Duration) *Timer {
	t := time.NewTimer(Until(time.Now(), period))
	return &Timer{C: t.C, t: t, period: period}
}

// Next sets the timer to the next multiple of its period.
func (t *Timer) Next() { t.t.Reset(Until(time.Now(), t.period)) }

// Stop stops the timer.
func (t *Timer) Stop() { t.t.Stop() }
