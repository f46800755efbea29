package calendar

import (
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Asia/Shanghai without relying on the host's zoneinfo

	"github.com/stationsync/stationsync/configs/holidays"
)

// fixture2026 mirrors configs/holidays/2026.yaml, so that the deadline tests
// keep testing the algorithm when the shipped file is corrected.
const fixture2026 = `year: 2026
holidays:
  - 2026-01-01
  - 2026-01-02
  - 2026-01-03
  - 2026-02-15
  - 2026-02-16
  - 2026-02-17
  - 2026-02-18
  - 2026-02-19
  - 2026-02-20
  - 2026-02-21
  - 2026-02-22
  - 2026-02-23
  - 2026-04-04
  - 2026-04-05
  - 2026-04-06
  - 2026-05-01
  - 2026-05-02
  - 2026-05-03
  - 2026-05-04
  - 2026-05-05
  - 2026-06-19
  - 2026-06-20
  - 2026-06-21
  - 2026-09-25
  - 2026-09-26
  - 2026-09-27
  - 2026-10-01
  - 2026-10-02
  - 2026-10-03
  - 2026-10-04
  - 2026-10-05
  - 2026-10-06
  - 2026-10-07
workdays:
  - 2026-01-04
  - 2026-02-14
  - 2026-02-28
  - 2026-05-09
  - 2026-09-20
  - 2026-10-10
`

var shanghai = mustLoc("Asia/Shanghai")

