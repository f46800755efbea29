package replication

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication/logstore"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzReadFrame feeds arbitrary bytes to readFrame, the framing that
// follows the kind byte of rpc and feed streams (4-byte big-endian
// length, JSON body): never a panic; a length above maxRPCFrame is
// refused before the body is read; a frame is never read past its end;
// a decoded request written again reads back the same.
func FuzzReadFrame(f *testing.F) {
	frame := func(body string) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	for _, seed := range [][]byte{
		frame(`{"v":1,"method":"info"}`),
		frame(`{"v":1,"method":"apply","ops":[{"kind":"put_item","item":{"code":"X","name":"n","type":{"code":"20"},"origin":"local"}}]}`),
		frame(`{"v":1,"method":"join","address":"10.0.0.2:4610"}`),
		frame(`{"v":1,"method":"remove","node":"pc-2","force":true}`),
		append(frame(`{"v":1,"method":"info"}`), "trailing"...),
		frame(`{"v":2,"method":"info"}`),
		frame(`{"v":"1"}`),
		frame(`{`),
		frame(``),
		frame(`null`),
		binary.BigEndian.AppendUint32(nil, maxRPCFrame+1),
		binary.BigEndian.AppendUint32(nil, 0xffffffff),
		append(binary.BigEndian.AppendUint32(nil, 100), `{"v":1}`...), // truncated
		{0, 0},
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: bytes.NewReader(data)}
		var req rpcRequest
		err := readFrame(cr, &req)
		if len(data) >= 4 {
			n := binary.BigEndian.Uint32(data)
			if n > maxRPCFrame {
				if err == nil || !strings.Contains(err.Error(), "exceeds") || cr.n != 4 {
					t.Fatalf("oversized frame (%d bytes): err %v after reading %d bytes", n, err, cr.n)
				}
				return
			}
			if cr.n > 4+int(n) {
				t.Fatalf("read %d bytes of a %d-byte frame", cr.n, 4+n)
			}
			if uint64(len(data)) < 4+uint64(n) && err == nil {
				t.Fatalf("truncated frame (%d of %d bytes) accepted", len(data), 4+n)
			}
		} else if err == nil {
			t.Fatalf("%d bytes accepted as a frame", len(data))
		}
		if err != nil {
			return
		}
		if !json.Valid(data[4:cr.n]) {
			t.Fatalf("invalid JSON %q accepted", data[4:cr.n])
		}
		var buf bytes.Buffer
		if err := writeFrame(&buf, req); err != nil {
			t.Fatalf("write back %+v: %v", req, err)
		}
		var again rpcRequest
		if err := readFrame(&buf, &again); err != nil || buf.Len() != 0 {
			t.Fatalf("read back: %v (%d bytes left)", err, buf.Len())
		}
		a, _ := json.Marshal(req)
		b, _ := json.Marshal(again)
		if !bytes.Equal(a, b) {
			t.Fatalf("frame round trip:\n %s\n %s", a, b)
		}
	})
}

