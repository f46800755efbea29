package records

import (
	"time"

	"github.com/stationsync/stationsync/records/calendar"
)

// Timeline is what the deadline rules need from a case's folded events.
type Timeline struct {
	Accepted  time.Time           // first effective acceptance; zero if none
	Closed    time.Time           // completed, rejected or withdrawn; zero while open
	Completed bool                // closed by completed
	Pauses    []calendar.Interval // paused -> resumed; an open pause has a zero To
}

// Timeline reads the case's effective (non-conflict) events.
func (c *Case) Timeline() Timeline {
	var tl Timeline
	for _, ev := range c.Events {
		if ev.Conflict {
			continue
		}
		switch ev.Type {
		case EventAccepted:
			if tl.Accepted.IsZero() {
				tl.Accepted = ev.At
			}
		case EventPaused:
			tl.Pauses = append(tl.Pauses, calendar.Interval{From: ev.At})
		case EventResumed:
			if n := len(tl.Pauses); n > 0 && tl.Pauses[n-1].To.IsZero() {
				tl.Pauses[n-1].To = ev.At
			}
		case EventCompleted, EventRejected, EventWithdrawn:
			tl.Closed = ev.At
			tl.Completed = ev.Type == EventCompleted
		}
	}
	return tl
}

// Deadline is a case's promised completion time (承诺办结时间): acceptance
// plus the item's promised limit in working days (holidays and 调休 from
// cal), paused time not counted. ok is false when the case has no
// deadline: not accepted yet, no promised limit, or paused right now.
func (c *Case) Deadline(cal *calendar.Calendar, loc *time.Location) (deadline time.Time, ok bool) {
	tl := c.Timeline()
	if c.Limit == nil || tl.Accepted.IsZero() {
		return time.Time{}, false
	}
	return calendar.Deadline(cal, tl.Accepted, c.Limit.Value, calendar.LimitUnit(c.Limit.Unit), tl.Pauses, loc)
}

// Overdue reports whether the case was not completed by its deadline: still
// open after it at now, or closed after it.
func (c *Case) Overdue(cal *calendar.Calendar, loc *time.Location, now time.Time) bool {
	dl, ok := c.Deadline(cal, loc)
	if !ok {
		return false
	}
	tl := c.Timeline()
	if !tl.Closed.IsZero() {
		return tl.Closed.After(dl)
	}
	return now.After(dl)
}

// Due is a work order's due time: DueDays working days after it opened.
func (w *WorkOrder) Due(cal *calendar.Calendar, loc *time.Location) time.Time {
	return calendar.WorkdaysAfter(cal, w.OpenedAt, w.DueDays, loc)
}

// Overdue reports whether an open work order is past its due time.
func (w *WorkOrder) Overdue(cal *calendar.Calendar, loc *time.Location, now time.Time) bool {
	return !WorkOrderTerminal(w.State) && now.After(w.Due(cal, loc))
}