func mustLoc(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func testCalendar(t testing.TB) *Calendar {
	t.Helper()
	c, err := Parse(map[string][]byte{"2026.yaml": []byte(fixture2026)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func date(s string) Date {
	d, err := ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

// at parses "2006-01-02 15:04" in Asia/Shanghai.
func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, shanghai)
	if err != nil {
		panic(err)
	}
	return t
}

func TestDate(t *testing.T) {
	d := date("2026-02-27")
	if got := d.AddDays(2).String(); got != "2026-03-01" {
		t.Errorf("AddDays(2) = %s", got)
	}
	if got := d.AddDays(-58).String(); got != "2025-12-31" {
		t.Errorf("AddDays(-58) = %s", got)
	}
	if !d.Before(d.AddDays(1)) || !d.AddDays(1).After(d) || !d.Equal(Date{2026, 2, 27}) || d.Equal(d.AddDays(1)) {
		t.Error("comparisons wrong")
	}
	if !(Date{2026, 2, 30}).Equal(date("2026-03-02")) {
		t.Error("non-normalized date not equal to its normal form")
	}
	if got := (Date{2026, 2, 30}).String(); got != "2026-03-02" {
		t.Errorf("String of non-normalized date = %s", got)
	}
	if got := d.Weekday(); got != time.Friday {
		t.Errorf("Weekday = %v", got)
	}
	if got, want := d.Start(shanghai), at("2026-02-27 00:00"); !got.Equal(want) {
		t.Errorf("Start = %v, want %v", got, want)
	}
	if got, want := d.End(shanghai), at("2026-02-28 00:00"); !got.Equal(want) {
		t.Errorf("End = %v, want %v", got, want)
	}
	// 16:30 UTC on the 5th is 00:30 on the 6th in Shanghai.
	u := time.Date(2026, 3, 5, 16, 30, 0, 0, time.UTC)
	if got := DateOf(u, shanghai); got != date("2026-03-06") {
		t.Errorf("DateOf in Shanghai = %s", got)
	}
	if got := DateOf(u, nil); got != date("2026-03-05") {
		t.Errorf("DateOf nil loc = %s", got)
	}
	for _, s := range []string{"", "2026-1-01", "2026-02-30", "20260101", "2026-01-01T00:00:00Z", " 2026-01-01"} {
		if _, err := ParseDate(s); err == nil {
			t.Errorf("ParseDate(%q) accepted", s)
		}
	}
	// Weekdays far from the epoch, both sides.
	for _, tc := range []struct {
		d    Date
		want time.Weekday
	}{
		{Date{1970, 1, 1}, time.Thursday},
		{Date{1969, 12, 28}, time.Sunday},
		{Date{1900, 1, 1}, time.Monday},
		{Date{2100, 12, 31}, time.Friday},
	} {
		if got := tc.d.Weekday(); got != tc.want {
			t.Errorf("%s.Weekday() = %v, want %v", tc.d, got, tc.want)
		}
	}
}

func TestIsWorkday(t *testing.T) {
	c := testCalendar(t)
	tests := []struct {
		name string
		d    string
		want bool
	}{
		{"ordinary Monday", "2026-03-02", true},
		{"ordinary Friday", "2026-03-06", true},
		{"ordinary Saturday", "2026-03-07", false},
		{"ordinary Sunday", "2026-03-08", false},
		{"New Year holiday Thursday", "2026-01-01", false},
		{"Spring Festival Monday", "2026-02-16", false},
		{"Spring Festival last day, Monday", "2026-02-23", false},
		{"day after Spring Festival", "2026-02-24", true},
		{"National Day Wednesday", "2026-10-07", false},
		{"Qingming Monday", "2026-04-06", false},
		{"holiday Saturday", "2026-02-21", false},
		{"adjusted working Saturday", "2026-02-14", true},
		{"adjusted working Saturday after festival", "2026-02-28", true},
		{"adjusted working Sunday", "2026-01-04", true},
		{"adjusted working Sunday before National Day", "2026-09-20", true},
		{"uncovered year weekday (2025 New Year)", "2025-01-01", true},
		{"uncovered year Saturday", "2027-01-02", false},
		{"uncovered year Monday", "2027-02-08", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.IsWorkday(date(tc.d)); got != tc.want {
				t.Errorf("IsWorkday(%s) = %v, want %v", tc.d, got, tc.want)
			}
		})
	}
	if !c.Covers(2026) || c.Covers(2025) || c.Covers(2027) {
		t.Errorf("Covers wrong: years %v", c.Years())
	}
	if got := fmt.Sprint(c.Years()); got != "[2026]" {
		t.Errorf("Years() = %s", got)
	}
	var nilCal *Calendar
	if !nilCal.IsWorkday(date("2026-01-01")) || nilCal.IsWorkday(date("2026-01-04")) || nilCal.Covers(2026) || nilCal.Years() != nil {
		t.Error("nil calendar is not plain Monday to Friday")
	}
}

func TestDeadline(t *testing.T) {
	c := testCalendar(t)
	tests := []struct {
		name     string
		accepted time.Time
		n        int
		unit     LimitUnit
		pauses   []Interval
		want     string // "2006-01-02 15:04" in Shanghai, or "" for ok = false
	}{
		// Working days.
		{"same week", at("2026-03-02 09:00"), 3, WorkingDays, nil, "2026-03-06 00:00"},
		{"across a weekend", at("2026-03-05 10:00"), 3, WorkingDays, nil, "2026-03-11 00:00"},
		{"zero limit is the end of the acceptance day", at("2026-03-05 10:00"), 0, WorkingDays, nil, "2026-03-06 00:00"},
		{"accepted just before the Spring Festival", at("2026-02-12 16:00"), 2, WorkingDays, nil, "2026-02-15 00:00"},
		{"Spring Festival block skipped", at("2026-02-13 10:00"), 5, WorkingDays, nil, "2026-02-28 00:00"},
		{"Spring Festival, adjusted Saturday is day 6", at("2026-02-13 10:00"), 6, WorkingDays, nil, "2026-03-01 00:00"},
		{"Spring Festival, day 7 is the Monday after", at("2026-02-13 10:00"), 7, WorkingDays, nil, "2026-03-03 00:00"},
		{"adjusted working Saturday counts", at("2026-05-08 10:00"), 1, WorkingDays, nil, "2026-05-10 00:00"},
		{"Labour Day block then adjusted Saturday", at("2026-04-30 10:00"), 4, WorkingDays, nil, "2026-05-10 00:00"},
		{"adjusted working Sunday counts", at("2026-09-18 10:00"), 1, WorkingDays, nil, "2026-09-21 00:00"},
		{"accepted on a holiday", at("2026-10-01 10:00"), 1, WorkingDays, nil, "2026-10-09 00:00"},
		{"accepted on a Saturday", at("2026-03-07 10:00"), 1, WorkingDays, nil, "2026-03-10 00:00"},
		{"accepted on a Sunday", at("2026-03-08 23:00"), 2, WorkingDays, nil, "2026-03-11 00:00"},
		{"late evening in Shanghai", at("2026-03-06 23:30"), 1, WorkingDays, nil, "2026-03-10 00:00"},
		{"UTC date differs: taken in Shanghai (Fri 00:30 local)", time.Date(2026, 3, 5, 16, 30, 0, 0, time.UTC), 1, WorkingDays, nil, "2026-03-10 00:00"},
		{"UTC date differs: Sat 07:00 local is Fri in UTC", time.Date(2026, 3, 6, 23, 0, 0, 0, time.UTC), 1, WorkingDays, nil, "2026-03-10 00:00"},
		{"15 working days", at("2026-03-02 10:00"), 15, WorkingDays, nil, "2026-03-24 00:00"},
		{"into an uncovered year", at("2026-12-30 10:00"), 3, WorkingDays, nil, "2027-01-05 00:00"},

		// Pauses, working days. Without pauses: 2026-03-02 + 5 -> end of Mon 03-09.
		{"no pause", at("2026-03-02 09:00"), 5, WorkingDays, nil, "2026-03-10 00:00"},
		{"pause over two working days", at("2026-03-02 09:00"), 5, WorkingDays,
			[]Interval{{at("2026-03-04 14:00"), at("2026-03-06 10:00")}}, "2026-03-12 00:00"},
		{"pause within one day adds nothing", at("2026-03-02 09:00"), 5, WorkingDays,
			[]Interval{{at("2026-03-04 10:00"), at("2026-03-04 15:00")}}, "2026-03-10 00:00"},
		{"pause over a weekend adds nothing", at("2026-03-02 09:00"), 5, WorkingDays,
			[]Interval{{at("2026-03-07 10:00"), at("2026-03-09 09:00")}}, "2026-03-10 00:00"},
		{"pause from the acceptance day: only later days count", at("2026-03-02 09:00"), 5, WorkingDays,
			[]Interval{{at("2026-03-02 10:00"), at("2026-03-04 09:00")}}, "2026-03-11 00:00"},
		{"overlapping pauses not counted twice", at("2026-03-02 09:00"), 5, WorkingDays,
			[]Interval{{at("2026-03-05 10:00"), at("2026-03-09 09:00")}, {at("2026-03-04 10:00"), at("2026-03-06 09:00")}}, "2026-03-13 00:00"},
		{"two separate pauses", at("2026-03-02 09:00"), 5, WorkingDays,
			[]Interval{{at("2026-03-03 10:00"), at("2026-03-04 09:00")}, {at("2026-03-09 10:00"), at("2026-03-10 09:00")}}, "2026-03-12 00:00"},
		{"pause after the deadline changes nothing", at("2026-03-02 09:00"), 5, WorkingDays,
			[]Interval{{at("2026-03-20 10:00"), at("2026-03-25 09:00")}}, "2026-03-10 00:00"},
		{"pause on the deadline day extends it", at("2026-03-02 09:00"), 5, WorkingDays,
			[]Interval{{at("2026-03-09 16:00"), at("2026-03-10 09:00")}}, "2026-03-11 00:00"},
		{"pause over the Spring Festival only costs working days", at("2026-02-12 09:00"), 3, WorkingDays,
			[]Interval{{at("2026-02-14 09:00"), at("2026-02-25 09:00")}}, "2026-02-27 00:00"}, // 14 Feb and 24 Feb lost,
		{"open pause: no deadline", at("2026-03-02 09:00"), 5, WorkingDays,
			[]Interval{{From: at("2026-03-04 10:00")}}, ""},
		{"open pause from the acceptance day", at("2026-03-02 09:00"), 5, WorkingDays,
			[]Interval{{From: at("2026-03-02 10:00")}}, ""},
		{"open pause after a closed one", at("2026-03-02 09:00"), 5, WorkingDays,
			[]Interval{{at("2026-03-03 10:00"), at("2026-03-04 09:00")}, {From: at("2026-03-05 10:00")}}, ""},
		{"open pause begun after the deadline keeps it", at("2026-03-02 09:00"), 5, WorkingDays,
			[]Interval{{From: at("2026-03-12 10:00")}}, "2026-03-10 00:00"},
		{"open pause on the day after the deadline", at("2026-03-02 09:00"), 5, WorkingDays,
			[]Interval{{From: at("2026-03-10 00:00")}}, "2026-03-10 00:00"},
		{"resume before start is ignored", at("2026-03-02 09:00"), 5, WorkingDays,
			[]Interval{{at("2026-03-06 10:00"), at("2026-03-04 10:00")}}, "2026-03-10 00:00"},

		// Calendar days.
		{"days", at("2026-03-02 10:00"), 3, Days, nil, "2026-03-06 00:00"},
		{"days ignore holidays", at("2026-02-13 10:00"), 3, Days, nil, "2026-02-17 00:00"},
		{"days taken in loc", time.Date(2026, 3, 1, 17, 0, 0, 0, time.UTC), 1, Days, nil, "2026-03-04 00:00"},
		{"days plus paused time", at("2026-03-02 10:00"), 3, Days,
			[]Interval{{at("2026-03-03 10:00"), at("2026-03-03 12:30")}}, "2026-03-06 02:30"},
		{"days, open pause", at("2026-03-02 10:00"), 3, Days, []Interval{{From: at("2026-03-03 10:00")}}, ""},

		// Hours.
		{"hours", at("2026-03-02 10:00"), 24, Hours, nil, "2026-03-03 10:00"},
		{"hours over a holiday", at("2026-02-15 10:00"), 2, Hours, nil, "2026-02-15 12:00"},
		{"hours plus paused time", at("2026-03-02 10:00"), 24, Hours,
			[]Interval{{at("2026-03-02 11:00"), at("2026-03-02 13:00")}}, "2026-03-03 12:00"},
		{"hours, pause before acceptance clipped", at("2026-03-02 10:00"), 24, Hours,
			[]Interval{{at("2026-03-02 08:00"), at("2026-03-02 11:00")}}, "2026-03-03 11:00"},
		{"hours, pause after the deadline", at("2026-03-02 10:00"), 24, Hours,
			[]Interval{{at("2026-03-03 10:00"), at("2026-03-03 13:00")}}, "2026-03-03 10:00"},
		{"hours, open pause", at("2026-03-02 10:00"), 24, Hours, []Interval{{From: at("2026-03-02 11:00")}}, ""},

		// Invalid.
		{"negative limit", at("2026-03-02 10:00"), -1, WorkingDays, nil, ""},
		{"huge limit", at("2026-03-02 10:00"), MaxLimit + 1, WorkingDays, nil, ""},
		{"unknown unit", at("2026-03-02 10:00"), 3, "weeks", nil, ""},
		{"empty unit", at("2026-03-02 10:00"), 3, "", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Deadline(c, tc.accepted, tc.n, tc.unit, tc.pauses, shanghai)
			if tc.want == "" {
				if ok {
					t.Fatalf("Deadline = %v, ok; want no deadline", got.In(shanghai))
				}
				return
			}
			if !ok {
				t.Fatalf("Deadline not ok, want %s", tc.want)
			}
			if want := at(tc.want); !got.Equal(want) {
				t.Errorf("Deadline = %s, want %s", got.In(shanghai).Format("2006-01-02 15:04 Mon"), want.Format("2006-01-02 15:04 Mon"))
			}
		})
	}
}

func TestWorkdaysAfter(t *testing.T) {
	c := testCalendar(t)
	tests := []struct {
		name string
		t    time.Time
		n    int
		want string
	}{
		{"15 working days, ordinary", at("2026-03-02 10:00"), 15, "2026-03-24 00:00"},
		{"15 working days across the Spring Festival", at("2026-02-10 10:00"), 15, "2026-03-10 00:00"},
		{"15 working days across National Day", at("2026-09-28 10:00"), 15, "2026-10-24 00:00"},
		{"from a UTC instant that is the next day in Shanghai", time.Date(2026, 2, 9, 16, 30, 0, 0, time.UTC), 15, "2026-03-10 00:00"},
		{"zero", at("2026-03-02 10:00"), 0, "2026-03-03 00:00"},
		{"negative is zero", at("2026-03-02 10:00"), -3, "2026-03-03 00:00"},
		{"a year of working days", at("2026-01-01 10:00"), 248, "2027-01-01 00:00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := WorkdaysAfter(c, tc.t, tc.n, shanghai)
			if want := at(tc.want); !got.Equal(want) {
				t.Errorf("WorkdaysAfter = %s, want %s", got.In(shanghai).Format("2006-01-02 15:04 Mon"), tc.want)
			}
		})
	}
	// Clamped, terminates.
	if got := WorkdaysAfter(c, at("2026-03-02 10:00"), 1<<60, shanghai); got.Year() < 2150 {
		t.Errorf("huge n: %v", got)
	}
}

