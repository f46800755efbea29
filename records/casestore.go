package records

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// How a case is stored. A case's head (identity, applicant, evaluations
// and the fold of its events so far) lives under case/<id>, and each
// event under its own key right after it:
//
//	case/<id>                     head (JSON caseHead)
//	case/<id>\x00<hlc><event id>  one event (JSON Event)
//
// so appending an event writes one small key and the head instead of
// rewriting the whole case, and one scan of case/ still reads every case
// with its events in order (NUL sorts before every character an id may
// hold). A new event always sorts after the case's last one (After), so
// the head's state is folded one event at a time; the center, which may
// merge events out of order, folds again from the stored events.
//
// Records written before this layout hold their events in the head; they
// are read as they are and moved to event keys the next time the case is
// written.

const eventSep = "\x00"

// caseHead is the stored head of a case. Events is empty, except in a
// record written before events had their own keys.
type caseHead struct {
	Case
	// The fold of the events so far: whether an acceptance happened, the
	// largest timestamp of any event or evaluation, how many events and how
	// many bytes they take (the case's size bound).
	Accepted bool `json:"fold_accepted,omitempty"`
	Last     HLC  `json:"last_hlc,omitempty"`
	NEvents  int  `json:"event_count,omitempty"`
	Bytes    int  `json:"event_bytes,omitempty"`

	legacy bool // events held in the head: move them out at the next store

	// storedIDs, when not nil, are the ids of the case's stored events
	// (its event keys), known without scanning them, for the center's
	// merge: a case new at the center has none, putEvent adds to them, and
	// a head taken from a HeadCache carries those it had when it was
	// stored. Event keys are only ever written together with the case's
	// head (whose event count then changes), so a cached head whose bytes
	// are still the stored ones has the stored events. Stations leave them
	// nil (they never merge).
	storedIDs map[string]bool
}

func caseKey(id string) string { return prefixCase + id }

func eventsPrefix(id string) string { return prefixCase + id + eventSep }

func eventKey(caseID string, ev Event) string {
	return eventsPrefix(caseID) + string(ev.HLC) + ev.ID
}

// HeadCache keeps the case heads last stored, decoded, so that events on
// the same case (a clerk's steps, a follower applying a raft entry of
// many) decode the case's head once instead of once per event. A State
// offers it by implementing HeadCacher.
//
// A kept head is used only while the bytes under its key are still the
// ones it was stored as (compared on every load), so a write to the key
// by any other path, a transaction that was discarded or a state that
// was replaced simply misses: the cache may outlive transactions. A head
// is handed out once (the loader may change it), then kept again when it
// is stored. Not safe for concurrent use.
type HeadCache struct {
	*heads
	prefix string // of the keys of this view (Within)
}

// heads are kept in two generations of at most max/2 each: a full new
// one becomes the old one, and the old one is dropped. A head taken from
// the old generation is kept again in the new one when it is stored, so
// the heads in use survive the bound and the others age out, without
// per-entry bookkeeping. (Dropping everything at the bound, as before,
// made the center, whose pages touch thousands of cases, decode every
// open case's head and scan its events again after each drop.)
type heads struct {
	m, old map[string]cachedHead
	max    int // heads kept at most
	hits   int // heads handed out again (tests)
}

type cachedHead struct {
	stored []byte
	head   caseHead
}

// DefaultCachedHeads bounds a station's HeadCache: a station's clerks
// have a few dozen cases open at once.
const DefaultCachedHeads = 1024

// NewHeadCache returns an empty cache of at most max heads
// (DefaultCachedHeads if max <= 0).
func NewHeadCache(max int) *HeadCache {
	if max <= 0 {
		max = DefaultCachedHeads
	}
	return &HeadCache{heads: &heads{m: map[string]cachedHead{}, max: max}}
}

// within is the view of the cache for a State whose keys are those of
// the cache's State after prefix (a station's records at the center).
func (c *HeadCache) within(prefix string) *HeadCache {
	return &HeadCache{heads: c.heads, prefix: c.prefix + prefix}
}

