package records

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
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
	w.b, w.ok = appendPlainString(w.b, s)
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
	r := jsonReader{b: v, ok: true}
	r.caseFields(&h.Case)
	if r.opt(`,"fold_accepted":`) {
		h.Accepted = r.bool("")
	}
	if r.opt(`,"last_hlc":`) {
		h.Last = HLC(r.str(""))
	}
	if r.opt(`,"event_count":`) {
		h.NEvents = r.int("")
	}
	if r.opt(`,"event_bytes":`) {
		h.Bytes = r.int("")
	}
	r.lit("}")
	if !r.ok || len(r.b) != 0 {
		return caseHead{}, false
	}
	return h, true
}

// jsonReader reads JSON in the exact layout json.Marshal writes; ok turns
// false (and stays false) at anything else: another order, white space,
// escapes, numbers that are not plain integers.
type jsonReader struct {
	b  []byte
	ok bool
}

// lit reads s.
func (r *jsonReader) lit(s string) {
	if !r.ok || !bytes.HasPrefix(r.b, []byte(s)) {
		r.ok = false
		return
	}
	r.b = r.b[len(s):]
}

// opt reads s if it comes next.
func (r *jsonReader) opt(s string) bool {
	if !r.ok || !bytes.HasPrefix(r.b, []byte(s)) {
		return false
	}
	r.b = r.b[len(s):]
	return true
}

// quoted reads name and a string value, quotes included, with nothing to
// unescape.
func (r *jsonReader) quoted(name string) []byte {
	r.lit(name)
	if !r.ok || len(r.b) == 0 || r.b[0] != '"' {
		r.ok = false
		return nil
	}
	end := bytes.IndexByte(r.b[1:], '"')
	if end < 0 || !plainJSONString(r.b[1:end+1]) {
		r.ok = false
		return nil
	}
	q := r.b[:end+2]
	r.b = r.b[end+2:]
	return q
}

func (r *jsonReader) str(name string) string {
	q := r.quoted(name)
	if !r.ok {
		return ""
	}
	return string(q[1 : len(q)-1])
}

// int reads an integer as JSON writes it: -?(0|[1-9][0-9]*), within int.
func (r *jsonReader) int(name string) int {
	r.lit(name)
	if !r.ok {
		return 0
	}
	i := 0
	if i < len(r.b) && r.b[i] == '-' {
		i++
	}
	start := i
	for i < len(r.b) && r.b[i] >= '0' && r.b[i] <= '9' {
		i++
	}
	if i == start || (r.b[start] == '0' && i > start+1) || (i < len(r.b) && (r.b[i] == '.' || r.b[i] == 'e' || r.b[i] == 'E')) {
		r.ok = false
		return 0
	}
	n, err := strconv.Atoi(string(r.b[:i]))
	if err != nil {
		r.ok = false
		return 0
	}
	r.b = r.b[i:]
	return n
}

func (r *jsonReader) bool(name string) bool {
	r.lit(name)
	switch {
	case r.opt("true"):
		return true
	case r.opt("false"):
		return false
	}
	r.ok = false
	return false
}

func (r *jsonReader) time(name string) time.Time {
	q := r.quoted(name)
	var t time.Time
	if r.ok && t.UnmarshalJSON(q) != nil {
		r.ok = false
	}
	return t
}

// caseFields reads what jsonWriter.caseFields writes.
func (r *jsonReader) caseFields(c *Case) {
	c.ID = r.str(`{"id":`)
	c.Station = r.str(`,"station":`)
	c.ItemCode = r.str(`,"item_code":`)
	if r.opt(`,"item_name":`) {
		c.ItemName = r.str("")
	}
	c.Instant = r.bool(`,"instant":`)
	if r.opt(`,"limit":`) {
		c.Limit = &Limit{Value: r.int(`{"value":`), Unit: r.str(`,"unit":`)}
		r.lit("}")
	}
	c.Channel = r.str(`,"channel":`)
	c.Actor = r.str(`,"actor":`)
	r.applicant(`,"applicant":`, &c.Applicant)
	if !r.opt(`,"agent":null`) {
		c.Agent = &Applicant{}
		r.applicant(`,"agent":`, c.Agent)
	}
	c.Tolerance = r.bool(`,"tolerance":`)
	c.Commitment = r.bool(`,"commitment":`)
	c.State = r.str(`,"state":`)
	c.CreatedAt = r.time(`,"created_at":`)
	if !r.opt(`,"events":null`) {
		r.lit(`,"events":[`)
		c.Events = []Event{}
		for r.ok && !r.opt("]") {
			if len(c.Events) > 0 {
				r.lit(",")
			}
			r.event(&c.Events)
		}
	}
	if r.opt(`,"evaluations":[`) {
		c.Evaluations = []Evaluation{}
		for r.ok && !r.opt("]") {
			if len(c.Evaluations) > 0 {
				r.lit(",")
			}
			var e Evaluation
			r.evaluation(&e)
			c.Evaluations = append(c.Evaluations, e)
		}
	}
	if r.opt(`,"pending":`) {
		c.Pending = r.bool("")
	}
}

