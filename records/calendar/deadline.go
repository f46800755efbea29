package calendar

import (
	"slices"
	"time"
)

// Interval is a pause [From, To) of a case's clock (特别程序). A zero To
// means the case is still paused.
type Interval struct {
	From, To time.Time
}

// Open reports whether the pause has not been resumed.
func (iv Interval) Open() bool { return iv.To.IsZero() }

// LimitUnit is the unit of a time limit, as in records.Limit.Unit.
type LimitUnit string

// Limit units.
const (
	WorkingDays LimitUnit = "working_days"
	Days        LimitUnit = "days"
	Hours       LimitUnit = "hours"
)

// MaxLimit is the largest limit Deadline accepts (in any unit); larger
// limits give ok = false, and WorkdaysAfter clamps to it.
const MaxLimit = 36500

// Deadline returns the deadline of a case accepted at accepted with a limit
// of n units, given the case's pauses, with dates taken in loc (nil means
// UTC). The rule is described in the package documentation: the acceptance
// day does not count; the deadline is the end (exclusive: 00:00 of the next
// day in loc) of the n-th working day after the acceptance day, not counting
// working days covered by a pause (from the pause's start date inclusive to
// its resume date exclusive). For "days" it is the end of the n-th calendar
// day after the acceptance day and for "hours" accepted + n hours, both
// extended by the paused time.
//
// ok is false when the clock is stopped by an open pause before the deadline
// is reached, when n is negative or above MaxLimit, and for an unknown unit.
// The calendar may be nil (Monday-to-Friday working days).
func Deadline(c *Calendar, accepted time.Time, n int, unit LimitUnit, pauses []Interval, loc *time.Location) (deadline time.Time, ok bool) {
	loc = orUTC(loc)
	if n < 0 || n > MaxLimit {
		return time.Time{}, false
	}
	switch unit {
	case WorkingDays:
		return c.workingDeadline(accepted, n, pauses, loc)
	case Days:
		end := DateOf(accepted, loc).AddDays(n).End(loc)
		return runningDeadline(accepted, end.Sub(accepted), pauses)
	case Hours:
		return runningDeadline(accepted, time.Duration(n)*time.Hour, pauses)
	}
	return time.Time{}, false
}

// WorkdaysAfter returns the end (00:00 of the following day in loc) of the
// n-th working day after t's date in loc, e.g. the due date of a work order
// (by default 15 working days). n <= 0 gives the end of t's own date; n is
// clamped to MaxLimit.
func WorkdaysAfter(c *Calendar, t time.Time, n int, loc *time.Location) time.Time {
	loc = orUTC(loc)
	n = max(0, min(n, MaxLimit))
	first := DateOf(t, loc).dayNumber() + 1
	return fromDayNumber(c.nthEnd(first, n)).Start(loc)
}

// nthEnd returns the smallest day number e >= a such that [a, e) holds at
// least k working days: e-1 is the k-th working day from a (a itself for
// k = 0 returns a).
func (c *Calendar) nthEnd(a, k int) int {
	if k <= 0 {
		return a
	}
	// Any 7 consecutive days outside a holiday block hold 5 working days,
	// and holiday blocks are short: 2k+14 days nearly always suffice.
	lo, hi := a, a+2*k+14
	for c.workdays(a, hi) < k {
		lo, hi = hi, a+2*(hi-a)
	}
	// workdays(a, lo) < k <= workdays(a, hi)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if c.workdays(a, mid) >= k {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// daySpan is a pause as day numbers [from, to); open pauses have to = maxInt.
type daySpan struct{ from, to int }

const maxInt = int(^uint(0) >> 1)

func (c *Calendar) workingDeadline(accepted time.Time, n int, pauses []Interval, loc *time.Location) (time.Time, bool) {
	pos := DateOf(accepted, loc).dayNumber() + 1 // day 1 is counted from here
	rem := n

	var buf [8]daySpan
	spans := buf[:0]
	for _, p := range pauses {
		s := daySpan{from: DateOf(p.From, loc).dayNumber(), to: maxInt}
		if !p.Open() {
			s.to = DateOf(p.To, loc).dayNumber()
		}
		if s.to > s.from && s.to > pos {
			spans = append(spans, s)
		}
	}
	slices.SortFunc(spans, func(x, y daySpan) int { return x.from - y.from })

	for _, s := range spans {
		from := max(s.from, pos)
		// Working days counted between the current position and the pause.
		w := c.workdays(pos, from)
		if w >= rem {
			break // the deadline comes before this pause
		}
		rem -= w
		if s.to == maxInt {
			return time.Time{}, false
		}
		pos = max(from, s.to)
	}
	return fromDayNumber(c.nthEnd(pos, rem)).Start(loc), true
}

// runningDeadline returns the instant at which the running (unpaused) time
// since accepted reaches budget.
func runningDeadline(accepted time.Time, budget time.Duration, pauses []Interval) (time.Time, bool) {
	var buf [8]Interval
	ivs := buf[:0]
	for _, p := range pauses {
		if p.Open() || p.To.After(p.From) && p.To.After(accepted) {
			ivs = append(ivs, p)
		}
	}
	slices.SortFunc(ivs, func(x, y Interval) int { return x.From.Compare(y.From) })

	t, rem := accepted, budget
	for _, p := range ivs {
		from := p.From
		if from.Before(t) {
			from = t
		}
		run := from.Sub(t)
		if run >= rem {
			break // the deadline comes before this pause
		}
		rem -= run
		if p.Open() {
			return time.Time{}, false
		}
		if p.To.After(from) {
			t = p.To
		} else {
			t = from
		}
	}
	return t.Add(rem), true
}