// HeadCacher is a State that keeps decoded case heads (HeadCache).
type HeadCacher interface{ HeadCache() *HeadCache }

func headCacheOf(st any) *HeadCache {
	if hc, ok := st.(HeadCacher); ok {
		return hc.HeadCache()
	}
	return nil
}

// take returns the head kept for key if b is what it was stored as, and
// forgets it.
func (c *HeadCache) take(key string, b []byte) (*caseHead, bool) {
	key = c.prefix + key
	e, ok := c.m[key]
	if ok {
		delete(c.m, key)
	} else if e, ok = c.old[key]; ok {
		delete(c.old, key)
	} else {
		return nil, false
	}
	if !bytes.Equal(e.stored, b) {
		return nil, false
	}
	c.hits++
	h := e.head
	return &h, true
}

// keep remembers head h (as stored: no events) stored as b under key. It
// keeps a copy whose slices and pointers h does not share, since the
// caller may go on changing h.
func (c *HeadCache) keep(key string, b []byte, h caseHead) {
	key = c.prefix + key
	if len(c.m) >= max(c.max/2, 1) {
		c.old, c.m = c.m, make(map[string]cachedHead, len(c.m))
	}
	delete(c.old, key) // a head not taken before it is stored again
	h.Evaluations = slices.Clone(h.Evaluations)
	h.storedIDs = maps.Clone(h.storedIDs)
	if h.Limit != nil {
		l := *h.Limit
		h.Limit = &l
	}
	if h.Agent != nil {
		a := *h.Agent
		h.Agent = &a
	}
	c.m[key] = cachedHead{stored: b, head: h}
}

// headBytes reads the stored head of case id under its key (nil if there
// is none).
func headBytes(st interface{ Get(string) ([]byte, error) }, id string) (key string, b []byte, err error) {
	if strings.Contains(id, eventSep) {
		return "", nil, nil // an event's key, not a case id (ids hold no control characters)
	}
	key = caseKey(id)
	if b, err = st.Get(key); err != nil {
		return key, nil, fmt.Errorf("read %s: %w", key, err)
	}
	return key, b, nil
}

// loadHead reads the head of case id (nil if there is none).
func loadHead(st interface{ Get(string) ([]byte, error) }, id string) (*caseHead, error) {
	key, b, err := headBytes(st, id)
	if err != nil || b == nil {
		return nil, err
	}
	return decodeHead(st, key, b)
}

// decodeHead is the head stored as b under key: the head cache's when it
// still holds it as those bytes, else decoded.
func decodeHead(st interface{ Get(string) ([]byte, error) }, key string, b []byte) (*caseHead, error) {
	if hc := headCacheOf(st); hc != nil {
		if h, ok := hc.take(key, b); ok {
			h.Case.accepted = h.Accepted
			return h, nil
		}
	}
	var h *caseHead
	if fast, ok := parseHeadJSON(b); ok {
		h = &fast
	} else if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	if h == nil {
		return nil, nil
	}
	if len(h.Events) > 0 {
		h.legacy = true
		h.refold(h.Events)
	}
	h.Case.accepted = h.Accepted
	return h, nil
}

// refold sets the head's fold from all of the case's events.
func (h *caseHead) refold(evs []Event) {
	c := h.Case
	c.Events = evs
	c.Fold()
	h.State, h.Accepted = c.State, c.accepted
	h.Case.accepted = c.accepted
	h.NEvents, h.Bytes, h.Last = len(evs), 0, ""
	for _, ev := range evs {
		h.Bytes += eventSize(ev)
		h.Last = max(h.Last, ev.HLC)
	}
	for _, e := range h.Evaluations {
		h.Last = max(h.Last, e.HLC)
	}
}

// eventSize is what an event adds to its case's size.
func eventSize(ev Event) int {
	return len(ev.ID) + len(ev.Type) + len(ev.Actor) + len(ev.Node) + len(ev.Data) + 120
}