// FuzzForwardedOps feeds arbitrary request bodies to what a leader does
// with a forwarded apply (handleRPC): decode the request, decode its ops,
// bound their size, then build the raft entry from the raw ops as
// received, alone or batched with others (joinOps). Never a panic; ops
// that do not decode are refused with an error; and ops the leader
// accepts are exactly what the FSM decodes from the entry: a forwarded
// batch the leader takes can never become an entry every node fails to
// apply.
func FuzzForwardedOps(f *testing.F) {
	ev := records.Event{ID: "e1", CaseID: "c-1", Type: "accepted", Actor: "x", Data: json.RawMessage(`{"n":1}`)}
	valid, _ := json.Marshal(rpcRequest{V: 1, Method: rpcApply, Ops: mustJSON([]records.Op{
		{Kind: records.OpAppendEvent, Event: &ev},
		{Kind: records.OpPutItem, Item: &records.Item{Code: "I", Name: "n", Type: records.ItemType{Code: "20"}, Origin: records.OriginLocal}},
		{Kind: records.OpCenterCursor, Seq: 3},
	})})
	for _, seed := range []string{
		string(valid),
		`{"v":1,"method":"apply","ops":[{"kind":"create_case","case":{"id":"c-1","item_code":"X"}}]}`,
		`{"v":1,"method":"apply","ops":[ {"kind":"x"} , {} ]}`,
		`{"v":1,"method":"apply","ops":[]}`,
		`{"v":1,"method":"apply","ops":null}`,
		`{"v":1,"method":"apply"}`,
		`{"v":1,"method":"apply","ops":{"kind":"put_item"}}`,
		`{"v":1,"method":"apply","ops":"[]"}`,
		`{"v":1,"method":"apply","ops":[{"kind":1}]}`,
		`{"v":1,"method":"apply","ops":[{"kind":"append_event","event":{"data":{"a":[1,2,{"b":"\u2028"}]}}}]}`,
		`{"v":1,"method":"apply","ops":[{"KIND":"evaluate","Kind":"put_item"}]}`,
		`{"v":1,"method":"info"}`,
		`{"v":2,"method":"apply","ops":[{}]}`,
		`[]`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	f.Fuzz(func(t *testing.T, body []byte) {
		var req rpcRequest
		if err := json.Unmarshal(body, &req); err != nil || req.Method != rpcApply {
			return // readFrame's refusal, or another method
		}
		var ops []records.Op
		if err := json.Unmarshal(req.Ops, &ops); err != nil {
			if err.Error() == "" {
				t.Fatal("ops refused with an empty error")
			}
			return // answered "refused", "decode ops: ..."
		}
		// The size bound of a forwarded batch (enqueue checks it before
		// anything else; the cancelled context ends it there).
		_, err := (&Node{}).enqueue(cancelled, &request{ops: ops, raw: req.Ops, local: true}, maxBatchBytes)
		switch {
		case len(ops) == 0:
			if err != nil {
				t.Fatalf("empty ops: %v", err)
			}
			return
		case len(req.Ops) > maxBatchBytes:
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%d bytes of ops: %v, want ErrTooLarge", len(req.Ops), err)
			}
			return
		case !errors.Is(err, context.Canceled):
			t.Fatalf("ops of %d bytes refused: %v", len(req.Ops), err)
		}
		for _, raws := range [][][]byte{{req.Ops}, {req.Ops, req.Ops}} {
			for _, init := range []*initCommand{nil, {ClusterID: "c"}} {
				data, err := encodeOpsEnvelope(init, joinOps(raws))
				if err != nil {
					t.Fatalf("encode entry: %v", err)
				}
				env, err := decodeEnvelope(data)
				if err != nil {
					t.Fatalf("the leader accepted ops %s that make an entry the FSM refuses: %v\nentry %s", req.Ops, err, data)
				}
				var want []records.Op
				for range raws {
					want = append(want, ops...)
				}
				if !reflect.DeepEqual(env.Ops, want) || !reflect.DeepEqual(env.Init, init) {
					t.Fatalf("entry %s decodes to %+v, the leader validated %+v", data, env.Ops, want)
				}
			}
		}
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// fuzzFSM is an FSM on an in-memory badger store with an item and a
// case, for fuzzing entries against a realistic state.
type fuzzFSM struct {
	t  testing.TB
	db *badger.DB
	f  *fsm
}

func newFuzzFSM(tb testing.TB) *fuzzFSM {
	logger := slog.New(slog.DiscardHandler)
	db, err := badger.Open(logstore.Options("", false, logger).WithInMemory(true).WithDetectConflicts(false))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	f, err := newFSM(db, logger, 0)
	if err != nil {
		tb.Fatal(err)
	}
	z := &fuzzFSM{t: tb, db: db, f: f}
	z.reset()
	return z
}

// reset empties the store and applies the setup entry: the cluster id,
// an item and case c-seed.
func (z *fuzzFSM) reset() {
	z.f.drain() // the store changes behind the state machine's back
	if err := z.db.DropAll(); err != nil {
		z.t.Fatal(err)
	}
	if err := z.f.loadMeta(); err != nil {
		z.t.Fatal(err)
	}
	it := records.Item{Code: "XC-L-0001", Name: "企业开办", Type: records.ItemType{Code: "20"}, Origin: records.OriginLocal}
	data, err := encodeEnvelope(envelope{Init: &initCommand{ClusterID: "fuzz"}, Ops: []records.Op{{Kind: records.OpPutItem, Item: &it}, newCase("c-seed")}})
	if err != nil {
		z.t.Fatal(err)
	}
	out := z.f.ApplyBatch([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: data}})
	for _, r := range out[0].([]Result) {
		if r.Status != "applied" {
			z.t.Fatalf("setup: %+v", r)
		}
	}
}

// state hashes the whole store: domain keys apart from the meta keys
// (applied index, feed seq, cluster id) and the feed.
func (z *fuzzFSM) state() (domain, meta [32]byte, keys int) {
	hd, hm := sha256.New(), sha256.New()
	err := z.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys++
			k := it.Item().Key()
			h := hd
			if bytes.HasPrefix(k, []byte("~")) {
				h = hm
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(k))))
			h.Write(k)
			h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(v))))
			h.Write(v)
		}
		return nil
	})
	if err != nil {
		z.t.Fatal(err)
	}
	copy(domain[:], hd.Sum(nil))
	copy(meta[:], hm.Sum(nil))
	return domain, meta, keys
}

