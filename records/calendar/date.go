package calendar

import (
	"fmt"
	"time"
)

// Date is a civil date (year, month, day) without a time or a location. The
// zero Date is not a valid date. Methods normalize out-of-range values the
// way time.Date does (Date{2026, 2, 30} is 2026-03-02).
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateOf returns the civil date of t in loc (nil loc means UTC). The date of
// a case event is always taken in the station's location: 2026-03-05T16:30Z
// is 2026-03-06 in Asia/Shanghai.
func DateOf(t time.Time, loc *time.Location) Date {
	y, m, d := t.In(orUTC(loc)).Date()
	return Date{y, m, d}
}

// ParseDate parses "2006-01-02".
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("%q is not a date", s)
	}
	return DateOf(t, time.UTC), nil
}

// AddDays returns the date n days after d (before, if n is negative).
func (d Date) AddDays(n int) Date {
	return fromDayNumber(d.dayNumber() + n)
}

// Before reports whether d is before e.
func (d Date) Before(e Date) bool { return d.dayNumber() < e.dayNumber() }

// After reports whether d is after e.
func (d Date) After(e Date) bool { return d.dayNumber() > e.dayNumber() }

// Equal reports whether d and e are the same day.
func (d Date) Equal(e Date) bool { return d.dayNumber() == e.dayNumber() }

// IsZero reports whether d is the zero Date.
func (d Date) IsZero() bool { return d == Date{} }

// Weekday returns the day of the week of d.
func (d Date) Weekday() time.Weekday { return weekday(d.dayNumber()) }

// String formats d as "2006-01-02".
func (d Date) String() string {
	n := d.normalize()
	return fmt.Sprintf("%04d-%02d-%02d", n.Year, int(n.Month), n.Day)
}

// Start returns the first instant of d in loc (00:00; nil loc means UTC).
func (d Date) Start(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, orUTC(loc))
}

// End returns the exclusive end of d in loc: the start of the following day.
func (d Date) End(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day+1, 0, 0, 0, 0, orUTC(loc))
}

func (d Date) normalize() Date { return fromDayNumber(d.dayNumber()) }

// dayNumber returns the number of days since 1970-01-01 (a Thursday).
func (d Date) dayNumber() int {
	return int(time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC).Unix() / secondsPerDay)
}

func fromDayNumber(n int) Date {
	y, m, d := time.Unix(int64(n)*secondsPerDay, 0).UTC().Date()
	return Date{y, m, d}
}

const secondsPerDay = 24 * 60 * 60

// weekday of a day number: day 0 (1970-01-01) is a Thursday.
func weekday(n int) time.Weekday {
	return time.Weekday(floorMod(n+int(time.Thursday), 7))
}

func isWeekend(n int) bool {
	w := weekday(n)
	return w == time.Saturday || w == time.Sunday
}

// plainWeekdays returns the number of Monday-to-Friday days in [0, n) (or
// minus the number in [n, 0) for negative n), so that plainWeekdays(b) -
// plainWeekdays(a) counts the weekdays in [a, b).
func plainWeekdays(n int) int {
	// Weeks counted from day 0, a Thursday: Thu Fri Sat Sun Mon Tue Wed.
	prefix := [8]int{0, 1, 2, 2, 2, 3, 4, 5}
	w := floorDiv(n, 7)
	return 5*w + prefix[n-7*w]
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int) int { return a - b*floorDiv(a, b) }

func orUTC(loc *time.Location) *time.Location {
	if loc == nil {
		return time.UTC
	}
	return loc
}