// stored is the event as kept: the conflict and pending marks belong to a
// view (Fold and WithPending set them).
func stored(ev Event) Event {
	ev.Conflict, ev.Pending = false, false
	return ev
}

// putEvent stores one event of case h and returns it as stored. Its data
// is valid JSON (checked when it was received). It notes the id in the
// head's storedIDs when they are known, so they stay those of the case's
// event keys.
func putEvent(st State, h *caseHead, ev Event) ([]byte, error) {
	b, err := encodeEvent(stored(ev))
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	if err := st.Set(eventKey(h.ID, ev), b); err != nil {
		return nil, fmt.Errorf("write event %s: %w", ev.ID, err)
	}
	if h.storedIDs != nil {
		h.storedIDs[ev.ID] = true
	}
	return b, nil
}

// storeHead writes the head; a legacy head's events move to their keys.
func storeHead(st State, h *caseHead) error {
	if h.legacy {
		for _, ev := range h.Events {
			if _, err := putEvent(st, h, ev); err != nil {
				return err
			}
		}
		h.legacy = false
	}
	h.Accepted = h.Case.accepted
	head := *h
	head.Events = nil
	key := caseKey(h.ID)
	b, err := encodeHead(&head)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if err := st.Set(key, b); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if hc := headCacheOf(st); hc != nil {
		hc.keep(key, b, head)
	}
	return nil
}

// step folds one more event, later than every event before it, into the
// head: it reports false when the event is not possible now (a conflict,
// kept but not applied).
func (h *caseHead) step(ev Event) bool {
	ok := h.Case.step(ev.Type)
	h.Accepted = h.Case.accepted
	h.NEvents++
	h.Bytes += eventSize(ev)
	h.Last = max(h.Last, ev.HLC)
	return ok
}

// size is the case's size as bounded by maxCaseBytes.
func (h *caseHead) size() int {
	n := h.Bytes + 512 + len(h.Applicant.Name) + len(h.ItemName)
	for _, e := range h.Evaluations {
		n += len(e.Text) + 200
	}
	return n
}

// lastHLC is the largest timestamp the case holds.
func (h *caseHead) lastHLC() HLC {
	last := h.Last
	for _, e := range h.Evaluations {
		last = max(last, e.HLC)
	}
	return last
}

// CaseLastHLC is the largest timestamp case id holds ("" when the case is
// not here): what a node's clock observes before writing to the case,
// read from the case's head alone.
func CaseLastHLC(r interface{ Get(string) ([]byte, error) }, id string) (HLC, error) {
	h, err := loadHead(r, id)
	if err != nil || h == nil {
		return "", err
	}
	return h.lastHLC(), nil
}

// caseScanner reads whole cases from a scan of case/: a head, then its
// events.
type caseScanner interface {
	Get(string) ([]byte, error)
	Scan(prefix, after string, fn func(string, []byte) (bool, error)) error
}

// readCase reads case id with its events, folded (nil if there is none).
func readCase(r caseScanner, id string) (*Case, error) {
	h, err := loadHead(r, id)
	if err != nil || h == nil {
		return nil, err
	}
	c := h.Case
	c.Events, err = appendStoredEvents(r, id, h.Events)
	if err != nil {
		return nil, err
	}
	c.Fold()
	return &c, nil
}