func TestWorkdays(t *testing.T) {
	c := testCalendar(t)
	tests := []struct {
		name     string
		from, to string
		want     int
	}{
		{"one week", "2026-03-02", "2026-03-09", 5},
		{"February 2026", "2026-02-01", "2026-03-01", 16},
		{"October 2026", "2026-10-01", "2026-11-01", 18},
		{"year 2026", "2026-01-01", "2027-01-01", 248},
		{"Spring Festival block", "2026-02-15", "2026-02-24", 0},
		{"single adjusted Sunday", "2026-01-04", "2026-01-05", 1},
		{"single holiday", "2026-01-01", "2026-01-02", 0},
		{"empty", "2026-03-02", "2026-03-02", 0},
		{"reversed", "2026-03-09", "2026-03-02", 0},
		{"uncovered year 2027", "2027-01-01", "2028-01-01", 261},
		{"across years", "2025-12-29", "2026-01-06", 5}, // Mon-Wed 2025, Sun 4 Jan, Mon 5 Jan
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Workdays(c, date(tc.from), date(tc.to)); got != tc.want {
				t.Errorf("Workdays(%s, %s) = %d, want %d", tc.from, tc.to, got, tc.want)
			}
		})
	}
}

// TestWorkdaysMatchesIsWorkday checks the O(1) count against counting day by day.
func TestWorkdaysMatchesIsWorkday(t *testing.T) {
	c := testCalendar(t)
	start := date("2025-11-01")
	naive := func(from, to Date) int {
		n := 0
		for d := from; d.Before(to); d = d.AddDays(1) {
			if c.IsWorkday(d) {
				n++
			}
		}
		return n
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		from := start.AddDays(r.Intn(500))
		to := from.AddDays(r.Intn(120) - 10)
		if got, want := Workdays(c, from, to), naive(from, to); got != want {
			t.Fatalf("Workdays(%s, %s) = %d, naive %d", from, to, got, want)
		}
	}
}

