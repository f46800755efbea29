package daemon

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/stationsync/stationsync/records"
)

// observeCase moves the node's clock past every timestamp of the case this
// PC holds, so the event about to be written sorts after them even when
// this PC's wall clock is behind. A case this PC has not seen yet (just
// created on another PC) is no error here: applying the event checks that
// the case exists and orders the event after the case's history anyway.
func (d *Daemon) observeCase(id string) error {
	return d.node.View(func(rd records.Reader) error {
		last, err := records.CaseLastHLC(rd, id)
		if last != "" {
			d.clock.Observe(last)
		}
		return err
	})
}

// caseEventBody is POST /v1/cases/{id}/events.
type caseEventBody struct {
	ID    string          `json:"id"`
	Type  string          `json:"type"`
	Actor string          `json:"actor"`
	Data  json.RawMessage `json:"data"`
}

func (d *Daemon) handleCaseEvent(w http.ResponseWriter, r *http.Request) {
	var b caseEventBody
	if !d.decodeBody(w, r, &b) {
		return
	}
	ev := records.Event{ID: b.ID, Type: b.Type, Actor: b.Actor, Data: b.Data}
	if err := ev.Validate(); err != nil {
		writeDomainError(w, err)
		return
	}
	caseID := r.PathValue("id")
	if err := d.observeCase(caseID); err != nil {
		writeDomainError(w, err)
		return
	}
	records.PrepareEvent(&ev, caseID, d.cfg.NodeID, d.clock.Now())
	d.answerCase(w, r, records.Op{Kind: records.OpAppendEvent, Event: &ev}, caseID, map[string]any{"event": ev})
}

// EvaluationBody is POST /v1/cases/{id}/evaluations (at a station and at
// the center).
type EvaluationBody struct {
	ID        string `json:"id"`
	Level     string `json:"level"`
	Channel   int    `json:"channel"`
	Text      string `json:"text"`
	Attempt   int    `json:"attempt"`
	Evaluator string `json:"evaluator"`
}

// Evaluation is the evaluation the body describes (first attempt unless
// it says otherwise), not yet validated or prepared.
func (b EvaluationBody) Evaluation() records.Evaluation {
	if b.Attempt == 0 {
		b.Attempt = 1
	}
	return records.Evaluation{ID: b.ID, Level: b.Level, Channel: b.Channel, Text: b.Text, Attempt: b.Attempt, Evaluator: b.Evaluator}
}

func (d *Daemon) handleEvaluation(w http.ResponseWriter, r *http.Request) {
	var b EvaluationBody
	if !d.decodeBody(w, r, &b) {
		return
	}
	e := b.Evaluation()
	if err := e.Validate(); err != nil {
		writeDomainError(w, err)
		return
	}
	caseID := r.PathValue("id")
	if err := d.observeCase(caseID); err != nil {
		writeDomainError(w, err)
		return
	}
	records.PrepareEvaluation(&e, caseID, d.cfg.NodeID, d.clock.Now(), int(d.wod.Load()))
	shown := e
	shown.Evaluator = ""
	d.answerCase(w, r, records.Op{Kind: records.OpEvaluate, Evaluation: &e}, caseID, map[string]any{"evaluation": shown})
}

// answerCase records a case write (a new case, a lifecycle event, an
// evaluation of case caseID) and answers 201 with the case once the
// station committed it, or 202 with the case as this PC sees it (its
// pending writes merged) when the write waits in this PC's outbox because
// no leader answered in time.
func (d *Daemon) answerCase(w http.ResponseWriter, r *http.Request, op records.Op, caseID string, extra map[string]any) {
	start := time.Now()
	res, pending, err := d.node.Record(r.Context(), op)
	d.metrics.observeWrite(time.Since(start), err)
	if err != nil {
		writeDomainError(w, err)
		return
	}
	if res.Error != nil {
		writeDomainError(w, res.Error)
		return
	}
	code, replicated := http.StatusCreated, "committed"
	if pending {
		code, replicated = http.StatusAccepted, "pending"
	}
	// The case as this PC holds it now: committed, with what is still
	// pending here merged in.
	c, found, err := d.caseWithPending(caseID)
	if err != nil {
		writeDomainError(w, err)
		return
	}
	if !found {
		// Delivered from the outbox and parked as a conflict.
		writeError(w, http.StatusConflict, "conflict_kept", "the station's history no longer allows this write; it is kept at /v1/conflicts for a person to resolve")
		return
	}
	if id := writeID(op); !pending && id != "" && conflicted(c, id) {
		writeError(w, http.StatusConflict, "conflict_kept", "the write reached the station after others that no longer allow it; it is kept at /v1/conflicts for a person to resolve")
		return
	}
	rest := map[string]any{"replication": replicated, "repeat": res.Status == "repeat"}
	for k, v := range extra {
		rest[k] = v
	}
	view := d.caseView(r, c)
	writeWith(w, code, "case", view, func(b []byte) ([]byte, error) { return AppendCaseViewJSON(b, view) }, rest)
}

