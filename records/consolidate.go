package records

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The district center's consolidated store. Merged changes also go to the
// center's own change feed with keys "<station>/<key>", which a mirror
// (PostgreSQL) follows. The center keeps each
// station's records in the station's own key space ("s/<station>/" then
// the keys a station uses), so every query and statistic of this package
// works on one station through StationReader. A pull loop reads a
// station's change feed in pages; each page and the station's new cursor
// are applied in one op (OpConsolidate), so a page is taken exactly once
// whatever is retried. Merging a change is idempotent too (events by id),
// so re-reading a station from the start (a rebuilt station, a digest
// mismatch) adds nothing twice.

// Center op kinds.
const (
	OpConsolidate = "consolidate"  // a page of a station's feed and the new cursor
	OpPublishItem = "publish_item" // the center changes a district item
	// OpRereadStation sets a station's cursor back to 0 (digest mismatch).
	OpRereadStation = "reread_station"
)

const (
	prefixStation = "s/"
	prefixCursor  = "center/cursor/"
)

// PulledChange is one change of a station's feed.
type PulledChange struct {
	Seq uint64 `json:"seq"`
	Change
}

// PulledPage is a page of a station's feed, read from cursor From.
type PulledPage struct {
	Station   string         `json:"station"`
	ClusterID string         `json:"cluster_id"`
	From      uint64         `json:"from"` // the cursor the page was read after
	Changes   []PulledChange `json:"changes"`
	// Head is the station's last feed seq when the page was read.
	Head uint64 `json:"head"`
}

// Cursor is how far the center has read a station's feed.
type Cursor struct {
	ClusterID string `json:"cluster_id"`
	Seq       uint64 `json:"seq"`
	Head      uint64 `json:"head"` // the station's feed head at the last pull
	// Rereads counts full re-reads (new cluster id, digest mismatch).
	Rereads int `json:"rereads"`
}

// StationReader is r seen through a station's key space at the center.
func StationReader(r Reader, station string) Reader {
	return prefixed{r: r, p: stationPrefix(station)}
}

// stationPrefix is the prefix of a station's key space at the center.
func stationPrefix(station string) string { return prefixStation + station + "/" }

type prefixed struct {
	r  Reader
	st State
	p  string
}

func (p prefixed) Get(k string) ([]byte, error) {
	if p.st != nil {
		return p.st.Get(p.p + k)
	}
	return p.r.Get(p.p + k)
}

func (p prefixed) Set(k string, v []byte) error { return p.st.Set(p.p+k, v) }

// HeadCache is the view, under the prefix, of the head cache of the State
// it wraps (nil if it has none).
func (p prefixed) HeadCache() *HeadCache {
	if hc := headCacheOf(p.st); hc != nil {
		return hc.within(p.p)
	}
	return nil
}

func (p prefixed) Scan(prefix, after string, fn func(string, []byte) (bool, error)) error {
	if after != "" {
		after = p.p + after
	}
	var r interface {
		Scan(string, string, func(string, []byte) (bool, error)) error
	} = p.r
	if p.st != nil {
		r = p.st
	}
	return r.Scan(p.p+prefix, after, func(k string, v []byte) (bool, error) {
		return fn(strings.TrimPrefix(k, p.p), v)
	})
}

func stationState(st State, station string) State {
	return prefixed{st: st, p: stationPrefix(station)}
}

// GetCursor returns the center's cursor for a station (zero if none).
func GetCursor(r interface{ Get(string) ([]byte, error) }, station string) (Cursor, error) {
	var c *Cursor
	if err := getJSON(r, prefixCursor+station, &c); err != nil || c == nil {
		return Cursor{}, err
	}
	return *c, nil
}

