package records

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/stationsync/stationsync/internal/jsonlayout"
)

// Case heads are written with every event a case gets (storeHead), read
// back by every answer to a write and every event's observation of the
// case (a view has no head cache), and at the center decoded from every
// "case" change a station sends and rewritten with every event merged.
// encoding/json spends most of that time in reflection. As for events
// (eventjson.go), the layout json.Marshal writes is written and read here
// directly when every string is plain; anything else goes through
// encoding/json, so what is stored and what is read back are exactly
// what encoding/json would store and read.

// encodeHead encodes h exactly as json.Marshal does.
func encodeHead(h *caseHead) ([]byte, error) {
	if b, ok := appendHeadJSON(make([]byte, 0, 640), h); ok {
		return b, nil
	}
	return json.Marshal(h)
}

// encodeCase encodes c exactly as json.Marshal does.
func encodeCase(c *Case) ([]byte, error) {
	w := jsonWriter{b: make([]byte, 0, 640), ok: true}
	w.caseFields(c)
	if w.ok {
		return append(w.b, '}'), nil
	}
	return json.Marshal(c)
}

// appendHeadJSON appends h as json.Marshal encodes it, or reports false
// when a field needs what only json.Marshal does.
func appendHeadJSON(b []byte, h *caseHead) ([]byte, bool) {
	w := jsonWriter{b: b, ok: true}
	w.caseFields(&h.Case)
	if h.Accepted {
		w.raw(`,"fold_accepted":true`)
	}
	if h.Last != "" {
		w.str(`,"last_hlc":`, string(h.Last))
	}
	if h.NEvents != 0 {
		w.int(`,"event_count":`, h.NEvents)
	}
	if h.Bytes != 0 {
		w.int(`,"event_bytes":`, h.Bytes)
	}
	w.raw("}")
	return w.b, w.ok
}

// AppendCaseFieldsJSON appends c as json.Marshal encodes it but without
// the closing brace, for a view that embeds Case and adds its own fields,
// or returns b unchanged and false when a value needs what only
// encoding/json does (escaping, compaction). Every string must be plain,
// so the bytes are also what an encoder without HTML escaping writes. As
// for AppendEventJSON, the events' data must be valid JSON.
func AppendCaseFieldsJSON(b []byte, c *Case) ([]byte, bool) {
	w := jsonWriter{b: b, ok: true}
	w.caseFields(c)
	if !w.ok {
		return b, false
	}
	return w.b, true
}

// jsonWriter appends JSON as json.Marshal writes it; ok turns false (and
// stays false) when a value needs escaping or compaction.
type jsonWriter struct {
	b  []byte
	ok bool
}

func (w *jsonWriter) raw(s string) { w.b = append(w.b, s...) }

func (w *jsonWriter) str(name, s string) {
	if !w.ok {
		return
	}
	w.b = append(w.b, name...)
	w.b, w.ok = jsonlayout.AppendPlainString(w.b, s)
}

func (w *jsonWriter) int(name string, n int) {
	w.b = strconv.AppendInt(append(w.b, name...), int64(n), 10)
}

func (w *jsonWriter) bool(name string, v bool) {
	w.b = strconv.AppendBool(append(w.b, name...), v)
}

func (w *jsonWriter) time(name string, t time.Time) {
	at, err := t.MarshalJSON()
	if err != nil {
		w.ok = false // json.Marshal gives the error
		return
	}
	w.b = append(append(w.b, name...), at...)
}

