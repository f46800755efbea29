package records

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/stationsync/stationsync/internal/jsonlayout"
)

// Op kinds: the commands a station replicates.
const (
	OpPutItem        = "put_item"
	OpCreateCase     = "create_case"
	OpAppendEvent    = "append_event"
	OpEvaluate       = "evaluate"
	OpWorkOrderEvent = "workorder_event"
)

// Op is one replicated command. It is fully prepared by the node that
// received it (ids and timestamps assigned), so applying it is
// deterministic on every node.
type Op struct {
	Kind           string          `json:"kind"`
	Item           *Item           `json:"item,omitempty"`
	Case           *Case           `json:"case,omitempty"`
	Event          *Event          `json:"event,omitempty"`
	Evaluation     *Evaluation     `json:"evaluation,omitempty"`
	WorkOrderID    string          `json:"workorder_id,omitempty"`
	WorkOrderEvent *WorkOrderEvent `json:"workorder_event,omitempty"`
	ConflictID     string          `json:"conflict_id,omitempty"`
	Pull           *PulledPage     `json:"pull,omitempty"`     // consolidate (center)
	Station        string          `json:"station,omitempty"`  // reread_station, center_event (center)
	Seq            uint64          `json:"seq,omitempty"`      // center_cursor (station)
	Settings       *Settings       `json:"settings,omitempty"` // put_settings (station)
	Token          *EnrollToken    `json:"token,omitempty"`    // put_token, use_token (center)
	Resolution     *Resolution     `json:"resolution,omitempty"`
	// Offline marks a write delivered from a node's outbox: one the merged
	// history no longer allows is kept as a conflict, not refused
	// (conflicts.go).
	Offline bool `json:"offline,omitempty"`
}

// Change is what an applied op adds to the station's change feed.
type Change struct {
	Kind string          `json:"kind"` // item | case | event | evaluation | workorder | workorder_event
	Key  string          `json:"key"`  // item code, case id or work order id
	Data json.RawMessage `json:"data"`
	// Stored is the store key whose value is exactly Data, when Data is a
	// record written once and never changed (an event): the change feed
	// then refers to that key instead of keeping a second copy. "" when
	// Data lives only in the change.
	Stored string `json:"-"`
}

// State is the read-write view of the store an op is applied to. Get
// returns nil, nil for a missing key.
type State interface {
	Get(key string) ([]byte, error)
	Set(key string, value []byte) error
	// Scan is Reader.Scan, seeing the writes made so far.
	Scan(prefix, after string, fn func(key string, value []byte) (bool, error)) error
}

// Reader is the read-only view queries use. Scan calls fn for each key
// with prefix that sorts after `after` ("" for all), in key order, until fn
// returns false or an error.
type Reader interface {
	Get(key string) ([]byte, error)
	Scan(prefix, after string, fn func(key string, value []byte) (bool, error)) error
}

// Key prefixes of the domain state.
const (
	prefixItem      = "item/"
	prefixCase      = "case/"
	prefixEvent     = "event/" // event, evaluation or work order event id -> owner, for idempotency
	prefixWorkOrder = "wo/"
)

// Apply applies one op to st. It returns the resulting record (for the
// client's answer) and the feed changes; no changes when the op repeats
// something already applied (idempotent retries). A domain error leaves st
// untouched: every check happens before the first write. An offline op the
// history refuses is kept as a conflict instead (conflicts.go).
func Apply(st State, op Op) (any, []Change, error) {
	return applyOp(st, op, false)
}

// ApplyDecoded is Apply for an op decoded from JSON (a raft entry): the
// raw JSON it holds (event data) is valid by construction, so it is not
// scanned again.
func ApplyDecoded(st State, op Op) (any, []Change, error) {
	return applyOp(st, op, true)
}

func applyOp(st State, op Op, decoded bool) (any, []Change, error) {
	v, changes, err := apply(st, op, decoded)
	if err != nil {
		de, ok := AsError(err)
		if !op.Offline || !ok {
			return nil, nil, err
		}
		return park(st, op, de)
	}
	if err := noteHLC(st, op); err != nil {
		return nil, nil, err
	}
	return v, changes, nil
}