// consolidate applies a pulled page. A page read from another cursor than
// the stored one (a retry of a page already taken, or a stale one) is a
// repeat; a page of another cluster id than the stored one must start at
// 0: the station was rebuilt, and is read again from its start.
func consolidate(st State, pg PulledPage) (any, []Change, error) {
	if !validRecordID(pg.Station) || pg.ClusterID == "" {
		return nil, nil, Invalid("station", "a pulled page needs the station and its cluster id")
	}
	cur, err := GetCursor(st, pg.Station)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case cur.ClusterID != pg.ClusterID && pg.From != 0:
		return cur, nil, nil // read under an older cluster id: the loop starts again
	case cur.ClusterID != pg.ClusterID:
		if cur.ClusterID != "" {
			cur.Rereads++
		}
		cur.ClusterID, cur.Seq = pg.ClusterID, 0
	case pg.From != cur.Seq:
		return cur, nil, nil // taken before
	}
	ss := stationState(st, pg.Station)
	decoded, heads, err := checkPulled(ss, pg, cur.Seq)
	if err != nil {
		return nil, nil, err
	}
	// A case's changes in the page (the case, its events, evaluations)
	// are merged together: one read and one write of its head, and one
	// look at its stored events, instead of one per change. Merging is
	// by id and the fold by time, so the result is the same; the other
	// kinds do not touch cases.
	var (
		changes []Change
		groups  = map[string]*caseMerge{}
		order   []*caseMerge
	)
	group := func(id string) *caseMerge {
		g := groups[id]
		if g == nil {
			g = &caseMerge{id: id}
			groups[id] = g
			order = append(order, g)
		}
		return g
	}
	for i, ch := range pg.Changes {
		if ch.Seq <= cur.Seq {
			continue
		}
		var err error
		switch v := decoded[i].(type) {
		case *Case:
			g := group(v.ID)
			if g.fresh == nil {
				g.fresh = v
			} else { // known by now: only its events and evaluations merge
				g.evs = append(g.evs, v.Events...)
				g.evals = append(g.evals, v.Evaluations...)
			}
		case *Event:
			g := group(ch.Key)
			g.evs = append(g.evs, *v)
			g.changes = append(g.changes, eventChange{len(changes), v})
		case *Evaluation:
			g := group(ch.Key)
			g.evals = append(g.evals, *v)
		default:
			err = mergeDecoded(ss, ch.Change, decoded[i])
		}
		if err != nil {
			return nil, nil, fmt.Errorf("station %s change %d (%s %s): %w", pg.Station, ch.Seq, ch.Kind, ch.Key, err)
		}
		changes = append(changes, Change{Kind: ch.Kind, Key: pg.Station + "/" + ch.Key, Data: ch.Data})
		cur.Seq = ch.Seq
	}
	for _, g := range order {
		read, ok := heads[g.id]
		if !ok {
			if _, read, err = headBytes(ss, g.id); err != nil {
				return nil, nil, err
			}
		}
		put, err := mergeCase(ss, g.id, read, g.fresh, g.evs, g.evals)
		if err != nil {
			return nil, nil, fmt.Errorf("station %s case %s: %w", pg.Station, g.id, err)
		}
		// An event stored here just as the station sent it (not one
		// marked as a conflict, say) is not copied into the center's
		// feed a second time: the feed refers to its key, as a station's
		// does. By its bytes, which hold its id and timestamp, the key.
		for _, c := range g.changes {
			if b, ok := put[c.ev.ID]; ok && bytes.Equal(b, changes[c.i].Data) {
				changes[c.i].Stored = stationPrefix(pg.Station) + eventKey(g.id, *c.ev)
			}
		}
	}
	cur.Head = max(pg.Head, cur.Seq)
	if _, err := setJSON(st, prefixCursor+pg.Station, cur); err != nil {
		return nil, nil, err
	}
	return cur, changes, nil
}