// scanCases calls fn with every case after case id `after` ("" for all),
// in id order, with its events, folded, until fn returns false.
func scanCases(r caseScanner, after string, fn func(Case) (bool, error)) error {
	var (
		cur  *Case
		stop bool
	)
	flush := func() (bool, error) {
		if cur == nil {
			return true, nil
		}
		c := *cur
		cur = nil
		c.Fold()
		return fn(c)
	}
	from := ""
	if after != "" {
		from = caseKey(after) + "\x01" // past the case and its events
	}
	err := r.Scan(prefixCase, from, func(k string, v []byte) (bool, error) {
		rest := k[len(prefixCase):]
		if id, _, isEvent := strings.Cut(rest, eventSep); isEvent {
			if cur == nil || cur.ID != id {
				return true, nil // an event without its head: not a case
			}
			ev, err := decodeEvent(v)
			if err != nil {
				return false, fmt.Errorf("decode %q: %w", k, err)
			}
			cur.Events = append(cur.Events, ev)
			return true, nil
		}
		more, err := flush()
		if err != nil || !more {
			stop = true
			return false, err
		}
		var h caseHead
		if err := json.Unmarshal(v, &h); err != nil {
			return false, fmt.Errorf("decode %s: %w", k, err)
		}
		c := h.Case
		cur = &c
		return true, nil
	})
	if err != nil || stop {
		return err
	}
	_, err = flush()
	return err
}

// mergeEvents adds events of case h not stored yet (the center merging a
// station's records): by id and timestamp, so a repeat adds nothing. The
// head is folded one event at a time when they all come after the case's
// last one, else from all stored events again. It returns the events it
// stored, as stored, by id (nil if none).
func mergeEvents(st State, h *caseHead, evs []Event) (put map[string][]byte, err error) {
	var (
		fresh []Event
		ids   = h.storedIDs // ids of the stored events: known, or read at the first miss
	)
	for _, ev := range evs {
		if hasEvent(Case{Events: h.Events}, ev.ID) || hasEvent(Case{Events: fresh}, ev.ID) {
			continue
		}
		if ids != nil && !h.legacy {
			if !ids[ev.ID] {
				fresh = append(fresh, ev)
			}
			continue
		}
		b, err := st.Get(eventKey(h.ID, ev))
		if err != nil {
			return nil, fmt.Errorf("read event %s: %w", ev.ID, err)
		}
		if b != nil {
			continue // the same event again: the common repeat
		}
		// The same id may be stored under another timestamp (a station
		// rebuilt from its PCs' outboxes applies them anew): events are
		// one per id.
		if ids == nil {
			if ids, err = storedEventIDs(st, h.ID); err != nil {
				return nil, err
			}
		}
		if !ids[ev.ID] {
			fresh = append(fresh, ev)
		}
	}
	h.storedIDs = ids
	if len(fresh) == 0 {
		return nil, nil
	}
	sortEvents(fresh)
	inOrder := fresh[0].HLC > h.Last && !h.legacy
	put = make(map[string][]byte, len(fresh))
	for _, ev := range fresh {
		b, err := putEvent(st, h, ev)
		if err != nil {
			return nil, err
		}
		put[ev.ID] = b
	}
	if inOrder {
		for _, ev := range fresh {
			h.step(ev)
		}
		return put, nil
	}
	all, err := appendStoredEvents(st, h.ID, append([]Event(nil), h.Events...))
	if err != nil {
		return nil, err
	}
	h.refold(all)
	return put, nil
}

// storedEventIDs returns the ids of case id's stored events (from their
// keys: <prefix><23-character hlc><event id>).
func storedEventIDs(st State, id string) (map[string]bool, error) {
	p := eventsPrefix(id)
	ids := map[string]bool{}
	err := st.Scan(p, "", func(k string, _ []byte) (bool, error) {
		if rest := k[len(p):]; len(rest) > hlcWidth {
			ids[rest[hlcWidth:]] = true
		}
		return true, nil
	})
	return ids, err
}

// hlcWidth is the length of an HLC as written (MakeHLC).
const hlcWidth = 23

// appendStoredEvents appends the events stored under case id's keys to evs.
func appendStoredEvents(r interface {
	Scan(string, string, func(string, []byte) (bool, error)) error
}, id string, evs []Event) ([]Event, error) {
	err := r.Scan(eventsPrefix(id), "", func(k string, v []byte) (bool, error) {
		ev, err := decodeEvent(v)
		if err != nil {
			return false, fmt.Errorf("decode %q: %w", k, err)
		}
		evs = append(evs, ev)
		return true, nil
	})
	return evs, err
}