// caseFields writes c's object without its closing brace (a head adds
// its fold after them).
func (w *jsonWriter) caseFields(c *Case) {
	w.str(`{"id":`, c.ID)
	w.str(`,"station":`, c.Station)
	w.str(`,"item_code":`, c.ItemCode)
	if c.ItemName != "" {
		w.str(`,"item_name":`, c.ItemName)
	}
	w.bool(`,"instant":`, c.Instant)
	if c.Limit != nil {
		w.int(`,"limit":{"value":`, c.Limit.Value)
		w.str(`,"unit":`, c.Limit.Unit)
		w.raw("}")
	}
	w.str(`,"channel":`, c.Channel)
	w.str(`,"actor":`, c.Actor)
	w.applicant(`,"applicant":`, &c.Applicant)
	if c.Agent == nil {
		w.raw(`,"agent":null`)
	} else {
		w.applicant(`,"agent":`, c.Agent)
	}
	w.bool(`,"tolerance":`, c.Tolerance)
	w.bool(`,"commitment":`, c.Commitment)
	w.str(`,"state":`, c.State)
	w.time(`,"created_at":`, c.CreatedAt)
	switch {
	case c.Events == nil:
		w.raw(`,"events":null`)
	default:
		w.raw(`,"events":[`)
		for i, ev := range c.Events {
			if !w.ok {
				return
			}
			if i > 0 {
				w.raw(",")
			}
			w.b, w.ok = appendEventJSON(w.b, ev)
		}
		w.raw("]")
	}
	if len(c.Evaluations) > 0 {
		w.raw(`,"evaluations":[`)
		for i := range c.Evaluations {
			if i > 0 {
				w.raw(",")
			}
			w.evaluation(&c.Evaluations[i])
		}
		w.raw("]")
	}
	if c.Pending {
		w.raw(`,"pending":true`)
	}
}

func (w *jsonWriter) applicant(name string, a *Applicant) {
	w.str(name+`{"kind":`, a.Kind)
	w.str(`,"name":`, a.Name)
	if a.CreditCode != "" {
		w.str(`,"credit_code":`, a.CreditCode)
	}
	if a.IDType != "" {
		w.str(`,"id_type":`, a.IDType)
	}
	if a.IDNumber != "" {
		w.str(`,"id_number":`, a.IDNumber)
	}
	if a.Phone != "" {
		w.str(`,"phone":`, a.Phone)
	}
	w.raw("}")
}

func (w *jsonWriter) evaluation(e *Evaluation) {
	w.str(`{"id":`, e.ID)
	w.str(`,"case_id":`, e.CaseID)
	w.str(`,"level":`, e.Level)
	w.int(`,"channel":`, e.Channel)
	if e.Text != "" {
		w.str(`,"text":`, e.Text)
	}
	w.int(`,"attempt":`, e.Attempt)
	if e.Evaluator != "" {
		w.str(`,"evaluator":`, e.Evaluator)
	}
	w.str(`,"hlc":`, string(e.HLC))
	w.time(`,"at":`, e.At)
	if e.Node != "" {
		w.str(`,"node":`, e.Node)
	}
	if e.WorkOrderDays != 0 {
		w.int(`,"work_order_days":`, e.WorkOrderDays)
	}
	if e.Pending {
		w.raw(`,"pending":true`)
	}
	w.raw("}")
}

// parseHeadJSON reads v when it has appendHeadJSON's layout with plain
// strings, or reports false. What it returns then is what json.Unmarshal
// returns for v. A case as a station's feed sends it (its first event
// included, no fold) has that layout too.
func parseHeadJSON(v []byte) (h caseHead, ok bool) {
	r := jsonlayout.NewReader(v)
	readCaseFields(r, &h.Case)
	if r.Opt(`,"fold_accepted":`) {
		h.Accepted = r.Bool("")
	}
	if r.Opt(`,"last_hlc":`) {
		h.Last = HLC(r.Str(""))
	}
	if r.Opt(`,"event_count":`) {
		h.NEvents = r.Int("")
	}
	if r.Opt(`,"event_bytes":`) {
		h.Bytes = r.Int("")
	}
	r.Lit("}")
	if !r.Done() {
		return caseHead{}, false
	}
	return h, true
}