// checkPulled refuses, before anything is written, a page with a change
// that mergeChange cannot take: a kind this version does not know, data
// that does not decode, a case whose id is not a record id, an event,
// evaluation or work-order step whose case or work order neither the
// store nor the page before it holds. A merge failing half-way is not a
// domain error: it would stop the center's state machine on every node,
// and again after every restart. It returns each change decoded (by
// index in the page; nil for kinds stored as they are), for the merge,
// and the stored heads it read, by case id: the page merges each case
// once, so they are still the stored ones when its merge comes.
func checkPulled(ss State, pg PulledPage, after uint64) ([]any, map[string][]byte, error) {
	decoded := make([]any, len(pg.Changes))
	cases, orders := map[string]bool{}, map[string]bool{}
	heads := map[string][]byte{}
	for i, ch := range pg.Changes {
		if ch.Seq <= after {
			continue
		}
		refuse := func(what string) error {
			return Invalid("changes", "station %s change %d (%s %q): %s", pg.Station, ch.Seq, ch.Kind, ch.Key, what)
		}
		v, err := decodeChange(ch.Change)
		if err != nil {
			return nil, nil, refuse(err.Error())
		}
		decoded[i] = v
		switch v := v.(type) {
		case *Case:
			if !validRecordID(v.ID) {
				return nil, nil, refuse(fmt.Sprintf("case id %q is not a record id", v.ID))
			}
			cases[v.ID] = true
		case *WorkOrder:
			orders[v.ID] = true
		case *Event, *Evaluation:
			if !cases[ch.Key] {
				_, b, err := headBytes(ss, ch.Key)
				if err != nil {
					return nil, nil, err
				}
				if b == nil || string(b) == "null" {
					return nil, nil, refuse("its case is not known before it")
				}
				cases[ch.Key] = true
				heads[ch.Key] = b
			}
		case *WorkOrderEvent:
			if !orders[ch.Key] {
				var w *WorkOrder
				if err := getJSON(ss, prefixWorkOrder+ch.Key, &w); err != nil {
					return nil, nil, err
				}
				if w == nil {
					return nil, nil, refuse("its work order is not known before it")
				}
				orders[ch.Key] = true
			}
		}
	}
	return decoded, heads, nil
}

// decodeChange decodes a station change's record: *Case, *Event,
// *Evaluation, *WorkOrder or *WorkOrderEvent; nil for the kinds stored
// as they are (item, conflict, settings).
func decodeChange(ch Change) (any, error) {
	var v any
	switch ch.Kind {
	case "item", "conflict", "settings":
		return nil, nil
	case "case":
		// A station's cases as it sends them: read without reflection
		// when they have the stored layout (parseHeadJSON).
		if h, ok := parseHeadJSON(ch.Data); ok {
			return &h.Case, nil
		}
		v = &Case{}
	case "event":
		// Most of what a station sends: read without reflection when it
		// has the stored layout (decodeEvent).
		ev, err := decodeEvent(ch.Data)
		if err != nil {
			return nil, fmt.Errorf("data does not decode: %w", err)
		}
		return &ev, nil
	case "evaluation":
		v = &Evaluation{}
	case "workorder":
		v = &WorkOrder{}
	case "workorder_event":
		v = &WorkOrderEvent{}
	default:
		return nil, fmt.Errorf("unknown change kind %q", ch.Kind)
	}
	if err := json.Unmarshal(ch.Data, v); err != nil {
		return nil, fmt.Errorf("data does not decode: %w", err)
	}
	return v, nil
}

// SplitCenterKey splits the key of a change in the center's own feed
// ("<station>/<key>": what consolidating added, for mirrors).
func SplitCenterKey(k string) (station, key string, ok bool) {
	return strings.Cut(k, "/")
}

// rereadStation sets a station's cursor back to the start, so the next
// pull reads its whole feed again (merging is idempotent).
func rereadStation(st State, station string) (any, []Change, error) {
	cur, err := GetCursor(st, station)
	if err != nil {
		return nil, nil, err
	}
	if cur.Seq == 0 {
		return cur, nil, nil
	}
	cur.Seq = 0
	cur.Rereads++
	if _, err := setJSON(st, prefixCursor+station, cur); err != nil {
		return nil, nil, err
	}
	return cur, nil, nil
}

