package center

import (
	"net/http"

	"github.com/stationsync/stationsync/daemon"
	"github.com/stationsync/stationsync/records"
)

// Center-side events: an evaluation taken at the center (online, or by a
// phone call-back: channel 6) and work-order steps taken there (an
// approval of "invalid", say). They are kept in the center's copy at once
// and reach the station at its leader's next catalogue fetch
// (records.OpCenterEvent).

// POST /v1/cases/{id}/evaluations?station=
func (c *Center) handleEvaluation(w http.ResponseWriter, r *http.Request) {
	st, err := c.station(r)
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	var b daemon.EvaluationBody
	if !daemon.DecodeBody(w, r, &b, c.bodyLimit(0)) {
		return
	}
	e := b.Evaluation()
	if err := e.Validate(); err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	caseID := r.PathValue("id")
	err = c.node.View(func(rd records.Reader) error {
		cs, err := records.GetCase(records.StationReader(rd, st), caseID)
		for _, ev := range cs.Events {
			c.clock.Observe(ev.HLC)
		}
		return err
	})
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	records.PrepareEvaluation(&e, caseID, c.nodeID, c.clock.Now(), c.workOrderDays)
	c.submitCenterEvent(w, r, records.Op{Kind: records.OpCenterEvent, Station: st, Evaluation: &e})
}

// POST /v1/workorders/{id}/events?station=
func (c *Center) handleWorkOrderEvent(w http.ResponseWriter, r *http.Request) {
	st, err := c.station(r)
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	var b daemon.WorkOrderEventBody
	if !daemon.DecodeBody(w, r, &b, c.bodyLimit(0)) {
		return
	}
	ev := b.Event()
	if err := ev.Validate(); err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	id := r.PathValue("id")
	err = c.node.View(func(rd records.Reader) error {
		wo, err := records.GetWorkOrder(records.StationReader(rd, st), id)
		for _, e := range wo.Events {
			c.clock.Observe(e.HLC)
		}
		return err
	})
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	records.PrepareWorkOrderEvent(&ev, c.nodeID, c.clock.Now())
	c.submitCenterEvent(w, r, records.Op{Kind: records.OpCenterEvent, Station: st, WorkOrderID: id, WorkOrderEvent: &ev})
}

// submitCenterEvent writes a center-side event and answers 202: it is at
// the center now and reaches the station at its next fetch.
func (c *Center) submitCenterEvent(w http.ResponseWriter, r *http.Request, op records.Op) {
	if _, err := c.submit(r.Context(), op); err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	body := map[string]any{"station": op.Station, "replication": "queued for the station"}
	if op.Evaluation != nil {
		shown := *op.Evaluation
		shown.Evaluator = ""
		body["evaluation"] = shown
	} else {
		body["workorder_event"] = op.WorkOrderEvent
	}
	daemon.WriteJSON(w, http.StatusAccepted, body)
}