func apply(st State, op Op, decoded bool) (any, []Change, error) {
	switch op.Kind {
	case OpPutItem:
		if op.Item == nil {
			return nil, nil, Invalid("item", "is required for %s", op.Kind)
		}
		return putItem(st, *op.Item)
	case OpCreateCase:
		if op.Case == nil {
			return nil, nil, Invalid("case", "is required for %s", op.Kind)
		}
		return createCase(st, *op.Case)
	case OpAppendEvent:
		if op.Event == nil {
			return nil, nil, Invalid("event", "is required for %s", op.Kind)
		}
		return appendEvent(st, *op.Event, op.Offline, decoded)
	case OpEvaluate:
		if op.Evaluation == nil {
			return nil, nil, Invalid("evaluation", "is required for %s", op.Kind)
		}
		return evaluate(st, *op.Evaluation)
	case OpWorkOrderEvent:
		if op.WorkOrderEvent == nil || op.WorkOrderID == "" {
			return nil, nil, Invalid("workorder_event", "and workorder_id are required for %s", op.Kind)
		}
		return workOrderEvent(st, op.WorkOrderID, *op.WorkOrderEvent)
	case OpConsolidate:
		if op.Pull == nil {
			return nil, nil, Invalid("pull", "is required for %s", op.Kind)
		}
		return consolidate(st, *op.Pull)
	case OpPutToken, OpUseToken:
		if op.Token == nil {
			return nil, nil, Invalid("token", "is required for %s", op.Kind)
		}
		if op.Kind == OpPutToken {
			return putToken(st, *op.Token)
		}
		return useToken(st, *op.Token)
	case OpPutSettings:
		if op.Settings == nil {
			return nil, nil, Invalid("settings", "are required for %s", op.Kind)
		}
		return putSettings(st, *op.Settings)
	case OpCenterEvent:
		return centerEvent(st, op.Station, op)
	case OpCenterCursor:
		return centerCursor(st, op.Seq)
	case OpRereadStation:
		return rereadStation(st, op.Station)
	case OpPublishItem:
		if op.Item == nil {
			return nil, nil, Invalid("item", "is required for %s", op.Kind)
		}
		return publishItem(st, *op.Item)
	case OpResolveConflict:
		if op.Resolution == nil || op.ConflictID == "" {
			return nil, nil, Invalid("resolution", "and conflict_id are required for %s", op.Kind)
		}
		return resolveConflict(st, op.ConflictID, *op.Resolution)
	default:
		return nil, nil, Invalid("kind", "unknown op %q", op.Kind)
	}
}

func change(kind, key string, v any) (Change, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Change{}, fmt.Errorf("encode %s %s: %w", kind, key, err)
	}
	return Change{Kind: kind, Key: key, Data: b}, nil
}

func putItem(st State, it Item) (any, []Change, error) {
	if err := it.Validate(); err != nil {
		return nil, nil, err
	}
	var old *Item
	if err := getJSON(st, prefixItem+it.Code, &old); err != nil {
		return nil, nil, err
	}
	switch {
	case it.Origin == OriginLocal && old != nil && old.Origin == OriginDistrict:
		return nil, nil, Conflict("item %s is a district item: it is read-only at a station (the district center publishes it)", it.Code)
	case it.Origin == OriginDistrict:
		// The center's version wins; an older or equal version is a repeat.
		if old != nil && old.Origin == OriginDistrict && old.Version >= it.Version {
			return *old, nil, nil
		}
		if it.Version == 0 {
			return nil, nil, Invalid("version", "a district item needs the center's version (> 0)")
		}
	default:
		it.Version = 1
		if old != nil {
			it.Version = old.Version
			if sameItem(*old, it) {
				return *old, nil, nil // unchanged: a re-import changes nothing
			}
			it.Version = old.Version + 1
		}
	}
	data, err := setJSON(st, prefixItem+it.Code, it)
	if err != nil {
		return nil, nil, err
	}
	return it, []Change{{Kind: "item", Key: it.Code, Data: data}}, nil
}

// sameItem reports whether two items have the same content (versions are
// made equal by the caller).
func sameItem(a, b Item) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// claimID checks an event id against the idempotency index: seen for the
// same owner is a repeat (true), for another owner a conflict.
func claimID(st State, id, owner string) (repeat bool, err error) {
	b, err := st.Get(prefixEvent + id)
	if err != nil {
		return false, fmt.Errorf("read event index: %w", err)
	}
	switch {
	case b == nil:
		return false, nil
	case string(b) == owner:
		return true, nil
	default:
		return false, Conflict("id %q is already used by %s", id, b)
	}
}