// mergeChange merges one station change into the station's key space.
// Every kind is idempotent: records are keyed by id and events merged by
// id, so a change seen twice changes nothing.
func mergeChange(st State, ch Change) error {
	v, err := decodeChange(ch)
	if err != nil {
		return err
	}
	return mergeDecoded(st, ch, v)
}

// mergeDecoded is mergeChange with the change's record decoded already
// (decodeChange).
func mergeDecoded(st State, ch Change, v any) error {
	switch v := v.(type) {
	case nil:
		switch ch.Kind {
		case "item":
			return st.Set(prefixItem+ch.Key, ch.Data)
		case "conflict":
			return st.Set(prefixConflict+ch.Key, ch.Data)
		case "settings":
			return st.Set(keySettings, ch.Data)
		}
	case *Case:
		return loadMergeCase(st, v.ID, v, nil, nil)
	case *Event:
		return loadMergeCase(st, ch.Key, nil, []Event{*v}, nil)
	case *Evaluation:
		return loadMergeCase(st, ch.Key, nil, nil, []Evaluation{*v})
	case *WorkOrder:
		w := *v
		var old *WorkOrder
		if err := getJSON(st, prefixWorkOrder+w.ID, &old); err != nil {
			return err
		}
		if old != nil {
			for _, e := range old.Events {
				if !hasWorkOrderEvent(w, e.ID) {
					w.Events = append(w.Events, e)
				}
			}
		}
		w.Fold()
		_, err := setJSON(st, prefixWorkOrder+w.ID, w)
		return err
	case *WorkOrderEvent:
		var w *WorkOrder
		if err := getJSON(st, prefixWorkOrder+ch.Key, &w); err != nil {
			return err
		}
		if w == nil {
			return fmt.Errorf("work order %s not known before its event", ch.Key)
		}
		if !hasWorkOrderEvent(*w, v.ID) {
			w.Events = append(w.Events, *v)
		}
		w.Fold()
		_, err := setJSON(st, prefixWorkOrder+w.ID, w)
		return err
	}
	return fmt.Errorf("unknown change kind %q", ch.Kind)
}

// caseMerge gathers one case's changes of a pulled page.
type caseMerge struct {
	id      string
	fresh   *Case // the case change, if the page has one
	evs     []Event
	evals   []Evaluation
	changes []eventChange // the case's event changes
}

// eventChange is an event change of a pulled page: its index in the
// changes consolidate returns, and its event.
type eventChange struct {
	i  int
	ev *Event
}

// loadMergeCase is mergeCase with the head read here.
func loadMergeCase(st State, id string, fresh *Case, evs []Event, evals []Evaluation) error {
	_, read, err := headBytes(st, id)
	if err != nil {
		return err
	}
	_, err = mergeCase(st, id, read, fresh, evs, evals)
	return err
}