// refWorkingDeadline is the rule of the package doc, walked day by day.
func refWorkingDeadline(c *Calendar, accepted time.Time, n int, pauses []Interval, loc *time.Location) (time.Time, bool) {
	paused := func(d Date) (covered, open bool) {
		for _, p := range pauses {
			from := DateOf(p.From, loc)
			if p.To.IsZero() {
				if !d.Before(from) {
					covered, open = true, true
				}
				continue
			}
			if !d.Before(from) && d.Before(DateOf(p.To, loc)) {
				covered = true
			}
		}
		return
	}
	d := DateOf(accepted, loc)
	for count := 0; count < n; {
		d = d.AddDays(1)
		covered, open := paused(d)
		if open {
			return time.Time{}, false
		}
		if !covered && c.IsWorkday(d) {
			count++
		}
	}
	return d.End(loc), true
}

// refRunningDeadline walks minute by minute.
func refRunningDeadline(accepted time.Time, budget time.Duration, pauses []Interval) (time.Time, bool) {
	t := accepted
	for rem := budget; rem > 0; t = t.Add(time.Minute) {
		covered := false
		for _, p := range pauses {
			if !t.Before(p.From) && (p.To.IsZero() || t.Before(p.To)) {
				if p.To.IsZero() {
					return time.Time{}, false
				}
				covered = true
			}
		}
		if !covered {
			rem -= time.Minute
		}
	}
	return t, true
}