// readCaseFields reads what jsonWriter.caseFields writes.
func readCaseFields(r *jsonlayout.Reader, c *Case) {
	c.ID = r.Str(`{"id":`)
	c.Station = r.Str(`,"station":`)
	c.ItemCode = r.Str(`,"item_code":`)
	if r.Opt(`,"item_name":`) {
		c.ItemName = r.Str("")
	}
	c.Instant = r.Bool(`,"instant":`)
	if r.Opt(`,"limit":`) {
		c.Limit = &Limit{Value: r.Int(`{"value":`), Unit: r.Str(`,"unit":`)}
		r.Lit("}")
	}
	c.Channel = r.Str(`,"channel":`)
	c.Actor = r.Str(`,"actor":`)
	readApplicant(r, `,"applicant":`, &c.Applicant)
	if !r.Opt(`,"agent":null`) {
		c.Agent = &Applicant{}
		readApplicant(r, `,"agent":`, c.Agent)
	}
	c.Tolerance = r.Bool(`,"tolerance":`)
	c.Commitment = r.Bool(`,"commitment":`)
	c.State = r.Str(`,"state":`)
	c.CreatedAt = r.Time(`,"created_at":`)
	if !r.Opt(`,"events":null`) {
		r.Lit(`,"events":[`)
		c.Events = []Event{}
		for r.OK() && !r.Opt("]") {
			if len(c.Events) > 0 {
				r.Lit(",")
			}
			readEvent(r, &c.Events)
		}
	}
	if r.Opt(`,"evaluations":[`) {
		c.Evaluations = []Evaluation{}
		for r.OK() && !r.Opt("]") {
			if len(c.Evaluations) > 0 {
				r.Lit(",")
			}
			var e Evaluation
			readEvaluation(r, &e)
			c.Evaluations = append(c.Evaluations, e)
		}
	}
	if r.Opt(`,"pending":`) {
		c.Pending = r.Bool("")
	}
}

func readApplicant(r *jsonlayout.Reader, name string, a *Applicant) {
	a.Kind = r.Str(name + `{"kind":`)
	a.Name = r.Str(`,"name":`)
	if r.Opt(`,"credit_code":`) {
		a.CreditCode = r.Str("")
	}
	if r.Opt(`,"id_type":`) {
		a.IDType = r.Str("")
	}
	if r.Opt(`,"id_number":`) {
		a.IDNumber = r.Str("")
	}
	if r.Opt(`,"phone":`) {
		a.Phone = r.Str("")
	}
	r.Lit("}")
}

// readEvent reads one event object (parseEventJSON's layout) and appends it.
func readEvent(r *jsonlayout.Reader, evs *[]Event) {
	o := r.Object()
	if !r.OK() {
		return
	}
	ev, ok := parseEventJSON(o)
	if !ok {
		r.Fail()
		return
	}
	*evs = append(*evs, ev)
}

func readEvaluation(r *jsonlayout.Reader, e *Evaluation) {
	e.ID = r.Str(`{"id":`)
	e.CaseID = r.Str(`,"case_id":`)
	e.Level = r.Str(`,"level":`)
	e.Channel = r.Int(`,"channel":`)
	if r.Opt(`,"text":`) {
		e.Text = r.Str("")
	}
	e.Attempt = r.Int(`,"attempt":`)
	if r.Opt(`,"evaluator":`) {
		e.Evaluator = r.Str("")
	}
	e.HLC = HLC(r.Str(`,"hlc":`))
	e.At = r.Time(`,"at":`)
	if r.Opt(`,"node":`) {
		e.Node = r.Str("")
	}
	if r.Opt(`,"work_order_days":`) {
		e.WorkOrderDays = r.Int("")
	}
	if r.Opt(`,"pending":`) {
		e.Pending = r.Bool("")
	}
	r.Lit("}")
}