func (r *jsonReader) applicant(name string, a *Applicant) {
	a.Kind = r.str(name + `{"kind":`)
	a.Name = r.str(`,"name":`)
	if r.opt(`,"credit_code":`) {
		a.CreditCode = r.str("")
	}
	if r.opt(`,"id_type":`) {
		a.IDType = r.str("")
	}
	if r.opt(`,"id_number":`) {
		a.IDNumber = r.str("")
	}
	if r.opt(`,"phone":`) {
		a.Phone = r.str("")
	}
	r.lit("}")
}

// event reads one event object (parseEventJSON's layout) and appends it.
func (r *jsonReader) event(evs *[]Event) {
	if !r.ok {
		return
	}
	end := objectEnd(r.b)
	if end < 0 {
		r.ok = false
		return
	}
	ev, ok := parseEventJSON(r.b[:end])
	if !ok {
		r.ok = false
		return
	}
	*evs = append(*evs, ev)
	r.b = r.b[end:]
}

func (r *jsonReader) evaluation(e *Evaluation) {
	e.ID = r.str(`{"id":`)
	e.CaseID = r.str(`,"case_id":`)
	e.Level = r.str(`,"level":`)
	e.Channel = r.int(`,"channel":`)
	if r.opt(`,"text":`) {
		e.Text = r.str("")
	}
	e.Attempt = r.int(`,"attempt":`)
	if r.opt(`,"evaluator":`) {
		e.Evaluator = r.str("")
	}
	e.HLC = HLC(r.str(`,"hlc":`))
	e.At = r.time(`,"at":`)
	if r.opt(`,"node":`) {
		e.Node = r.str("")
	}
	if r.opt(`,"work_order_days":`) {
		e.WorkOrderDays = r.int("")
	}
	if r.opt(`,"pending":`) {
		e.Pending = r.bool("")
	}
	r.lit("}")
}

// objectEnd is the length of the JSON object b starts with, found by
// matching braces outside strings, or -1. It does not check the object
// (parseEventJSON does).
func objectEnd(b []byte) int {
	if len(b) == 0 || b[0] != '{' {
		return -1
	}
	return nestedEnd(b)
}

// valueEnd is the length of the JSON value b starts with (without
// checking it), or -1: up to the matching bracket of an object or an
// array, the closing quote of a string, else the first byte that ends a
// literal or number.
func valueEnd(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	switch b[0] {
	case '{', '[':
		return nestedEnd(b)
	case '"':
		for i := 1; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return -1
	}
	for i, c := range b {
		if c == ',' || c == '}' || c == ']' || isJSONSpace(c) {
			return i
		}
	}
	return len(b)
}