func randomPauses(r *rand.Rand, accepted time.Time, unit time.Duration, spread int) []Interval {
	var ps []Interval
	for k := r.Intn(4); k > 0; k-- {
		from := accepted.Add(time.Duration(r.Intn(spread)-spread/8) * unit)
		p := Interval{From: from, To: from.Add(time.Duration(r.Intn(spread/2)-spread/16) * unit)}
		if r.Intn(6) == 0 {
			p.To = time.Time{}
		}
		ps = append(ps, p)
	}
	return ps
}

func TestDeadlineMatchesReference(t *testing.T) {
	c := testCalendar(t)
	r := rand.New(rand.NewSource(2))
	base := at("2025-12-01 00:00")
	for i := 0; i < 5000; i++ {
		accepted := base.Add(time.Duration(r.Intn(400*24*60)) * time.Minute)
		n := r.Intn(30)
		pauses := randomPauses(r, accepted, time.Hour, 24*40)
		got, ok := Deadline(c, accepted, n, WorkingDays, pauses, shanghai)
		want, wantOK := refWorkingDeadline(c, accepted, n, pauses, shanghai)
		if ok != wantOK || !got.Equal(want) {
			t.Fatalf("accepted %v, n %d, pauses %v:\n got %v %v\nwant %v %v", accepted, n, pauses, got, ok, want, wantOK)
		}
		if ok && len(pauses) == 0 {
			if w := Workdays(c, DateOf(accepted, shanghai).AddDays(1), DateOf(got, shanghai)); w != n {
				t.Fatalf("accepted %v, n %d: %d working days before deadline %v", accepted, n, w, got)
			}
		}
	}
	for i := 0; i < 1000; i++ {
		accepted := base.Add(time.Duration(r.Intn(400*24*60)) * time.Minute)
		unit, n := Hours, r.Intn(48)
		budget := time.Duration(n) * time.Hour
		if r.Intn(2) == 0 {
			unit, n = Days, r.Intn(4)
			budget = DateOf(accepted, shanghai).AddDays(n).End(shanghai).Sub(accepted)
		}
		pauses := randomPauses(r, accepted, time.Hour, 96)
		got, ok := Deadline(c, accepted, n, unit, pauses, shanghai)
		want, wantOK := refRunningDeadline(accepted, budget, pauses)
		if ok != wantOK || !got.Equal(want) {
			t.Fatalf("%s: accepted %v, n %d, pauses %v:\n got %v %v\nwant %v %v", unit, accepted, n, pauses, got, ok, want, wantOK)
		}
	}
}

