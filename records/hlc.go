package records

import (
	"fmt"
	"strconv"
	"sync"
	"time"
)

// HLC is a hybrid logical clock timestamp: wall-clock milliseconds and a
// logical counter, written fixed-width ("0001764100000000.000003") so that
// string order is time order. Events are ordered by HLC, then by event id:
// every node computes the same order from the same events.
type HLC string

const hlcLayout = "%016d.%06d"

// MakeHLC builds a timestamp.
func MakeHLC(ms int64, logical int) HLC { return HLC(fmt.Sprintf(hlcLayout, ms, logical)) }

// ParseHLC checks and splits a timestamp.
func ParseHLC(s string) (ms int64, logical int, err error) {
	if len(s) != 23 || s[16] != '.' {
		return 0, 0, fmt.Errorf("hlc %q is not of the form 0001764100000000.000003", s)
	}
	ms, err1 := strconv.ParseInt(s[:16], 10, 64)
	l, err2 := strconv.Atoi(s[17:])
	if err1 != nil || err2 != nil || ms < 0 || l < 0 {
		return 0, 0, fmt.Errorf("hlc %q is not of the form 0001764100000000.000003", s)
	}
	return ms, l, nil
}

// Time is the wall-clock part.
func (h HLC) Time() time.Time {
	ms, _, err := ParseHLC(string(h))
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Clock issues HLC timestamps. A node observes the timestamps of the
// records it reads before writing after them, so a PC whose clock is
// behind still orders its events after the ones it has seen.
type Clock struct {
	mu      sync.Mutex
	now     func() time.Time
	ms      int64
	logical int
}

// NewClock returns a clock reading wall time from now (time.Now if nil).
func NewClock(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now}
}

// Now returns a timestamp later than every one issued or observed before.
func (c *Clock) Now() HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	pt := c.now().UnixMilli()
	if pt > c.ms {
		c.ms, c.logical = pt, 0
	} else {
		c.logical++
	}
	return MakeHLC(c.ms, c.logical)
}

// Observe moves the clock past h (a timestamp read from a record).
func (c *Clock) Observe(h HLC) {
	ms, l, err := ParseHLC(string(h))
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ms > c.ms || (ms == c.ms && l > c.logical) {
		c.ms, c.logical = ms, l
	}
}

// After returns h if it is later than last, else the timestamp right after
// last. Applying an event moves it after everything its case already
// holds, so a PC whose clock is behind (or that had not yet seen the
// latest events) cannot place a new step before earlier ones.
func After(h, last HLC) HLC {
	if h > last {
		return h
	}
	ms, l, err := ParseHLC(string(last))
	if err != nil {
		return h
	}
	return MakeHLC(ms, l+1)
}

func (c *Case) lastHLC() HLC {
	var last HLC
	for _, ev := range c.Events {
		last = max(last, ev.HLC)
	}
	for _, e := range c.Evaluations {
		last = max(last, e.HLC)
	}
	return last
}