// EncodeOps encodes ops exactly as json.Marshal does. Every write a node
// takes is encoded once for its raft entry; the center's consolidate ops
// carry ~48 KiB of a station's records each, which json.Marshal scans
// and compacts again (json.RawMessage is a Marshaler). Consolidate ops,
// case creations, case events and evaluations are written here directly
// when their strings are plain and their data compact; anything else goes
// through json.Marshal.
//
// Data nested within jsonlayout.Nesting levels of encoding/json's depth
// limit (so deep that the entry holding it could exceed the limit) is
// refused with an error, although json.Marshal would write it: every node
// must decode every entry.
func EncodeOps(ops []Op) ([]byte, error) {
	if err := checkNesting(ops); err != nil {
		return nil, err
	}
	if ops == nil {
		return []byte("null"), nil
	}
	size := 2
	for i := range ops {
		if p := ops[i].Pull; p != nil {
			for j := range p.Changes {
				size += len(p.Changes[j].Data) + 64
			}
		}
		size += 256
	}
	w := jsonWriter{b: make([]byte, 0, size), ok: true}
	w.raw("[")
	for i := range ops {
		if i > 0 {
			w.raw(",")
		}
		w.op(&ops[i])
		if !w.ok {
			return json.Marshal(ops)
		}
	}
	w.raw("]")
	return w.b, nil
}

