// Package calendar is the working-day calendar of stationsync: public
// holidays and adjusted working weekends (调休) of the PRC, and the time
// limits computed from them (办结时限: "自受理之日起N个工作日").
//
// It is pure Go without I/O: [Parse] takes the contents of one or more YAML
// year files (see configs/holidays) and returns an immutable [Calendar] that
// is safe for concurrent use. A nil *Calendar is valid and means "no
// holidays": Monday to Friday are working days.
//
// # Working days
//
// A date is a working day when it is Monday to Friday and not listed as a
// holiday, or when it is a Saturday or Sunday listed as an adjusted working
// day (调休上班). For a year the calendar does not cover, the plain
// Monday-to-Friday rule applies; use [Calendar.Covers] to warn about it.
//
// # Deadlines
//
// [Deadline] implements the common reading of "自受理之日起N个工作日":
//
//   - Dates are taken in the station's location (loc), never in UTC.
//   - The acceptance day itself does not count, whatever the hour and whether
//     or not it is a working day. Day 1 is the first working day after the
//     acceptance day (for a case accepted on a Saturday or a holiday, the next
//     working day).
//   - The deadline is the end of the N-th counted working day, returned as the
//     exclusive bound: the start (00:00 in loc) of the following day. A case
//     is overdue when it is not completed before that instant. N = 0 gives
//     the end of the acceptance day (即办件).
//   - Pauses (特别程序: hearing, testing, appraisal) stop the clock. A pause
//     covers the dates from the date it starts (inclusive) to the date it is
//     resumed (exclusive), both taken in loc: the day the clock stops counts
//     as paused, the day it restarts counts as running, and a pause that
//     starts and ends on the same date covers no day. Working days covered by
//     a pause are not counted, which pushes the deadline out by one working
//     day each. Overlapping pauses are not counted twice; paused days on or
//     before the acceptance day, and pauses that start only after the
//     deadline has been reached, change nothing.
//   - A pause that is still open (To is zero) covers every date from its
//     start: if the deadline has not been reached before the pause starts,
//     there is no deadline while paused (ok = false). A pause opened after
//     the deadline had already passed leaves that deadline (and the overdue
//     status) unchanged.
//
// For unit "days" the limit is N calendar days with the same end-of-day rule
// (the end of the N-th day after the acceptance day); for unit "hours" it is
// the acceptance time plus N hours. For both, the paused time itself is
// added: the deadline is the instant at which the running (unpaused) time
// since acceptance reaches the limit, where the limit is N hours, or for
// "days" the time from acceptance to the end of the N-th day. Again an open
// pause that starts before that instant gives ok = false.
//
// # Cost
//
// Parse builds a dense per-day table with prefix sums, so [Workdays] is O(1)
// and finding the N-th working day is a binary search over it (O(log N)),
// without allocation unless a case has more than a handful of pauses.
// Computing deadlines for ~100k cases takes milliseconds.
package calendar
