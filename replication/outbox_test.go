package replication

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stationsync/stationsync/records"
)

func fastOutbox(cfg *Config) { cfg.OutboxAfter = 500 * time.Millisecond }

// record writes op through Record and fails the test on an error.
func record(t *testing.T, n *Node, op records.Op) (Result, bool) {
	t.Helper()
	res, pending, err := n.Record(ctx(t), op)
	if err != nil {
		t.Fatalf("record %s: %v", op.Kind, err)
	}
	if res.Error != nil {
		t.Fatalf("record %s: %v", op.Kind, res.Error)
	}
	return res, pending
}

func eventOp(caseID, id, typ string) records.Op {
	ev := records.Event{ID: id, Type: typ, Actor: "clerk-07"}
	records.PrepareEvent(&ev, caseID, "test", records.NewClock(nil).Now())
	return records.Op{Kind: records.OpAppendEvent, Event: &ev}
}

// caseJSON is the case as node n holds it ("" if it has none).
func caseJSON(t *testing.T, n *Node, id string) string {
	t.Helper()
	var out string
	err := n.View(func(r records.Reader) error {
		c, err := records.GetCase(r, id)
		if err != nil {
			return err
		}
		b, err := json.Marshal(c)
		out = string(b)
		return err
	})
	if de, ok := records.AsError(err); ok && de.Code == records.CodeNotFound {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// converged waits until every running node has an empty outbox and holds
// the cases ids identically, and returns the cases as the first node
// holds them.
func converged(t *testing.T, c *testCluster, ids ...string) map[string]records.Case {
	t.Helper()
	eventually(t, "every node holds the same cases and no write is pending", func() bool {
		for _, id := range ids {
			want := ""
			for _, tn := range c.nodes {
				if tn.n == nil {
					continue
				}
				if tn.n.Status().Outbox.Pending > 0 {
					return false
				}
				got := caseJSON(t, tn.n, id)
				if got == "" || (want != "" && got != want) {
					return false
				}
				want = got
			}
		}
		return true
	})
	out := map[string]records.Case{}
	for _, id := range ids {
		var cs records.Case
		if err := json.Unmarshal([]byte(caseJSON(t, c.nodes[0].n, id)), &cs); err != nil {
			t.Fatal(err)
		}
		out[id] = cs
	}
	return out
}

// stationWithCases starts three nodes with a short outbox bound, an item
// and committed cases ids on every node; it returns the leader's index.
func stationWithCases(t *testing.T, ids ...string) (*testCluster, int) {
	t.Helper()
	c := newTestCluster(t, 3, fastOutbox)
	leader := c.waitLeader()
	putItem(t, c.nodes[leader].n, "XC-L-0001")
	for _, id := range ids {
		if err := createCase(c.nodes[leader].n, ctx(t), id); err != nil {
			t.Fatal(err)
		}
	}
	if len(ids) > 0 {
		converged(t, c, ids...)
	}
	return c, leader
}

// requireAccepted checks that cs is accepted with event id there once.
func requireAccepted(t *testing.T, cs records.Case, id string) {
	t.Helper()
	if cs.State != records.EventAccepted || countEvent(cs, id) != 1 {
		t.Fatalf("%s after healing: state %s, %s %d times", cs.ID, cs.State, id, countEvent(cs, id))
	}
}

// requireCaseCount checks every node holds n cases.
func requireCaseCount(t *testing.T, c *testCluster, n int) {
	t.Helper()
	for _, tn := range c.nodes {
		if got := caseCount(t, tn.n); got != n {
			t.Fatalf("%s holds %d cases, want %d", tn.id, got, n)
		}
	}
}

func countEvent(cs records.Case, id string) int {
	n := 0
	for _, ev := range cs.Events {
		if ev.ID == id {
			n++
		}
	}
	return n
}

// A node cut off from the others accepts case writes into its outbox
// within the bound; the majority keeps committing; after healing every
// write is on every node exactly once, in the same state.
func TestIsolatedFollowerQueuesAndDelivers(t *testing.T) {
	c, leader := stationWithCases(t, "c-1")
	f := c.follower(leader)
	lone := c.nodes[f].n
	c.partition([]int{f})

	start := time.Now()
	if _, pending := record(t, lone, newCase("off-1")); !pending {
		t.Fatal("a cut-off node committed a new case")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the cut-off node answered after %v, want within 3 s", took)
	}
	if _, pending := record(t, lone, eventOp("c-1", "ev-acc", records.EventAccepted)); !pending {
		t.Fatal("a cut-off node committed an event")
	}
	if _, pending := record(t, lone, eventOp("off-1", "ev-off-acc", records.EventAccepted)); !pending {
		t.Fatal("a cut-off node committed an event")
	}
	if st := lone.Status(); st.Outbox.Pending != 3 || st.Outbox.Oldest.IsZero() {
		t.Fatalf("outbox status = %+v, want 3 pending with an oldest time", st.Outbox)
	}
	if p, err := lone.PendingWrites("off-1"); err != nil || len(p) != 2 {
		t.Fatalf("pending writes for off-1 = %d (%v), want 2", len(p), err)
	}
	// Item edits need the leader.
	it := records.Item{Code: "XC-L-0002", Name: "x", Type: records.ItemType{Code: "20", Name: "公共服务"}, Origin: records.OriginLocal}
	if _, _, err := lone.Record(ctx(t), records.Op{Kind: records.OpPutItem, Item: &it}); err == nil {
		t.Fatal("an item edit was queued")
	}
	// The majority keeps committing.
	for i := range 5 {
		if err := createCase(c.nodes[leader].n, ctx(t), fmt.Sprintf("on-%d", i)); err != nil {
			t.Fatalf("majority write during the partition: %v", err)
		}
	}
	c.heal()
	cases := converged(t, c, "c-1", "off-1", "on-0", "on-4")
	requireAccepted(t, cases["c-1"], "ev-acc")
	requireAccepted(t, cases["off-1"], "ev-off-acc")
	requireCaseCount(t, c, 7)
}

// The leader itself cut off: its side queues, the majority elects a new
// leader and keeps committing; after healing nothing is lost or doubled.
func TestIsolatedLeaderQueuesAndDelivers(t *testing.T) {
	c, leader := stationWithCases(t, "c-1")
	old := c.nodes[leader]
	c.partition([]int{leader})

	if _, pending := record(t, old.n, newCase("off-1")); !pending {
		t.Fatal("the cut-off leader committed a new case")
	}
	if _, pending := record(t, old.n, eventOp("c-1", "ev-acc", records.EventAccepted)); !pending {
		t.Fatal("the cut-off leader committed an event")
	}
	other := c.follower(leader)
	eventually(t, "the majority elects a new leader", func() bool {
		l := c.nodes[other].n.Status().Leader
		return l != "" && l != old.id
	})
	for i := range 3 {
		if err := createCase(c.nodes[other].n, ctx(t), fmt.Sprintf("on-%d", i)); err != nil {
			t.Fatalf("majority write during the partition: %v", err)
		}
	}
	c.heal()
	cases := converged(t, c, "c-1", "off-1", "on-0", "on-2")
	requireAccepted(t, cases["c-1"], "ev-acc")
	requireCaseCount(t, c, 5)
}

// A client retries the same event id on two nodes on both sides of a
// partition: one event results. An offline event the merged history no
// longer allows is kept, marked conflict, and listed; a parked offline
// write (an evaluation given twice) too.
func TestRetriesAndConflictsAcrossAPartition(t *testing.T) {
	c, leader := stationWithCases(t, "c-1", "c-2", "c-3")
	f := c.follower(leader)
	lone, major := c.nodes[f].n, c.nodes[leader].n
	c.partition([]int{f})

	// The same event, sent to both sides.
	same := eventOp("c-1", "ev-same", records.EventAccepted)
	if _, pending := record(t, lone, same); !pending {
		t.Fatal("cut-off node committed")
	}
	if _, pending := record(t, major, same); pending {
		t.Fatal("the majority queued")
	}
	// c-2: withdrawn offline while the majority rejects it.
	if _, pending := record(t, lone, eventOp("c-2", "ev-withdrawn", records.EventWithdrawn)); !pending {
		t.Fatal("cut-off node committed")
	}
	if _, pending := record(t, major, eventOp("c-2", "ev-rejected", records.EventRejected)); pending {
		t.Fatal("the majority queued")
	}
	// c-3: the first evaluation given on both sides (different ids).
	eval := func(id string) records.Op {
		e := records.Evaluation{ID: id, Level: "满意", Channel: 1, Attempt: 1}
		records.PrepareEvaluation(&e, "c-3", "test", records.NewClock(nil).Now(), 15)
		return records.Op{Kind: records.OpEvaluate, Evaluation: &e}
	}
	if _, pending := record(t, lone, eval("eval-off")); !pending {
		t.Fatal("cut-off node committed")
	}
	if _, pending := record(t, major, eval("eval-on")); pending {
		t.Fatal("the majority queued")
	}
	c.heal()
	cases := converged(t, c, "c-1", "c-2", "c-3")
	if n := countEvent(cases["c-1"], "ev-same"); n != 1 {
		t.Fatalf("the event sent to both sides is there %d times", n)
	}
	c2 := cases["c-2"]
	if c2.State != records.EventRejected {
		t.Fatalf("c-2 is %s, want rejected (committed first)", c2.State)
	}
	var kept bool
	for _, ev := range c2.Events {
		if ev.ID == "ev-withdrawn" {
			kept = ev.Conflict
		}
	}
	if !kept {
		t.Fatalf("the offline withdrawal is not kept as a conflict: %+v", c2.Events)
	}
	if n := len(cases["c-3"].Evaluations); n != 1 {
		t.Fatalf("c-3 has %d evaluations, want 1", n)
	}
	eventually(t, "both conflicts listed on every node", func() bool {
		for _, tn := range c.nodes {
			var list []records.ConflictRecord
			if err := tn.n.View(func(r records.Reader) (err error) { list, err = records.ListConflicts(r, false); return err }); err != nil {
				t.Fatal(err)
			}
			if len(list) != 2 || list[0].ID != "ev-withdrawn" || list[0].Kept != records.KeptInHistory ||
				list[1].ID != "eval-off" || list[1].Kept != records.KeptParked {
				return false
			}
		}
		return true
	})
}

// Writes queued before the node stopped are delivered after it starts.
func TestOutboxSurvivesRestart(t *testing.T) {
	c, leader := stationWithCases(t)
	f := c.follower(leader)
	c.partition([]int{f})
	for i := range 3 {
		if _, pending := record(t, c.nodes[f].n, newCase(fmt.Sprintf("off-%d", i))); !pending {
			t.Fatal("cut-off node committed")
		}
	}
	c.stop(f)
	c.heal()
	c.start(f)
	if n := c.nodes[f].n.Status().Outbox.Pending; n != 3 {
		t.Fatalf("after restart the outbox holds %d writes, want 3", n)
	}
	converged(t, c, "off-0", "off-1", "off-2")
}

// Draining a large outbox: every write arrives once. The count is 10,000
// (STATIONSYNC_OUTBOX_N overrides it); the time is logged.
func TestLargeOutboxDrains(t *testing.T) {
	total := 10000
	if s := getenvInt("STATIONSYNC_OUTBOX_N"); s > 0 {
		total = s
	}
	c, leader := stationWithCases(t)
	f := c.follower(leader)
	lone := c.nodes[f].n
	c.partition([]int{f})
	if _, pending := record(t, lone, newCase("off-0")); !pending {
		t.Fatal("cut-off node committed")
	}
	start := time.Now()
	for i := 1; i < total; i++ {
		if _, pending := record(t, lone, newCase(fmt.Sprintf("off-%d", i))); !pending {
			t.Fatal("cut-off node committed")
		}
	}
	t.Logf("queued %d writes in %v", total, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	c.heal()
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for lone.Status().Outbox.Pending > 0 {
		select {
		case <-dctx.Done():
			t.Fatalf("%d writes still pending after 5 minutes", lone.Status().Outbox.Pending)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Logf("drained %d writes in %v", total, time.Since(start).Round(time.Millisecond))
	eventually(t, "every node holds every case once", func() bool {
		for _, tn := range c.nodes {
			if caseCount(t, tn.n) != total {
				return false
			}
		}
		return true
	})
}

func getenvInt(key string) int {
	n, _ := strconv.Atoi(os.Getenv(key))
	return n
}