// checkNesting refuses data in ops that nests more than
// jsonlayout.MaxDepth-jsonlayout.Nesting levels deep: inside a raft entry
// it would be beyond encoding/json's depth limit, and no node could apply
// the entry. Event data is at most 16 KiB (Event.Validate), too short to
// nest that deep; a station's pulled records come from another machine.
func checkNesting(ops []Op) error {
	const short = 2 * (jsonlayout.MaxDepth - jsonlayout.Nesting) // nests less deep than that
	check := func(d json.RawMessage, what string, args ...any) error {
		if len(d) < short || jsonlayout.ValidNested(d) {
			return nil
		}
		return fmt.Errorf("%s: data is not valid JSON or nests more than %d levels deep", fmt.Sprintf(what, args...), jsonlayout.MaxDepth-jsonlayout.Nesting)
	}
	for i := range ops {
		op := &ops[i]
		if op.Event != nil {
			if err := check(op.Event.Data, "event %q", op.Event.ID); err != nil {
				return err
			}
		}
		if op.Case != nil {
			for _, ev := range op.Case.Events {
				if err := check(ev.Data, "case %q event %q", op.Case.ID, ev.ID); err != nil {
					return err
				}
			}
		}
		if p := op.Pull; p != nil {
			for j := range p.Changes {
				if err := check(p.Changes[j].Data, "station %s change %d", p.Station, p.Changes[j].Seq); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// op writes a consolidate op, a case creation, a case event or an
// evaluation: an op with exactly one of Pull, Case, Event and Evaluation
// and nothing else but Kind and Offline (ok turns false for any other).
func (w *jsonWriter) op(op *Op) {
	only := op.Item == nil && op.WorkOrderID == "" && op.WorkOrderEvent == nil && op.ConflictID == "" &&
		op.Station == "" && op.Seq == 0 && op.Settings == nil && op.Token == nil && op.Resolution == nil
	set := 0
	for _, p := range []bool{op.Pull != nil, op.Case != nil, op.Event != nil, op.Evaluation != nil} {
		if p {
			set++
		}
	}
	if !only || set != 1 || !w.ok {
		w.ok = false
		return
	}
	w.str(`{"kind":`, op.Kind)
	switch {
	case op.Pull != nil:
		p := op.Pull
		w.str(`,"pull":{"station":`, p.Station)
		w.str(`,"cluster_id":`, p.ClusterID)
		w.b = strconv.AppendUint(append(w.b, `,"from":`...), p.From, 10)
		if p.Changes == nil {
			w.raw(`,"changes":null`)
		} else {
			w.raw(`,"changes":[`)
			for i := range p.Changes {
				if i > 0 {
					w.raw(",")
				}
				w.pulledChange(&p.Changes[i])
			}
			w.raw("]")
		}
		w.b = strconv.AppendUint(append(w.b, `,"head":`...), p.Head, 10)
		w.raw("}")
	case op.Case != nil:
		for i := range op.Case.Events {
			w.validData(op.Case.Events[i].Data)
		}
		w.raw(`,"case":`)
		w.caseFields(op.Case)
		w.raw("}")
	case op.Event != nil:
		w.validData(op.Event.Data)
		if w.ok {
			w.b, w.ok = appendEventJSON(append(w.b, `,"event":`...), *op.Event)
		}
	case op.Evaluation != nil:
		w.raw(`,"evaluation":`)
		w.evaluation(op.Evaluation)
	}
	if op.Offline {
		w.raw(`,"offline":true`)
	}
	w.raw("}")
}

// validData turns ok false for an event's data json.Marshal refuses:
// appendEventJSON copies data it is given, and what goes into a raft
// entry must decode on every node.
func (w *jsonWriter) validData(d json.RawMessage) {
	if len(d) > 0 && !jsonlayout.Valid(d) {
		w.ok = false
	}
}

func (w *jsonWriter) pulledChange(c *PulledChange) {
	w.b = strconv.AppendUint(append(w.b, `{"seq":`...), c.Seq, 10)
	w.str(`,"kind":`, c.Kind)
	w.str(`,"key":`, c.Key)
	switch {
	case !w.ok:
	case c.Data == nil:
		w.raw(`,"data":null`)
	case len(c.Data) > 0 && compactAndSafe(c.Data) && jsonlayout.Valid(c.Data):
		// Valid: what goes into a raft entry must decode on every node
		// (json.Marshal would refuse invalid data; a pulled page's data
		// was valid when it was decoded, but an op may be built anywhere).
		w.b = append(append(w.b, `,"data":`...), c.Data...)
	default:
		w.ok = false
	}
	w.raw("}")
}

// ParseOpsJSON reads ops, a JSON array of ops, when every op in it is one
// jsonWriter.op writes, in the layout EncodeOps writes, or
// reports false. What it returns then is what json.Unmarshal returns for
// ops. Every node decodes every raft entry; a center's entries are pages
// of station records, which json.Unmarshal scans twice and reads by
// reflection.
func ParseOpsJSON(ops []byte) ([]Op, bool) {
	r := jsonlayout.NewReader(ops)
	r.Lit("[")
	out := []Op{}
	for r.OK() && !r.Opt("]") {
		if len(out) > 0 {
			r.Lit(",")
		}
		var op Op
		readOp(r, &op)
		out = append(out, op)
	}
	if !r.Done() {
		return nil, false
	}
	return out, true
}

// readOp reads what jsonWriter.op writes.
func readOp(r *jsonlayout.Reader, op *Op) {
	op.Kind = r.Str(`{"kind":`)
	switch {
	case r.Opt(`,"pull":`):
		p := &PulledPage{}
		op.Pull = p
		p.Station = r.Str(`{"station":`)
		p.ClusterID = r.Str(`,"cluster_id":`)
		p.From = r.Uint(`,"from":`)
		if !r.Opt(`,"changes":null`) {
			r.Lit(`,"changes":[`)
			p.Changes = []PulledChange{}
			for r.OK() && !r.Opt("]") {
				if len(p.Changes) > 0 {
					r.Lit(",")
				}
				var c PulledChange
				c.Seq = r.Uint(`{"seq":`)
				c.Kind = r.Str(`,"kind":`)
				c.Key = r.Str(`,"key":`)
				c.Data = r.Raw(`,"data":`)
				r.Lit("}")
				p.Changes = append(p.Changes, c)
			}
		}
		p.Head = r.Uint(`,"head":`)
		r.Lit("}")
	case r.Opt(`,"case":`):
		c := &Case{}
		readCaseFields(r, c)
		r.Lit("}")
		op.Case = c
	case r.Opt(`,"event":`):
		var evs []Event
		readEvent(r, &evs)
		if r.OK() {
			op.Event = &evs[0]
		}
	case r.Opt(`,"evaluation":`):
		e := &Evaluation{}
		readEvaluation(r, e)
		op.Evaluation = e
	default:
		r.Fail()
	}
	if r.Opt(`,"offline":`) {
		op.Offline = r.Bool("")
	}
	r.Lit("}")
}