func createCase(st State, c Case) (any, []Change, error) {
	if c.ID == "" {
		return nil, nil, Invalid("id", "is required once the node prepared the case")
	}
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	if len(c.Events) != 1 || c.Events[0].Type != EventReceived {
		return nil, nil, Invalid("events", "a new case carries exactly its %q event", EventReceived)
	}
	if d := c.Events[0].Data; len(d) > 0 && !jsonlayout.Valid(d) {
		return nil, nil, Invalid("events[0].data", "is not valid JSON")
	}
	old, err := readCase(st, c.ID)
	if err != nil {
		return nil, nil, err
	}
	if old != nil {
		// The same client id again: a retry, answered with what is stored.
		return *old, nil, nil
	}
	owner := "case " + c.ID
	if _, err := claimID(st, c.Events[0].ID, owner); err != nil {
		return nil, nil, err
	}
	var item *Item
	if err := getJSON(st, prefixItem+c.ItemCode, &item); err != nil {
		return nil, nil, err
	}
	if item == nil {
		return nil, nil, Invalid("item_code", "%q is not on this station's item list", c.ItemCode)
	}
	c.ItemName, c.Instant, c.Limit = item.Name, item.Instant, item.PromisedLimit
	c.Events[0].CaseID = c.ID
	c.Events[0] = stored(c.Events[0])
	c.Evaluations = nil
	c.Fold()
	h := &caseHead{Case: c}
	h.Events, h.State = nil, ""
	h.step(c.Events[0])
	if _, err := putEvent(st, h, c.Events[0]); err != nil {
		return nil, nil, err
	}
	if err := storeHead(st, h); err != nil {
		return nil, nil, err
	}
	if err := st.Set(prefixEvent+c.Events[0].ID, []byte(owner)); err != nil {
		return nil, nil, fmt.Errorf("index event %s: %w", c.Events[0].ID, err)
	}
	b, err := encodeCase(&c)
	if err != nil {
		return nil, nil, fmt.Errorf("encode case %s: %w", c.ID, err)
	}
	return c, []Change{{Kind: "case", Key: c.ID, Data: b}}, nil
}

// CaseWrite is the answer to an event or an evaluation written to a case:
// the case's state after it and what was written as stored (the event
// without its data, which the writer has). A repeat answers the case's
// state only. Read the whole case with GetCase.
type CaseWrite struct {
	Case       string      `json:"case"`
	State      string      `json:"state"`
	Event      *Event      `json:"event,omitempty"`
	Evaluation *Evaluation `json:"evaluation,omitempty"`
}

// loadCase reads the head of case id, or a not-found error.
func loadCase(st interface{ Get(string) ([]byte, error) }, id string) (*caseHead, error) {
	h, err := loadHead(st, id)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, NotFound("case %q not found", id)
	}
	return h, nil
}

func appendEvent(st State, ev Event, offline, decoded bool) (any, []Change, error) {
	if err := ev.validate(!decoded); err != nil {
		return nil, nil, err
	}
	h, err := loadCase(st, ev.CaseID)
	if err != nil {
		return nil, nil, err
	}
	owner := "case " + h.ID
	if repeat, err := claimID(st, ev.ID, owner); err != nil || repeat {
		return CaseWrite{Case: h.ID, State: h.State}, nil, err
	}
	before := h.State
	ev = stored(ev)
	ev.CaseID = h.ID
	ev.HLC = After(ev.HLC, h.lastHLC())
	ev.At = ev.HLC.Time()
	var refused *Error
	if !h.step(ev) {
		refused = Conflict("case %s is %s: %s is not possible now (possible: %s)", h.ID, before, ev.Type, possibleNext(&h.Case, before))
		if !offline {
			return nil, nil, refused
		}
	}
	if err := checkCaseSize(h); err != nil {
		return nil, nil, err
	}
	data, err := putEvent(st, h, ev)
	if err != nil {
		return nil, nil, err
	}
	if err := storeHead(st, h); err != nil {
		return nil, nil, err
	}
	if err := st.Set(prefixEvent+ev.ID, []byte(owner)); err != nil {
		return nil, nil, fmt.Errorf("index event %s: %w", ev.ID, err)
	}
	ch := Change{Kind: "event", Key: h.ID, Data: data, Stored: eventKey(h.ID, ev)}
	if refused != nil {
		ev.Conflict = true
		if ch, err = change("event", h.ID, ev); err != nil {
			return nil, nil, err
		}
	}
	changes := []Change{ch}
	if refused != nil {
		_, cc, err := putConflict(st, ConflictRecord{ID: ev.ID, CaseID: h.ID, Kind: OpAppendEvent, Type: ev.Type, Node: ev.Node, HLC: ev.HLC, Reason: refused.Message, Kept: KeptInHistory})
		if err != nil {
			return nil, nil, err
		}
		changes = append(changes, cc...)
	}
	shown := ev
	shown.Data = nil
	return CaseWrite{Case: h.ID, State: h.State, Event: &shown}, changes, nil
}