// mergeCase merges a station's case record into the center's copy: a
// new case is stored from fresh, a known one gains the events and
// evaluations it lacks (by id), fresh's and evs and evals. read is the
// case's stored head (nil if none), as headBytes read it in this
// transaction. fresh is nil for event or evaluation changes alone, which
// need their case known before them (the feed never does otherwise).
// It returns the events it stored, as stored, by id (mergeEvents).
func mergeCase(st State, id string, read []byte, fresh *Case, evs []Event, evals []Evaluation) (map[string][]byte, error) {
	var h *caseHead
	if read != nil {
		var err error
		if h, err = decodeHead(st, caseKey(id), read); err != nil {
			return nil, err
		}
	}
	switch {
	case h == nil && fresh == nil:
		return nil, fmt.Errorf("case %s not known before its event", id)
	case h == nil:
		h = &caseHead{Case: *fresh, storedIDs: map[string]bool{}} // no event of it is stored yet
		h.Events, h.Evaluations, h.State, h.Case.accepted = nil, nil, "", false
	}
	if fresh != nil {
		evs = slices.Concat(fresh.Events, evs)
		evals = slices.Concat(fresh.Evaluations, evals)
	}
	// Events first: an evaluation comes after its case's events, and
	// merged first it would make them look out of order (mergeEvents then
	// reads and folds all the case's events again). Evaluations do not
	// enter the fold, so the order changes nothing else.
	put, err := mergeEvents(st, h, evs)
	if err != nil {
		return nil, err
	}
	for _, e := range evals {
		if !hasEvaluation(h.Case, e.ID) {
			h.Evaluations = append(h.Evaluations, e)
			h.Last = max(h.Last, e.HLC)
		}
	}
	return put, storeHead(st, h)
}

func hasWorkOrderEvent(w WorkOrder, id string) bool {
	for _, e := range w.Events {
		if e.ID == id {
			return true
		}
	}
	return false
}

// publishItem is the center changing a district item of its catalogue:
// the version increases with every change, an unchanged item keeps it.
func publishItem(st State, it Item) (any, []Change, error) {
	it.Origin = OriginDistrict
	it.Version = 1
	if err := it.Validate(); err != nil {
		return nil, nil, err
	}
	var old *Item
	if err := getJSON(st, prefixItem+it.Code, &old); err != nil {
		return nil, nil, err
	}
	if old != nil {
		it.Version = old.Version
		if sameItem(*old, it) {
			return *old, nil, nil
		}
		it.Version = old.Version + 1
	}
	data, err := setJSON(st, prefixItem+it.Code, it)
	if err != nil {
		return nil, nil, err
	}
	return it, []Change{{Kind: "item", Key: it.Code, Data: data}}, nil
}

// ListCursors returns every station's cursor, by station id.
func ListCursors(r Reader) (map[string]Cursor, error) {
	out := map[string]Cursor{}
	err := r.Scan(prefixCursor, "", func(k string, v []byte) (bool, error) {
		var c Cursor
		if err := json.Unmarshal(v, &c); err != nil {
			return false, fmt.Errorf("decode %s: %w", k, err)
		}
		out[strings.TrimPrefix(k, prefixCursor)] = c
		return true, nil
	})
	return out, err
}

// ItemsNewerThan returns the district items whose version is newer than
// the versions a station has (by code; a missing code is version 0).
func ItemsNewerThan(r Reader, have map[string]uint64) ([]Item, error) {
	items, err := ListItems(r)
	if err != nil {
		return nil, err
	}
	out := []Item{}
	for _, it := range items {
		if it.Origin == OriginDistrict && it.Version > have[it.Code] {
			out = append(out, it)
		}
	}
	return out, nil
}

// Center-side events: evaluations given online or by a phone call-back,
// and work-order steps taken at the center (an approval, say). The center
// records one for a station (OpCenterEvent): it goes into the station's
// outgoing queue and into the center's copy at once. The station's leader
// fetches the queue after its cursor and applies the events as offline
// writes (kept as conflicts, never dropped, if its history no longer
// allows them) together with the new cursor (OpCenterCursor). The
// station's feed brings them back to the center, where merging by id
// changes nothing.
const (
	OpCenterEvent  = "center_event"
	OpCenterCursor = "center_cursor"

	prefixOut       = "center/out/"
	keyCenterCursor = "meta/center_events"
)

// CenterEvent is one queued center-side event for a station.
type CenterEvent struct {
	Seq uint64 `json:"seq"`
	Op  Op     `json:"op"`
}

func outKey(station string, seq uint64) string {
	return fmt.Sprintf("%s%s/%016d", prefixOut, station, seq)
}

