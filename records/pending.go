package records

// Read-your-writes on a PC whose writes wait in its outbox: the clerk who
// recorded them sees them, marked pending, merged into what the station
// has committed.

// WithPending merges a case's pending writes (in the order they were
// made) into the committed case c (nil when the station has none yet).
// ok is false when there is neither. The merged case is folded, so an
// event the history would not allow already shows as a conflict.
func WithPending(r Reader, c *Case, ops []Op) (merged Case, ok bool, err error) {
	if c != nil {
		merged, ok = *c, true
		merged.Events = append([]Event(nil), c.Events...)
		merged.Evaluations = append([]Evaluation(nil), c.Evaluations...)
	}
	for _, op := range ops {
		switch {
		case op.Kind == OpCreateCase && op.Case != nil && !ok:
			merged, ok = *op.Case, true
			merged.Pending = true
			merged.Events = append([]Event(nil), op.Case.Events...)
			for i := range merged.Events {
				merged.Events[i].Pending = true
			}
			it, err := GetItem(r, merged.ItemCode)
			if err == nil {
				merged.ItemName, merged.Instant, merged.Limit = it.Name, it.Instant, it.PromisedLimit
			} else if _, domain := AsError(err); !domain {
				return Case{}, false, err
			}
		case op.Kind == OpAppendEvent && op.Event != nil && ok && !hasEvent(merged, op.Event.ID):
			ev := *op.Event
			ev.HLC = After(ev.HLC, merged.lastHLC())
			ev.At, ev.Pending = ev.HLC.Time(), true
			merged.Events = append(merged.Events, ev)
		case op.Kind == OpEvaluate && op.Evaluation != nil && ok && !hasEvaluation(merged, op.Evaluation.ID):
			e := *op.Evaluation
			e.Pending = true
			merged.Evaluations = append(merged.Evaluations, e)
		}
	}
	if ok {
		merged.Fold()
	}
	return merged, ok, nil
}

func hasEvent(c Case, id string) bool {
	for _, e := range c.Events {
		if e.ID == id {
			return true
		}
	}
	return false
}

func hasEvaluation(c Case, id string) bool {
	for _, e := range c.Evaluations {
		if e.ID == id {
			return true
		}
	}
	return false
}

// PendingCases returns the cases created in ops (not yet committed) that
// q's month, item and status select, in the order they were created, with
// their later pending writes merged.
func PendingCases(r Reader, ops []Op, q CaseQuery) ([]Case, error) {
	match, err := q.filter()
	if err != nil {
		return nil, err
	}
	byCase := map[string][]Op{}
	var order []string
	for _, op := range ops {
		id := CaseOf(op)
		if op.Kind == OpCreateCase {
			order = append(order, id)
		}
		byCase[id] = append(byCase[id], op)
	}
	out := []Case{}
	for _, id := range order {
		if _, err := GetCase(r, id); err == nil {
			continue // committed meanwhile: listed as such
		}
		c, ok, err := WithPending(r, nil, byCase[id])
		if err != nil {
			return nil, err
		}
		if ok && match(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// CaseOf is the case an op writes to ("" for an item).
func CaseOf(op Op) string {
	_, caseID, _, _, _ := opID(op)
	return caseID
}
