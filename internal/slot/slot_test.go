package slot

import (
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	base := time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC) // a multiple of every period below
	for _, tc := range []struct {
		after, period, want time.Duration
	}{
		{0, 750 * time.Millisecond, 750 * time.Millisecond},
		{time.Millisecond, 750 * time.Millisecond, 749 * time.Millisecond},
		{700 * time.Millisecond, 750 * time.Millisecond, 50 * time.Millisecond},
		{800 * time.Millisecond, 750 * time.Millisecond, 700 * time.Millisecond},
		{100 * time.Millisecond, 187500 * time.Microsecond, 87500 * time.Microsecond},
	} {
		if got := Until(base.Add(tc.after), tc.period); got != tc.want {
			t.Errorf("Until(+%v, %v) = %v, want %v", tc.after, tc.period, got, tc.want)
		}
	}
	// Waits of different periods that divide each other end together.
	now := time.Now()
	a, b := now.Add(Until(now, 750*time.Millisecond)), now.Add(Until(now, 187500*time.Microsecond))
	for b.Before(a) {
		b = b.Add(187500 * time.Microsecond)
	}
	if !a.Equal(b) {
		t.Errorf("a 750 ms slot at %v is not a 187.5 ms slot (next one at %v)", a, b)
	}
}

// The timer fires once per slot and never before a multiple of its
// period (how late it fires depends on the machine's load).
func TestTimerFiresOnTheClock(t *testing.T) {
	const period = 50 * time.Millisecond
	start := time.Now()
	tm := NewTimer(period)
	defer tm.Stop()
	last := start.Truncate(period)
	for range 3 {
		at := (<-tm.C).Truncate(period)
		if !at.After(last) {
			t.Fatalf("fired in the slot from %v, not after the one from %v", at, last)
		}
		last = at
		tm.Next()
	}
}
