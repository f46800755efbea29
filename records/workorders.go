package records

import (
	"slices"
	"strings"
	"time"
)

// Work order states (差评工单, DOMAIN.md): open -> verifying -> rectifying
// -> replied -> closed, with invalid (a mistaken or malicious review) and
// cannot_rectify, both only with an approver. "assigned" changes the owner
// without changing the state.
const (
	WorkOrderOpen          = "open"
	WorkOrderVerifying     = "verifying"
	WorkOrderRectifying    = "rectifying"
	WorkOrderReplied       = "replied"
	WorkOrderClosed        = "closed"
	WorkOrderInvalid       = "invalid"
	WorkOrderCannotRectify = "cannot_rectify"
	WorkOrderAssigned      = "assigned"

	// DefaultWorkOrderDays is the default due time of a work order.
	DefaultWorkOrderDays = 15
)

var workOrderTransitions = map[string][]string{
	WorkOrderOpen:          {WorkOrderVerifying, WorkOrderInvalid, WorkOrderCannotRectify},
	WorkOrderVerifying:     {WorkOrderRectifying, WorkOrderReplied, WorkOrderInvalid, WorkOrderCannotRectify},
	WorkOrderRectifying:    {WorkOrderReplied, WorkOrderCannotRectify},
	WorkOrderReplied:       {WorkOrderClosed, WorkOrderRectifying},
	WorkOrderClosed:        nil,
	WorkOrderInvalid:       nil,
	WorkOrderCannotRectify: nil,
}

// WorkOrderTerminal reports whether a work order state is final.
func WorkOrderTerminal(state string) bool {
	_, known := workOrderTransitions[state]
	return known && len(workOrderTransitions[state]) == 0
}

// WorkOrderEvent is one step of a work order.
type WorkOrderEvent struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	Actor    string    `json:"actor"`
	Owner    string    `json:"owner,omitempty"`    // assigned: the new owner
	Approver string    `json:"approver,omitempty"` // invalid, cannot_rectify
	Note     string    `json:"note,omitempty"`     // what was found, done, or the call-back result
	HLC      HLC       `json:"hlc"`
	At       time.Time `json:"at"`
	Node     string    `json:"node,omitempty"`
	Conflict bool      `json:"conflict,omitempty"`
}

// WorkOrder is a bad-review work order, opened by a bad evaluation.
type WorkOrder struct {
	ID           string           `json:"id"`
	CaseID       string           `json:"case_id"`
	EvaluationID string           `json:"evaluation_id"`
	Station      string           `json:"station"`
	ItemCode     string           `json:"item_code"`
	Level        string           `json:"level"`
	Text         string           `json:"text,omitempty"`
	State        string           `json:"state"`
	Owner        string           `json:"owner,omitempty"`
	OpenedAt     time.Time        `json:"opened_at"`
	DueDays      int              `json:"due_days"`
	Callback     string           `json:"callback,omitempty"`     // call-back result, from the closing event
	SecondLevel  string           `json:"second_level,omitempty"` // the evaluator's second evaluation
	Events       []WorkOrderEvent `json:"events"`
}

// Validate checks a work order event as posted by a client.
func (e *WorkOrderEvent) Validate() error {
	if e.ID != "" && !validRecordID(e.ID) {
		return Invalid("id", "must be at most 64 characters without spaces or '/'")
	}
	if _, ok := workOrderTransitions[e.Type]; (!ok || e.Type == WorkOrderOpen) && e.Type != WorkOrderAssigned {
		return Invalid("type", "%q must be one of assigned, verifying, rectifying, replied, closed, invalid, cannot_rectify", e.Type)
	}
	if strings.TrimSpace(e.Actor) == "" {
		return Invalid("actor", "is required")
	}
	if e.Type == WorkOrderAssigned && strings.TrimSpace(e.Owner) == "" {
		return Invalid("owner", "is required for assigned")
	}
	if e.Type == WorkOrderInvalid || e.Type == WorkOrderCannotRectify {
		if strings.TrimSpace(e.Approver) == "" {
			return Invalid("approver", "%s needs the approver who agreed to it", e.Type)
		}
		if e.Approver == e.Actor {
			return Invalid("approver", "must be another person than the actor")
		}
	}
	if len(e.Note) > 4000 {
		return Invalid("note", "is longer than 4000 bytes")
	}
	return nil
}

// Fold recomputes the work order's state, owner and call-back from its
// events in (HLC, id) order, marking impossible events as conflicts.
func (w *WorkOrder) Fold() {
	slices.SortFunc(w.Events, func(a, b WorkOrderEvent) int {
		if c := strings.Compare(string(a.HLC), string(b.HLC)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	w.State, w.Owner, w.Callback = WorkOrderOpen, "", ""
	for i := range w.Events {
		ev := &w.Events[i]
		ev.Conflict = false
		switch {
		case ev.Type == WorkOrderAssigned && !WorkOrderTerminal(w.State):
			w.Owner = ev.Owner
		case slices.Contains(workOrderTransitions[w.State], ev.Type):
			w.State = ev.Type
			if ev.Type == WorkOrderClosed {
				w.Callback = ev.Note
			}
		default:
			ev.Conflict = true
		}
	}
}