// FuzzFSMEntry feeds arbitrary raft entry data to the FSM's decoder
// (decodeEnvelope) and applies it to a real (in-memory) state store.
// Properties: never a panic; an entry that does not decode is an error
// and leaves the store, the applied index and the feed exactly as they
// were (ApplyBatch would stop the node; the retry after a restart finds
// nothing half-written); an entry that decodes round trips through
// encodeEnvelope, and applies without an error that would stop the node
// (a domain error is a result, not a failure); an entry whose ops all
// fail leaves the domain state untouched.
func FuzzFSMEntry(f *testing.F) {
	ev := records.Event{ID: "ev-1", Type: records.EventAccepted, Actor: "clerk"}
	records.PrepareEvent(&ev, "c-seed", "pc-1", records.NewClock(nil).Now())
	eval := records.Evaluation{ID: "eval-1", Level: "不满意", Channel: 4, Attempt: 1, Text: "等候时间太长"}
	records.PrepareEvaluation(&eval, "c-seed", "pc-1", records.NewClock(nil).Now(), 10)
	add := func(e envelope) {
		b, err := encodeEnvelope(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	add(envelope{Ops: []records.Op{{Kind: records.OpAppendEvent, Event: &ev}}})
	add(envelope{Ops: []records.Op{{Kind: records.OpEvaluate, Evaluation: &eval}}})
	add(envelope{Ops: []records.Op{newCase("c-2"), {Kind: records.OpCenterCursor, Seq: 9}}})
	add(envelope{Init: &initCommand{ClusterID: "other"}})
	add(envelope{Ops: []records.Op{{Kind: "no_such_op"}, {Kind: records.OpPutItem}}})
	for _, seed := range []string{
		`{"v":1,"ops":[{"kind":"consolidate","pull":{"station":"XC-IP-01","cluster_id":"k","from":0,"changes":[{"seq":1,"kind":"case","key":"c","data":{"id":"c"}}],"head":1}}]}`,
		`{"v":1,"ops":[{"kind":"consolidate","pull":{"station":"XC-IP-01","cluster_id":"k","from":0,"changes":[{"seq":1,"kind":"bogus","key":"c","data":{}}],"head":1}}]}`,
		`{"v":1,"ops":[{"kind":"consolidate","pull":{"station":"XC-IP-02","cluster_id":"k","from":0,"changes":[{"seq":1,"kind":"event","key":"c-x","data":{"id":"e"}}],"head":1}}]}`,
		`{"v":1,"ops":[{"kind":"put_item","item":{"code":"XC-L-0002","name":"n","type":{"code":"20"},"origin":"local"}}]}`,
		`{"v":1,"ops":[{"kind":"resolve_conflict","conflict_id":"x","resolution":{"actor":"a","note":"n"}}]}`,
		`{"v":1,"ops":[{"kind":"workorder_event","workorder_id":"w","workorder_event":{"type":"closed","actor":"a"}}]}`,
		`{"v":1,"ops":[{"kind":"append_event","offline":true,"event":{"id":"o1","case_id":"c-seed","type":"completed","actor":"a"}}]}`,
		`{"v":2,"ops":[]}`,
		`{"v":0}`,
		`{"ops":[{"kind":"put_item"}]}`,
		`{"v":1,"ops":{}}`,
		`{"v":1,"init":"x"}`,
		`{"v":1`,
		`null`, `[]`, ``,
	} {
		f.Add([]byte(seed))
	}
	z := newFuzzFSM(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		z.t = t
		domain, meta, keys := z.state()
		if keys > 5000 {
			z.reset()
			domain, meta, _ = z.state()
		}
		applied, seq := z.f.applied.Load(), z.f.seq.Load()
		l := &raft.Log{Index: applied + 1, Term: 1, Type: raft.LogCommand, Data: data}
		env, decErr := decodeEnvelope(data)
		out, _, err := z.f.applyBatchTxn([]*raft.Log{l}, 0, nil)
		if decErr != nil {
			if err == nil {
				t.Fatalf("entry %q does not decode (%v) but was applied", data, decErr)
			}
			if d, m, _ := z.state(); d != domain || m != meta || z.f.applied.Load() != applied || z.f.seq.Load() != seq {
				t.Fatalf("entry %q that does not decode changed the store", data)
			}
			return
		}
		if env.V != envelopeMaxVersion {
			t.Fatalf("decoded version %d", env.V)
		}
		b, err2 := encodeEnvelope(env)
		if err2 != nil {
			t.Fatalf("encode decoded entry: %v", err2)
		}
		back, err2 := decodeEnvelope(b)
		if err2 != nil || len(back.Ops) != len(env.Ops) || !reflect.DeepEqual(back.Init, env.Init) {
			t.Fatalf("envelope round trip: %v\n %+v\n %+v", err2, env, back)
		}
		if b2, _ := encodeEnvelope(back); !bytes.Equal(b, b2) {
			t.Fatalf("envelope round trip:\n %s\n %s", b, b2)
		}
		if err != nil {
			if d, m, _ := z.state(); d != domain || m != meta {
				t.Fatalf("failed entry %q changed the store", data)
			}
			t.Fatalf("entry %q decodes but cannot be applied (the node would stop, and again after every restart): %v", data, err)
		}
		if z.f.applied.Load() != l.Index {
			t.Fatalf("applied %d after entry %d", z.f.applied.Load(), l.Index)
		}
		results := out[0].([]Result)
		if len(results) != len(env.Ops) {
			t.Fatalf("%d results for %d ops", len(results), len(env.Ops))
		}
		allFailed := true
		for _, r := range results {
			switch r.Status {
			case "error":
				if r.Error == nil || r.Error.Message == "" {
					t.Fatalf("error result without a message: %+v", r)
				}
			case "applied", "repeat":
				allFailed = false
			default:
				t.Fatalf("result status %q", r.Status)
			}
		}
		if allFailed {
			if d, _, _ := z.state(); d != domain || z.f.seq.Load() != seq {
				t.Fatalf("entry %q whose ops all failed changed the domain state or the feed: %+v", data, results)
			}
		}
	})
}