// nestedEnd is valueEnd of an object or array.
func nestedEnd(b []byte) int {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

// EncodeOps encodes ops exactly as json.Marshal does. Every write a node
// takes is encoded once for its raft entry; the center's consolidate ops
// carry ~48 KiB of a station's records each, which json.Marshal scans
// and compacts again (json.RawMessage is a Marshaler). Consolidate ops
// and case events are written here directly when their strings are
// plain and their data compact; anything else goes through json.Marshal.
func EncodeOps(ops []Op) ([]byte, error) {
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

// op writes a consolidate op or a case event (ok turns false for any
// other op).
func (w *jsonWriter) op(op *Op) {
	only := op.Item == nil && op.Case == nil && op.Evaluation == nil && op.WorkOrderID == "" &&
		op.WorkOrderEvent == nil && op.ConflictID == "" && op.Station == "" && op.Seq == 0 &&
		op.Settings == nil && op.Token == nil && op.Resolution == nil
	switch {
	case !only || !w.ok:
		w.ok = false
	case op.Pull != nil && op.Event == nil:
		w.str(`{"kind":`, op.Kind)
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
	case op.Event != nil && op.Pull == nil:
		w.str(`{"kind":`, op.Kind)
		if len(op.Event.Data) > 0 && !json.Valid(op.Event.Data) {
			w.ok = false // as above: json.Marshal refuses it
		}
		if w.ok {
			w.b, w.ok = appendEventJSON(append(w.b, `,"event":`...), *op.Event)
		}
	default:
		w.ok = false
	}
	if op.Offline {
		w.raw(`,"offline":true`)
	}
	w.raw("}")
}

func (w *jsonWriter) pulledChange(c *PulledChange) {
	w.b = strconv.AppendUint(append(w.b, `{"seq":`...), c.Seq, 10)
	w.str(`,"kind":`, c.Kind)
	w.str(`,"key":`, c.Key)
	switch {
	case !w.ok:
	case c.Data == nil:
		w.raw(`,"data":null`)
	case len(c.Data) > 0 && compactAndSafe(c.Data) && json.Valid(c.Data):
		// Valid: what goes into a raft entry must decode on every node
		// (json.Marshal would refuse invalid data; a pulled page's data
		// was valid when it was decoded, but an op may be built anywhere).
		w.b = append(append(w.b, `,"data":`...), c.Data...)
	default:
		w.ok = false
	}
	w.raw("}")
}

// ParseOpsJSON reads ops, a JSON array of ops, when every op in it is a
// consolidate op or a case event in the layout EncodeOps writes, or
// reports false. What it returns then is what json.Unmarshal returns for
// ops. Every node decodes every raft entry; a center's entries are pages
// of station records, which json.Unmarshal scans twice and reads by
// reflection.
func ParseOpsJSON(ops []byte) ([]Op, bool) {
	r := jsonReader{b: ops, ok: true}
	r.lit("[")
	out := []Op{}
	for r.ok && !r.opt("]") {
		if len(out) > 0 {
			r.lit(",")
		}
		var op Op
		r.op(&op)
		out = append(out, op)
	}
	if !r.ok || len(r.b) != 0 {
		return nil, false
	}
	return out, true
}

// op reads what jsonWriter.op writes.
func (r *jsonReader) op(op *Op) {
	op.Kind = r.str(`{"kind":`)
	switch {
	case r.opt(`,"pull":`):
		p := &PulledPage{}
		op.Pull = p
		p.Station = r.str(`{"station":`)
		p.ClusterID = r.str(`,"cluster_id":`)
		p.From = r.uint(`,"from":`)
		if !r.opt(`,"changes":null`) {
			r.lit(`,"changes":[`)
			p.Changes = []PulledChange{}
			for r.ok && !r.opt("]") {
				if len(p.Changes) > 0 {
					r.lit(",")
				}
				var c PulledChange
				c.Seq = r.uint(`{"seq":`)
				c.Kind = r.str(`,"kind":`)
				c.Key = r.str(`,"key":`)
				c.Data = r.raw(`,"data":`)
				r.lit("}")
				p.Changes = append(p.Changes, c)
			}
		}
		p.Head = r.uint(`,"head":`)
		r.lit("}")
	case r.opt(`,"event":`):
		var evs []Event
		r.event(&evs)
		if r.ok {
			op.Event = &evs[0]
		}
	default:
		r.ok = false
	}
	if r.opt(`,"offline":`) {
		op.Offline = r.bool("")
	}
	r.lit("}")
}

// uint reads an unsigned integer as JSON writes it.
func (r *jsonReader) uint(name string) uint64 {
	r.lit(name)
	i := 0
	for r.ok && i < len(r.b) && r.b[i] >= '0' && r.b[i] <= '9' {
		i++
	}
	if !r.ok || i == 0 || (r.b[0] == '0' && i > 1) || (i < len(r.b) && (r.b[i] == '.' || r.b[i] == 'e' || r.b[i] == 'E')) {
		r.ok = false
		return 0
	}
	n, err := strconv.ParseUint(string(r.b[:i]), 10, 64)
	if err != nil {
		r.ok = false
		return 0
	}
	r.b = r.b[i:]
	return n
}

// raw reads name and any valid JSON value, copied as json.RawMessage.
func (r *jsonReader) raw(name string) json.RawMessage {
	r.lit(name)
	if !r.ok {
		return nil
	}
	end := valueEnd(r.b)
	if end <= 0 || !json.Valid(r.b[:end]) {
		r.ok = false
		return nil
	}
	v := append(json.RawMessage(nil), r.b[:end]...)
	r.b = r.b[end:]
	return v
}
