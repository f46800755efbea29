package replication

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/records"
)

// The entries of a batch come out of decodeAhead in order, each as
// decodeEnvelope gives it; entries applied before and other kinds are
// not decoded; stopping in the middle returns.
func TestDecodeAheadGivesEachEntryInOrder(t *testing.T) {
	var logs []*raft.Log
	for i := range 40 {
		l := &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand}
		switch {
		case i == 7:
			l.Type = raft.LogConfiguration
			l.Data = []byte("not an envelope")
		case i == 20:
			l.Data = []byte(`{"v":1,"ops":[`) // cut short
		default:
			it := records.Item{Code: fmt.Sprintf("I%d", i), Name: "事项", Type: records.ItemType{Code: "20"}, Origin: records.OriginLocal}
			b, err := encodeEnvelope(envelope{Ops: []records.Op{{Kind: records.OpPutItem, Item: &it}}})
			if err != nil {
				t.Fatal(err)
			}
			l.Data = b
		}
		logs = append(logs, l)
	}
	for _, applied := range []uint64{0, 5} {
		d := decodeAhead(logs, applied)
		for i, l := range logs {
			if l.Index <= applied || l.Type != raft.LogCommand {
				continue
			}
			env, err := d.get(i)
			want, werr := decodeEnvelope(l.Data)
			if (err == nil) != (werr == nil) {
				t.Fatalf("entry %d: error %v, want %v", l.Index, err, werr)
			}
			if err == nil && (len(env.Ops) != 1 || env.Ops[0].Item.Code != want.Ops[0].Item.Code) {
				t.Fatalf("entry %d: got %+v, want %+v", l.Index, env, want)
			}
		}
		d.stop()
	}
	d := decodeAhead(logs, 0)
	if _, err := d.get(3); err != nil {
		t.Fatal(err)
	}
	d.stop() // a batch that failed half-way
	one := decodeAhead(logs[:1], 0)
	if env, err := one.get(0); err != nil || len(env.Ops) != 1 {
		t.Fatalf("a batch of one: %+v %v", env, err)
	}
	one.stop()
}