// maxCaseBytes bounds a case's record (head and events). A real case has
// a few dozen events; one that reaches this is refused further writes
// (an offline one is kept as a conflict).
const maxCaseBytes = 256 << 10

func checkCaseSize(h *caseHead) error {
	if n := h.size(); n > maxCaseBytes {
		return Conflict("case %s is full: its record would be %d KiB (at most %d KiB, %d events): record further steps in a new case", h.ID, n>>10, maxCaseBytes>>10, h.NEvents)
	}
	return nil
}

func possibleNext(c *Case, state string) string {
	var out []string
	for _, t := range caseTransitions[state] {
		if allowed(c, state, t) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return "none, the case is closed"
	}
	return strings.Join(out, ", ")
}

func evaluate(st State, e Evaluation) (any, []Change, error) {
	if err := e.Validate(); err != nil {
		return nil, nil, err
	}
	h, err := loadCase(st, e.CaseID)
	if err != nil {
		return nil, nil, err
	}
	owner := "evaluation of case " + h.ID
	if repeat, err := claimID(st, e.ID, owner); err != nil || repeat {
		return CaseWrite{Case: h.ID, State: h.State}, nil, err
	}
	var wo *WorkOrder
	for _, prev := range h.Evaluations {
		if prev.Attempt == e.Attempt {
			return nil, nil, Conflict("case %s already has its %s evaluation (一事一评)", h.ID, attemptName(e.Attempt))
		}
	}
	if e.Attempt == 2 {
		if err := getJSON(st, prefixWorkOrder+workOrderID(&h.Case), &wo); err != nil {
			return nil, nil, err
		}
		if wo == nil {
			return nil, nil, Conflict("case %s has no bad-review work order: a second evaluation follows a work order's call-back", h.ID)
		}
	}
	e.HLC = After(e.HLC, h.lastHLC())
	e.At = e.HLC.Time()
	h.Evaluations = append(h.Evaluations, e)
	h.Last = max(h.Last, e.HLC)
	if err := checkCaseSize(h); err != nil {
		return nil, nil, err
	}
	if err := storeHead(st, h); err != nil {
		return nil, nil, err
	}
	if err := st.Set(prefixEvent+e.ID, []byte(owner)); err != nil {
		return nil, nil, fmt.Errorf("index evaluation %s: %w", e.ID, err)
	}
	ch, err := change("evaluation", h.ID, e)
	if err != nil {
		return nil, nil, err
	}
	changes := []Change{ch}
	switch {
	case e.Attempt == 1 && BadReview(e.Level):
		days := e.WorkOrderDays
		if days <= 0 {
			days = DefaultWorkOrderDays
		}
		wo = &WorkOrder{
			ID: workOrderID(&h.Case), CaseID: h.ID, EvaluationID: e.ID, Station: h.Station, ItemCode: h.ItemCode,
			Level: e.Level, Text: e.Text, State: WorkOrderOpen, OpenedAt: e.At, DueDays: days, Events: []WorkOrderEvent{},
		}
	case e.Attempt == 2:
		wo.SecondLevel = e.Level
	}
	if wo != nil {
		data, err := setJSON(st, prefixWorkOrder+wo.ID, wo)
		if err != nil {
			return nil, nil, err
		}
		changes = append(changes, Change{Kind: "workorder", Key: wo.ID, Data: data})
	}
	shown := e
	shown.Evaluator = ""
	return CaseWrite{Case: h.ID, State: h.State, Evaluation: &shown}, changes, nil
}

// workOrderID names the one work order a case's bad first evaluation opens.
func workOrderID(c *Case) string { return "WO-" + c.ID }

func attemptName(a int) string {
	if a == 2 {
		return "second"
	}
	return "first"
}

