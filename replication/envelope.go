package replication

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/stationsync/stationsync/records"
)

// Command envelope versions. History:
//
//	1 (2026-11): {"v":1,"ops":[...]} or {"v":1,"init":{"cluster_id":...}}
const (
	envelopeMinVersion = 1
	envelopeMaxVersion = 1
)

// ErrUnknownVersion is returned for a command or message whose format
// version this binary does not understand (a newer node in a mixed
// cluster). It is never ignored silently: the FSM stops on it.
var ErrUnknownVersion = errors.New("unknown format version")

// envelope is one raft log entry: a batch of ops (group commit) or the
// cluster's init command.
type envelope struct {
	V    int          `json:"v"`
	Init *initCommand `json:"init,omitempty"`
	Ops  []records.Op `json:"ops,omitempty"`
}

// initCommand names a new cluster. It is applied once, by the first leader.
type initCommand struct {
	ClusterID string `json:"cluster_id"`
}

func encodeEnvelope(e envelope) ([]byte, error) {
	e.V = envelopeMaxVersion
	return json.Marshal(e)
}

// encodeOpsEnvelope is encodeEnvelope for ops already encoded as a JSON
// array (by the node that took the write), so a batch is not encoded
// again.
func encodeOpsEnvelope(init *initCommand, ops []byte) ([]byte, error) {
	out := make([]byte, 0, len(ops)+96)
	out = fmt.Appendf(out, `{"v":%d,`, envelopeMaxVersion)
	if init != nil {
		b, err := json.Marshal(init)
		if err != nil {
			return nil, err
		}
		out = append(append(append(out, `"init":`...), b...), ',')
	}
	out = append(append(out, `"ops":`...), ops...)
	return append(out, '}'), nil
}

// opsEnvelopeV1 starts a version 1 entry of ops without init, as
// encodeOpsEnvelope writes it.
const opsEnvelopeV1 = `{"v":1,"ops":`

func decodeEnvelope(b []byte) (envelope, error) {
	// Most entries: ops records.ParseOpsJSON reads without reflection
	// (what it returns is what json.Unmarshal would).
	if envelopeMinVersion <= 1 && len(b) > len(opsEnvelopeV1) && string(b[:len(opsEnvelopeV1)]) == opsEnvelopeV1 && b[len(b)-1] == '}' {
		if ops, ok := records.ParseOpsJSON(b[len(opsEnvelopeV1) : len(b)-1]); ok {
			return envelope{V: 1, Ops: ops}, nil
		}
	}
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("decode command: %w", err)
	}
	if e.V < envelopeMinVersion || e.V > envelopeMaxVersion {
		return e, fmt.Errorf("command version %d (this node understands %d..%d): %w", e.V, envelopeMinVersion, envelopeMaxVersion, ErrUnknownVersion)
	}
	return e, nil
}

// Result is the outcome of one op, in the order the ops were submitted.
type Result struct {
	// Status is "applied", "repeat" (an id seen before: nothing changed)
	// or "error".
	Status string          `json:"status"`
	Error  *records.Error  `json:"error,omitempty"`
	Value  json.RawMessage `json:"value,omitempty"`
	// Index is the raft index the op was committed at.
	Index uint64 `json:"index"`

	value any // what Value encodes: encoded only where a caller waits (encodeValues)
}

// encodeValues encodes the results' values. The FSM leaves them unencoded:
// every node applies every op, but only the leader answers.
func encodeValues(results []Result) error {
	for i := range results {
		if results[i].value == nil || results[i].Value != nil {
			continue
		}
		b, err := json.Marshal(results[i].value)
		if err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
		results[i].Value, results[i].value = b, nil
	}
	return nil
}
