package records

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Offline writes. A PC cut off from its station's leader keeps case
// writes in its outbox and delivers them later with Op.Offline set. By
// then the merged history may no longer allow them (the case was completed
// on another PC meanwhile, the evaluation was given twice). An online
// write is refused then (409, nothing written); an offline one is never
// dropped: it is kept and flagged as a conflict for a person to resolve.
//
//   - A lifecycle event is kept in the case's history at its place (after
//     everything committed before it), marked conflict: it does not change
//     the case's state.
//   - Any other refused write (an evaluation given twice, a case for an
//     item no longer on the list, an event for a case this station does
//     not hold) is parked: the op is stored as it was sent, not applied.
//
// Either way a conflict record lists it, until a person resolves it.

// OpResolveConflict marks a conflict as resolved by a person.
const OpResolveConflict = "resolve_conflict"

// Where a conflicting offline write was kept.
const (
	KeptInHistory = "in_history" // the event is in the case's history, marked conflict
	KeptParked    = "parked"     // the op is stored in the conflict record, not applied
)

const (
	prefixConflict = "conflict/"
	keyMaxHLC      = "meta/hlc"
)

// ConflictRecord is an offline write the merged history did not allow.
type ConflictRecord struct {
	ID       string      `json:"id"` // the event (or evaluation, or case's first event) id
	CaseID   string      `json:"case_id"`
	Kind     string      `json:"kind"`           // the op kind
	Type     string      `json:"type,omitempty"` // the event type or evaluation level
	Node     string      `json:"node"`           // the PC that recorded it
	HLC      HLC         `json:"hlc"`            // when it was recorded there
	Reason   string      `json:"reason"`
	Kept     string      `json:"kept"`
	Op       *Op         `json:"op,omitempty"` // a parked op
	Resolved *Resolution `json:"resolved,omitempty"`
}

// Resolution is a person's decision on a conflict.
type Resolution struct {
	Actor string    `json:"actor"`
	Note  string    `json:"note"`
	HLC   HLC       `json:"hlc"`
	At    time.Time `json:"at"`
}

// Validate checks a resolution as posted by a client.
func (r *Resolution) Validate() error {
	if strings.TrimSpace(r.Actor) == "" {
		return Invalid("actor", "is required (the person who resolved the conflict)")
	}
	if strings.TrimSpace(r.Note) == "" {
		return Invalid("note", "is required: say what was done about the conflicting record")
	}
	if utf8.RuneCountInString(r.Note) > 1000 {
		return Invalid("note", "is longer than 1000 characters")
	}
	return nil
}

// Masked is the record without personal data (a parked new case carries
// its applicant).
func (r ConflictRecord) Masked() ConflictRecord {
	if r.Op != nil {
		op := *r.Op
		if op.Case != nil {
			c := op.Case.Masked()
			op.Case = &c
		}
		if op.Evaluation != nil {
			e := *op.Evaluation
			e.Evaluator = ""
			op.Evaluation = &e
		}
		r.Op = &op
	}
	return r
}

// opID is the id a write is known by: its event's (or evaluation's) id.
func opID(op Op) (id, caseID, typ string, node string, at HLC) {
	switch {
	case op.Kind == OpCreateCase && op.Case != nil && len(op.Case.Events) > 0:
		e := op.Case.Events[0]
		return e.ID, op.Case.ID, e.Type, e.Node, e.HLC
	case op.Kind == OpAppendEvent && op.Event != nil:
		return op.Event.ID, op.Event.CaseID, op.Event.Type, op.Event.Node, op.Event.HLC
	case op.Kind == OpEvaluate && op.Evaluation != nil:
		e := op.Evaluation
		return e.ID, e.CaseID, e.Level, e.Node, e.HLC
	case op.Kind == OpWorkOrderEvent && op.WorkOrderEvent != nil:
		e := op.WorkOrderEvent
		return e.ID, strings.TrimPrefix(op.WorkOrderID, "WO-"), e.Type, e.Node, e.HLC
	}
	return "", "", "", "", ""
}

// park keeps an offline op the history refused, as a conflict record. The
// same op parked again (a retried delivery) changes nothing.
func park(st State, op Op, refused *Error) (any, []Change, error) {
	id, caseID, typ, node, at := opID(op)
	if id == "" {
		return nil, nil, refused // nothing to keep it by: an invalid op, refused as such
	}
	var old *ConflictRecord
	if err := getJSON(st, prefixConflict+id, &old); err != nil {
		return nil, nil, err
	}
	if old != nil {
		return *old, nil, nil
	}
	op.Offline = false
	rec := ConflictRecord{ID: id, CaseID: caseID, Kind: op.Kind, Type: typ, Node: node, HLC: at, Reason: refused.Message, Kept: KeptParked, Op: &op}
	return putConflict(st, rec)
}

func putConflict(st State, rec ConflictRecord) (any, []Change, error) {
	data, err := setJSON(st, prefixConflict+rec.ID, rec)
	if err != nil {
		return nil, nil, err
	}
	return rec, []Change{{Kind: "conflict", Key: rec.ID, Data: data}}, nil
}

func resolveConflict(st State, id string, r Resolution) (any, []Change, error) {
	if err := r.Validate(); err != nil {
		return nil, nil, err
	}
	var rec *ConflictRecord
	if err := getJSON(st, prefixConflict+id, &rec); err != nil {
		return nil, nil, err
	}
	if rec == nil {
		return nil, nil, NotFound("conflict %q not found", id)
	}
	if rec.Resolved != nil {
		if rec.Resolved.Actor == r.Actor && rec.Resolved.Note == r.Note {
			return *rec, nil, nil // a retry
		}
		return nil, nil, Conflict("conflict %s was already resolved by %s", id, rec.Resolved.Actor)
	}
	r.At = r.HLC.Time()
	rec.Resolved = &r
	return putConflict(st, *rec)
}

// ListConflicts returns the conflict records in id order: the open ones,
// or all of them.
func ListConflicts(r Reader, all bool) ([]ConflictRecord, error) {
	out := []ConflictRecord{}
	err := r.Scan(prefixConflict, "", func(_ string, v []byte) (bool, error) {
		var rec ConflictRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return false, fmt.Errorf("decode conflict: %w", err)
		}
		if all || rec.Resolved == nil {
			out = append(out, rec)
		}
		return true, nil
	})
	return out, err
}

// noteHLC keeps the largest timestamp the station's records carry, so a
// node restarted with a clock that is behind still writes after them.
func noteHLC(st State, op Op) error {
	_, _, _, _, at := opID(op)
	if op.Kind == OpResolveConflict && op.Resolution != nil {
		at = op.Resolution.HLC
	}
	if at == "" {
		return nil
	}
	old, err := st.Get(keyMaxHLC)
	if err != nil {
		return fmt.Errorf("read %s: %w", keyMaxHLC, err)
	}
	if HLC(old) >= at {
		return nil
	}
	if err := st.Set(keyMaxHLC, []byte(at)); err != nil {
		return fmt.Errorf("write %s: %w", keyMaxHLC, err)
	}
	return nil
}

// MaxHLC is the largest timestamp of the records applied ("" if none).
func MaxHLC(r Reader) (HLC, error) {
	b, err := r.Get(keyMaxHLC)
	return HLC(b), err
}

// OpHLC is the timestamp an op was prepared with ("" for an item).
func OpHLC(op Op) HLC {
	_, _, _, _, at := opID(op)
	return at
}