func workOrderEvent(st State, id string, ev WorkOrderEvent) (any, []Change, error) {
	if err := ev.Validate(); err != nil {
		return nil, nil, err
	}
	var wo *WorkOrder
	if err := getJSON(st, prefixWorkOrder+id, &wo); err != nil {
		return nil, nil, err
	}
	if wo == nil {
		return nil, nil, NotFound("work order %q not found", id)
	}
	wo.Fold()
	owner := "work order " + id
	if repeat, err := claimID(st, ev.ID, owner); err != nil || repeat {
		return *wo, nil, err
	}
	before := wo.State
	for _, prev := range wo.Events {
		ev.HLC = After(ev.HLC, prev.HLC)
	}
	ev.At = ev.HLC.Time()
	wo.Events = append(wo.Events, ev)
	wo.Fold()
	for _, e := range wo.Events {
		if e.ID == ev.ID && e.Conflict {
			next := strings.Join(workOrderTransitions[before], ", ")
			if next == "" {
				next = "none, the work order is closed"
			}
			return nil, nil, Conflict("work order %s is %s: %s is not possible now (possible: %s)", id, before, ev.Type, next)
		}
	}
	if _, err := setJSON(st, prefixWorkOrder+id, wo); err != nil {
		return nil, nil, err
	}
	if err := st.Set(prefixEvent+ev.ID, []byte(owner)); err != nil {
		return nil, nil, fmt.Errorf("index work order event %s: %w", ev.ID, err)
	}
	ch, err := change("workorder_event", id, ev)
	if err != nil {
		return nil, nil, err
	}
	return *wo, []Change{ch}, nil
}

// PrepareCase assigns what the receiving node decides for a new case: an
// id when the client gave none, the station, the time and the first event.
func PrepareCase(c *Case, station, node string, at HLC) {
	now := at.Time()
	if c.ID == "" {
		c.ID = NewID(now)
	}
	c.Station = station
	c.CreatedAt = now
	c.State = StateReceived
	c.Events = []Event{{ID: c.ID + ".received", CaseID: c.ID, Type: EventReceived, Actor: c.Actor, HLC: at, At: now, Node: node}}
}

// PrepareEvent completes a lifecycle event posted for case caseID.
func PrepareEvent(ev *Event, caseID, node string, at HLC) {
	if ev.ID == "" {
		ev.ID = NewID(at.Time())
	}
	ev.CaseID, ev.Node, ev.HLC, ev.At, ev.Conflict = caseID, node, at, at.Time(), false
}

// PrepareEvaluation completes an evaluation posted for case caseID.
func PrepareEvaluation(e *Evaluation, caseID, node string, at HLC, workOrderDays int) {
	if e.ID == "" {
		e.ID = NewID(at.Time())
	}
	if e.Attempt == 0 {
		e.Attempt = 1
	}
	e.CaseID, e.Node, e.HLC, e.At, e.WorkOrderDays = caseID, node, at, at.Time(), workOrderDays
}

// PrepareWorkOrderEvent completes a work order event.
func PrepareWorkOrderEvent(ev *WorkOrderEvent, node string, at HLC) {
	if ev.ID == "" {
		ev.ID = NewID(at.Time())
	}
	ev.Node, ev.HLC, ev.At, ev.Conflict = node, at, at.Time(), false
}

// Validate checks a lifecycle event as posted by a client.
func (ev *Event) Validate() error { return ev.validate(true) }

// validate is Validate, without the scan of the data when it was decoded
// from JSON (checkData false).
func (ev *Event) validate(checkData bool) error {
	if ev.ID != "" && !validRecordID(ev.ID) {
		return Invalid("id", "must be at most 64 characters without spaces, control characters or '/'")
	}
	if ev.Type == EventReceived {
		return Invalid("type", "received is the first event of a new case: POST /v1/cases")
	}
	if !IsCaseEvent(ev.Type) {
		return Invalid("type", "%q must be one of %s", ev.Type, caseEventTypes())
	}
	if strings.TrimSpace(ev.Actor) == "" {
		return Invalid("actor", "is required (the clerk who recorded the step)")
	}
	if len(ev.Data) > 16<<10 {
		return Invalid("data", "is larger than 16 KiB")
	}
	if checkData && len(ev.Data) > 0 && !jsonlayout.Valid(ev.Data) {
		return Invalid("data", "is not valid JSON")
	}
	return nil
}

func getJSON(st interface {
	Get(string) ([]byte, error)
}, key string, v any) error {
	b, err := st.Get(key)
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	if b == nil {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}

func setJSON(st State, key string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", key, err)
	}
	if err := st.Set(key, b); err != nil {
		return nil, fmt.Errorf("write %s: %w", key, err)
	}
	return b, nil
}
