package records

import (
	"slices"
	"strings"
)

// Case event types, which are also the case states: a case is in the state
// named by its last effective lifecycle event (DOMAIN.md):
//
//	received -> accepted -> (correction_requested -> supplemented)* -> (paused -> resumed)*
//	         -> completed | rejected | withdrawn
//
// An instant item (即办件) may go received -> completed.
const (
	EventReceived            = "received"
	EventAccepted            = "accepted"
	EventCorrectionRequested = "correction_requested" // 补正: one-time notification of everything missing
	EventSupplemented        = "supplemented"
	EventPaused              = "paused" // 特别程序: hearing, testing, appraisal; stops the clock
	EventResumed             = "resumed"
	EventCompleted           = "completed"
	EventRejected            = "rejected"
	EventWithdrawn           = "withdrawn"

	StateReceived = EventReceived
)

// caseTransitions lists, for each state, the events it allows.
var caseTransitions = map[string][]string{
	EventReceived:            {EventAccepted, EventCorrectionRequested, EventRejected, EventWithdrawn, EventCompleted},
	EventAccepted:            {EventCorrectionRequested, EventPaused, EventCompleted, EventRejected, EventWithdrawn},
	EventCorrectionRequested: {EventSupplemented, EventRejected, EventWithdrawn},
	EventSupplemented:        {EventAccepted, EventCorrectionRequested, EventPaused, EventCompleted, EventRejected, EventWithdrawn},
	EventPaused:              {EventResumed, EventWithdrawn},
	EventResumed:             {EventCorrectionRequested, EventPaused, EventCompleted, EventRejected, EventWithdrawn},
	EventCompleted:           nil,
	EventRejected:            nil,
	EventWithdrawn:           nil,
}

// IsCaseEvent reports whether t is a lifecycle event type.
func IsCaseEvent(t string) bool { _, ok := caseTransitions[t]; return ok }

// Terminal reports whether a case state is final.
func Terminal(state string) bool {
	return state == EventCompleted || state == EventRejected || state == EventWithdrawn
}

// caseEventTypes lists the event types a client may post, for messages.
func caseEventTypes() string {
	var ts []string
	for t := range caseTransitions {
		if t != EventReceived {
			ts = append(ts, t)
		}
	}
	slices.Sort(ts)
	return strings.Join(ts, ", ")
}

// allowed reports whether event type t may follow state in a case.
// Completing straight from received is only for instant items, and an
// acceptance before any correction is only possible once.
func allowed(c *Case, state, t string) bool {
	if !slices.Contains(caseTransitions[state], t) {
		return false
	}
	if state == EventReceived && t == EventCompleted && !c.Instant {
		return false
	}
	if t == EventAccepted && c.accepted {
		return false
	}
	return true
}

// sortEvents orders events by HLC, then id: the one order every node uses.
func sortEvents(evs []Event) {
	slices.SortFunc(evs, func(a, b Event) int {
		if c := strings.Compare(string(a.HLC), string(b.HLC)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// Fold recomputes a case's state from its events: it sorts them and walks
// the lifecycle, marking an event that is not possible at its place in the
// order as a conflict (kept, not applied). Every node folds the same set of
// events to the same state, whatever order they arrived in.
func (c *Case) Fold() {
	sortEvents(c.Events)
	c.State = ""
	c.accepted = false
	for i := range c.Events {
		c.Events[i].Conflict = !c.step(c.Events[i].Type)
	}
}

// step walks the lifecycle one event further: false when the event is
// not possible in the case's state (a conflict, which changes nothing).
func (c *Case) step(t string) bool {
	switch {
	case c.State == "" && t == EventReceived:
		c.State = EventReceived
	case c.State != "" && allowed(c, c.State, t):
		c.State = t
		if t == EventAccepted {
			c.accepted = true
		}
	default:
		return false
	}
	return true
}