// centerEvent queues op (an evaluation or a work-order event, fully
// prepared) for station and merges it into the center's copy.
func centerEvent(st State, station string, op Op) (any, []Change, error) {
	if !validRecordID(station) {
		return nil, nil, Invalid("station", "%q is not a station id", station)
	}
	ss := stationState(st, station)
	var ch Change
	switch {
	case op.Evaluation != nil:
		e := *op.Evaluation
		if err := e.Validate(); err != nil {
			return nil, nil, err
		}
		c, err := loadCase(ss, e.CaseID)
		if err != nil {
			return nil, nil, err
		}
		if hasEvaluation(c.Case, e.ID) {
			return CaseWrite{Case: c.ID, State: c.State}, nil, nil
		}
		for _, prev := range c.Evaluations {
			if prev.Attempt == e.Attempt {
				return nil, nil, Conflict("case %s already has its %s evaluation (一事一评)", c.ID, attemptName(e.Attempt))
			}
		}
		op = Op{Kind: OpEvaluate, Evaluation: &e}
		ch = Change{Kind: "evaluation", Key: e.CaseID}
		ch.Data, err = json.Marshal(e)
		if err != nil {
			return nil, nil, err
		}
	case op.WorkOrderEvent != nil && op.WorkOrderID != "":
		ev := *op.WorkOrderEvent
		if err := ev.Validate(); err != nil {
			return nil, nil, err
		}
		var w *WorkOrder
		if err := getJSON(ss, prefixWorkOrder+op.WorkOrderID, &w); err != nil {
			return nil, nil, err
		}
		if w == nil {
			return nil, nil, NotFound("work order %q of station %s not found", op.WorkOrderID, station)
		}
		if hasWorkOrderEvent(*w, ev.ID) {
			return *w, nil, nil
		}
		op = Op{Kind: OpWorkOrderEvent, WorkOrderID: op.WorkOrderID, WorkOrderEvent: &ev}
		ch = Change{Kind: "workorder_event", Key: op.WorkOrderID}
		var err error
		if ch.Data, err = json.Marshal(ev); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, Invalid("op", "a center-side event is an evaluation or a work-order event")
	}
	seqKey := prefixOut + station + "/~seq"
	var seq uint64
	if err := getJSON(st, seqKey, &seq); err != nil {
		return nil, nil, err
	}
	seq++
	if _, err := setJSON(st, outKey(station, seq), CenterEvent{Seq: seq, Op: op}); err != nil {
		return nil, nil, err
	}
	if _, err := setJSON(st, seqKey, seq); err != nil {
		return nil, nil, err
	}
	if err := mergeChange(ss, ch); err != nil {
		return nil, nil, err
	}
	ch.Key = station + "/" + ch.Key
	return CenterEvent{Seq: seq, Op: op}, []Change{ch}, nil
}

// CenterEventsAfter returns up to limit events queued for station after
// seq, in order.
func CenterEventsAfter(r Reader, station string, after uint64, limit int) ([]CenterEvent, error) {
	out := []CenterEvent{}
	err := r.Scan(prefixOut+station+"/0", outKey(station, after), func(k string, v []byte) (bool, error) {
		var e CenterEvent
		if err := json.Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("decode %s: %w", k, err)
		}
		out = append(out, e)
		return len(out) < limit, nil
	})
	return out, err
}

// centerCursor records (at a station) the last center-side event applied.
func centerCursor(st State, seq uint64) (any, []Change, error) {
	var old uint64
	if err := getJSON(st, keyCenterCursor, &old); err != nil {
		return nil, nil, err
	}
	if seq > old {
		if _, err := setJSON(st, keyCenterCursor, seq); err != nil {
			return nil, nil, err
		}
	}
	return max(seq, old), nil, nil
}

// CenterCursor is the last center-side event a station applied.
func CenterCursor(r Reader) (uint64, error) {
	var seq uint64
	err := getJSON(r, keyCenterCursor, &seq)
	return seq, err
}