func TestParseErrors(t *testing.T) {
	ok := "year: 2026\nholidays:\n  - 2026-01-01\nworkdays:\n  - 2026-01-04\n"
	tests := []struct {
		name  string
		files map[string][]byte
		want  []string // substrings of the error
	}{
		{"no files", map[string][]byte{}, []string{"no holiday calendar files"}},
		{"bad date", map[string][]byte{"2026.yaml": []byte("year: 2026\nholidays:\n  - 2026-01-01\n  - 2026-01-02\n  - 2026-01-03\n  - 2026-02-30\n")},
			[]string{`2026.yaml: holidays[3]: "2026-02-30" is not a date`, "line 6"}},
		{"not a date at all", map[string][]byte{"2026.yaml": []byte("year: 2026\nworkdays:\n  - next monday\n")},
			[]string{`2026.yaml: workdays[0]: "next monday" is not a date`}},
		{"empty list item", map[string][]byte{"2026.yaml": []byte("year: 2026\nholidays:\n  -\n")},
			[]string{`2026.yaml: holidays[0]: "" is not a date`}},
		{"list item is a mapping", map[string][]byte{"2026.yaml": []byte("year: 2026\nholidays:\n  - date: 2026-01-01\n")},
			[]string{`2026.yaml: holidays[0]: not a date`}},
		{"date in another year", map[string][]byte{"2026.yaml": []byte("year: 2026\nholidays:\n  - 2025-12-31\n")},
			[]string{`2026.yaml: holidays[0]: "2025-12-31" is not in year 2026`}},
		{"missing year", map[string][]byte{"x.yaml": []byte("holidays:\n  - 2026-01-01\n")},
			[]string{"x.yaml: year: missing"}},
		{"bad year", map[string][]byte{"x.yaml": []byte("year: twenty\n")},
			[]string{`x.yaml: year: "twenty" is not a year`}},
		{"year out of range", map[string][]byte{"x.yaml": []byte("year: 20260\n")},
			[]string{`x.yaml: year: "20260" is not a year`}},
		{"year is a list", map[string][]byte{"x.yaml": []byte("year: [2026]\n")},
			[]string{`x.yaml: year: not a year`}},
		{"duplicate holiday", map[string][]byte{"2026.yaml": []byte("year: 2026\nholidays:\n  - 2026-01-01\n  - 2026-01-02\n  - 2026-01-01\n")},
			[]string{`2026.yaml: holidays[2]: "2026-01-01" is listed twice (also holidays[0])`}},
		{"duplicate workday", map[string][]byte{"2026.yaml": []byte("year: 2026\nworkdays:\n  - 2026-01-04\n  - 2026-01-04\n")},
			[]string{`2026.yaml: workdays[1]: "2026-01-04" is listed twice (also workdays[0])`}},
		{"holiday and workday", map[string][]byte{"2026.yaml": []byte("year: 2026\nholidays:\n  - 2026-01-03\nworkdays:\n  - 2026-01-03\n")},
			[]string{`2026.yaml: workdays[0]: "2026-01-03" is both a holiday and a working day (also holidays[0])`}},
		{"workday on a weekday", map[string][]byte{"2026.yaml": []byte("year: 2026\nworkdays:\n  - 2026-01-05\n")},
			[]string{`2026.yaml: workdays[0]: "2026-01-05" is a Monday`}},
		{"unknown key", map[string][]byte{"2026.yaml": []byte("year: 2026\nholiday:\n  - 2026-01-01\n")},
			[]string{"2026.yaml:", "holiday", "line 2", "not a known key"}},
		{"holidays not a list", map[string][]byte{"2026.yaml": []byte("year: 2026\nholidays: 2026-01-01\n")},
			[]string{"2026.yaml:", "line 2"}},
		{"not a mapping", map[string][]byte{"2026.yaml": []byte("- 2026-01-01\n")},
			[]string{"2026.yaml:"}},
		{"not YAML", map[string][]byte{"2026.yaml": []byte("year: 2026\n\tholidays: [\n")},
			[]string{"2026.yaml:"}},
		{"empty file", map[string][]byte{"2026.yaml": nil},
			[]string{"2026.yaml: empty file"}},
		{"two documents", map[string][]byte{"2026.yaml": []byte(ok + "---\nyear: 2027\n")},
			[]string{"2026.yaml: more than one YAML document"}},
		{"same year in two files", map[string][]byte{"a.yaml": []byte(ok), "b.yaml": []byte(ok)},
			[]string{"b.yaml: year: 2026 is already defined by a.yaml"}},
		{"error in the second file", map[string][]byte{"2026.yaml": []byte(ok), "2027.yaml": []byte("year: 2027\nholidays:\n  - 2027-13-01\n")},
			[]string{`2027.yaml: holidays[0]: "2027-13-01" is not a date`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(tc.files)
			if err == nil {
				t.Fatalf("Parse accepted it: years %v", c.Years())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseSeveralYears(t *testing.T) {
	c, err := Parse(map[string][]byte{
		"2026.yaml":  []byte(fixture2026),
		"2027.yaml":  []byte("# made up\nyear: 2027\nholidays: [2027-01-01]\nworkdays: [2027-01-02]\n"),
		"2030.yaml":  []byte("year: 2030\n"), // covered, nothing listed
		"alias.yaml": []byte("year: 2031\nholidays:\n  - &d 2031-01-01\nworkdays: []\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.Years()); got != "[2026 2027 2030 2031]" {
		t.Errorf("Years() = %s", got)
	}
	if !c.Covers(2030) || c.Covers(2028) {
		t.Error("Covers wrong")
	}
	if c.IsWorkday(date("2027-01-01")) || !c.IsWorkday(date("2027-01-02")) || c.IsWorkday(date("2031-01-01")) {
		t.Error("2027/2031 dates not applied")
	}
	// 2026: 248; 2027: 261 plain weekdays - 1 holiday + 1 workday.
	if got := Workdays(c, date("2026-01-01"), date("2028-01-01")); got != 248+261 {
		t.Errorf("Workdays 2026-2027 = %d", got)
	}
	// Years() is a copy.
	c.Years()[0] = 1
	if c.Years()[0] != 2026 {
		t.Error("Years() exposes internal state")
	}
}

// TestShippedCalendar checks configs/holidays: it parses, covers 2026, and
// looks like a PRC year. It cannot check the dates against the notice.
func TestShippedCalendar(t *testing.T) {
	files, err := holidays.Default()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(files)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Covers(2026) {
		t.Fatalf("shipped calendar does not cover 2026: %v", c.Years())
	}
	var hol, work int
	for d := date("2026-01-01"); d.Year == 2026; d = d.AddDays(1) {
		weekend := d.Weekday() == time.Saturday || d.Weekday() == time.Sunday
		switch k := c.kindOf(d); k {
		case holiday:
			hol++
		case workday:
			work++
			if !weekend {
				t.Errorf("adjusted working day %s is a %s", d, d.Weekday())
			}
		}
	}
	if hol < 25 {
		t.Errorf("only %d holidays in 2026", hol)
	}
	if work < 5 {
		t.Errorf("only %d adjusted working days in 2026", work)
	}
	// Statutory holidays (13 days) and the 调休 balance: a PRC year has
	// weekends + 13 days off.
	if got := Workdays(c, date("2026-01-01"), date("2027-01-01")); got < 240 || got > 252 {
		t.Errorf("2026 has %d working days", got)
	}
	for _, d := range []string{"2026-01-01", "2026-02-17", "2026-05-01", "2026-10-01"} {
		if c.IsWorkday(date(d)) {
			t.Errorf("%s is a working day in the shipped calendar", d)
		}
	}
	// The shipped file and the test fixture agree; if the center corrects
	// the file, update fixture2026 (and the expectations built on it).
	fixture := testCalendar(t)
	for d := date("2026-01-01"); d.Year == 2026; d = d.AddDays(1) {
		if c.IsWorkday(d) != fixture.IsWorkday(d) {
			t.Errorf("%s: shipped calendar and test fixture differ", d)
		}
	}
}

func (c *Calendar) kindOf(d Date) dayKind {
	if i := d.dayNumber() - c.base; i >= 0 && i < len(c.kinds) {
		return c.kinds[i]
	}
	return plain
}

func TestConcurrentUse(t *testing.T) {
	c := testCalendar(t)
	want, _ := Deadline(c, at("2026-02-13 10:00"), 7, WorkingDays, nil, shanghai)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				got, ok := Deadline(c, at("2026-02-13 10:00"), 7, WorkingDays, nil, shanghai)
				if !ok || !got.Equal(want) {
					t.Errorf("concurrent Deadline = %v", got)
					return
				}
				_ = c.IsWorkday(date("2026-02-14"))
				_ = Workdays(c, date("2026-01-01"), date("2026-12-31"))
				_ = c.Years()
			}
		}()
	}
	wg.Wait()
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(fixture2026))
	f.Add([]byte("year: 2026\n"))
	f.Add([]byte("year: 2026\nholidays: [2026-01-01]\nworkdays: [2026-01-04]\n"))
	f.Add([]byte("year: 2026\nholidays:\n  - 2026-02-30\n"))
	f.Add([]byte("year: &y 2026\nholidays: [*y]\n"))
	f.Add([]byte("---\n...\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(map[string][]byte{"fuzz.yaml": data})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		years := c.Years()
		if len(years) != 1 || !c.Covers(years[0]) {
			t.Fatalf("one file, years %v", years)
		}
		y := years[0]
		from, to := Date{y, 1, 1}, Date{y + 1, 1, 1}
		n := 0
		for d := from; d.Before(to); d = d.AddDays(1) {
			if c.IsWorkday(d) {
				n++
			}
		}
		if got := Workdays(c, from, to); got != n {
			t.Fatalf("Workdays(%d) = %d, counted %d", y, got, n)
		}
		accepted := from.Start(time.UTC).Add(10 * time.Hour)
		d, ok := Deadline(c, accepted, 20, WorkingDays, nil, time.UTC)
		if !ok || Workdays(c, from.AddDays(1), DateOf(d, time.UTC)) != 20 {
			t.Fatalf("Deadline = %v %v", d, ok)
		}
	})
}

func BenchmarkDeadline(b *testing.B) {
	c := testCalendar(b)
	accepted := at("2026-02-10 10:00")
	pauses := []Interval{{at("2026-02-12 10:00"), at("2026-02-26 10:00")}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Deadline(c, accepted.Add(time.Duration(i%300)*24*time.Hour), 20, WorkingDays, pauses, shanghai)
	}
}
