package records

import (
	"encoding/json"
	"fmt"
	"time"
)

// Op kinds: the commands a station replicates.
const (
	OpPutItem    = "put_item"
	OpCreateCase = "create_case"
)

// Op is one replicated command. It is fully prepared by the node that
// received it (ids and timestamps assigned), so applying it is
// deterministic on every node.
type Op struct {
	Kind string `json:"kind"`
	Item *Item  `json:"item,omitempty"`
	Case *Case  `json:"case,omitempty"`
}

// Change is what an applied op adds to the station's change feed.
type Change struct {
	Kind string          `json:"kind"` // item | case | event
	Key  string          `json:"key"`
	Data json.RawMessage `json:"data"`
}

// State is the read-write view of the store an op is applied to. Get
// returns nil, nil for a missing key.
type State interface {
	Get(key string) ([]byte, error)
	Set(key string, value []byte) error
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
	prefixItem  = "item/"
	prefixCase  = "case/"
	prefixEvent = "event/"
)

// Apply applies one op to st. It returns the resulting record (for the
// client's answer) and the feed change, or nil change when the op was a
// repeat of something already applied (idempotent retries). A domain error
// leaves st untouched: every check happens before the first write.
func Apply(st State, op Op) (any, *Change, error) {
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
	default:
		return nil, nil, Invalid("kind", "unknown op %q", op.Kind)
	}
}

func putItem(st State, it Item) (any, *Change, error) {
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
			it.Version = old.Version + 1
		}
	}
	data, err := setJSON(st, prefixItem+it.Code, it)
	if err != nil {
		return nil, nil, err
	}
	return it, &Change{Kind: "item", Key: it.Code, Data: data}, nil
}

func createCase(st State, c Case) (any, *Change, error) {
	if c.ID == "" {
		return nil, nil, Invalid("id", "is required once the node prepared the case")
	}
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	if len(c.Events) != 1 || c.Events[0].Type != EventReceived {
		return nil, nil, Invalid("events", "a new case carries exactly its %q event", EventReceived)
	}
	var old *Case
	if err := getJSON(st, prefixCase+c.ID, &old); err != nil {
		return nil, nil, err
	}
	if old != nil {
		// The same client id again: a retry, answered with what is stored.
		return *old, nil, nil
	}
	var item *Item
	if err := getJSON(st, prefixItem+c.ItemCode, &item); err != nil {
		return nil, nil, err
	}
	if item == nil {
		return nil, nil, Invalid("item_code", "%q is not on this station's item list", c.ItemCode)
	}
	ev := c.Events[0]
	ev.CaseID = c.ID
	c.Events = []Event{ev}
	c.State = StateReceived
	data, err := setJSON(st, prefixCase+c.ID, c)
	if err != nil {
		return nil, nil, err
	}
	if err := st.Set(prefixEvent+ev.ID, []byte(c.ID)); err != nil {
		return nil, nil, fmt.Errorf("index event %s: %w", ev.ID, err)
	}
	return c, &Change{Kind: "case", Key: c.ID, Data: data}, nil
}

// PrepareCase assigns what the receiving node decides for a new case: an
// id when the client gave none, the station, the time and the first event.
func PrepareCase(c *Case, station, node string, now time.Time) {
	if c.ID == "" {
		c.ID = NewID(now)
	}
	c.Station = station
	c.CreatedAt = now.UTC()
	c.State = StateReceived
	c.Events = []Event{{ID: c.ID + ".received", CaseID: c.ID, Type: EventReceived, Actor: c.Actor, At: c.CreatedAt, Node: node}}
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