// writeID is the id of the event or evaluation op writes ("" for others).
func writeID(op records.Op) string {
	switch {
	case op.Event != nil:
		return op.Event.ID
	case op.Evaluation != nil:
		return op.Evaluation.ID
	}
	return ""
}

// conflicted says whether the event or evaluation id is missing from c or
// kept there as a conflict.
func conflicted(c records.Case, id string) bool {
	for _, e := range c.Events {
		if e.ID == id {
			return e.Conflict
		}
	}
	for _, e := range c.Evaluations {
		if e.ID == id {
			return false
		}
	}
	return true
}

// caseWithPending is case id as this PC holds it: committed, with the
// writes still pending in its outbox merged in (marked pending).
func (d *Daemon) caseWithPending(id string) (records.Case, bool, error) {
	ops, err := d.pendingOps(id)
	if err != nil {
		return records.Case{}, false, err
	}
	var (
		merged records.Case
		found  bool
	)
	err = d.node.View(func(rd records.Reader) error {
		c, err := records.GetCase(rd, id)
		var committed *records.Case
		if err == nil {
			committed = &c
		} else if de, ok := records.AsError(err); !ok || de.Code != records.CodeNotFound {
			return err
		}
		merged, found, err = records.WithPending(rd, committed, ops)
		return err
	})
	return merged, found, err
}

// pendingOps are the writes for case id ("" for all) waiting in this
// PC's outbox.
func (d *Daemon) pendingOps(id string) ([]records.Op, error) {
	pend, err := d.node.PendingWrites(id)
	if err != nil {
		return nil, err
	}
	ops := make([]records.Op, len(pend))
	for i, p := range pend {
		ops[i] = p.Op
	}
	return ops, nil
}

// WorkOrderEventBody is POST /v1/workorders/{id}/events (at a station and
// at the center).
type WorkOrderEventBody struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Actor    string `json:"actor"`
	Owner    string `json:"owner"`
	Approver string `json:"approver"`
	Note     string `json:"note"`
}

// Event is the work-order event the body describes, not yet validated or
// prepared.
func (b WorkOrderEventBody) Event() records.WorkOrderEvent {
	return records.WorkOrderEvent{ID: b.ID, Type: b.Type, Actor: b.Actor, Owner: b.Owner, Approver: b.Approver, Note: b.Note}
}

func (d *Daemon) handleWorkOrderEvent(w http.ResponseWriter, r *http.Request) {
	var b WorkOrderEventBody
	if !d.decodeBody(w, r, &b) {
		return
	}
	ev := b.Event()
	if err := ev.Validate(); err != nil {
		writeDomainError(w, err)
		return
	}
	id := r.PathValue("id")
	err := d.node.View(func(rd records.Reader) error {
		wo, err := records.GetWorkOrder(rd, id)
		for _, e := range wo.Events {
			d.clock.Observe(e.HLC)
		}
		if de, ok := records.AsError(err); ok && de.Code == records.CodeNotFound {
			return nil // not here yet: applying decides
		}
		return err
	})
	if err != nil {
		writeDomainError(w, err)
		return
	}
	records.PrepareWorkOrderEvent(&ev, d.cfg.NodeID, d.clock.Now())
	res, ok := d.submitOne(w, r, records.Op{Kind: records.OpWorkOrderEvent, WorkOrderID: id, WorkOrderEvent: &ev})
	if !ok {
		return
	}
	var wo records.WorkOrder
	if err := json.Unmarshal(res.Value, &wo); err != nil {
		writeDomainError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"workorder": d.workOrderView(wo), "replication": "committed", "repeat": res.Status == "repeat"})
}

func (d *Daemon) handleListWorkOrders(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	var list []records.WorkOrder
	err := d.node.View(func(rd records.Reader) (err error) {
		list, err = records.ListWorkOrders(rd, status)
		return err
	})
	if err != nil {
		writeDomainError(w, err)
		return
	}
	views := make([]WorkOrderView, 0, len(list))
	for _, wo := range list {
		views = append(views, d.workOrderView(wo))
	}
	writeJSON(w, http.StatusOK, map[string]any{"workorders": views})
}

func (d *Daemon) handleGetWorkOrder(w http.ResponseWriter, r *http.Request) {
	var wo records.WorkOrder
	err := d.node.View(func(rd records.Reader) (err error) {
		wo, err = records.GetWorkOrder(rd, r.PathValue("id"))
		return err
	})
	if err != nil {
		writeDomainError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d.workOrderView(wo))
}
