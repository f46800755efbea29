package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stationsync/stationsync/internal/harness"
	"github.com/stationsync/stationsync/internal/netns"
)

// The outbox end to end: three `stationsync run` processes, one simulated
// PC each on a bridged LAN (internal/netns), and a PC's cable pulled
// (Host.Disconnect) while clerks keep writing on both sides. A cut-off PC
// must answer case writes within 3 s with 202 "pending", show them to its
// own clerks, survive a SIGKILL with its outbox intact, and deliver every
// write exactly once when the cable is back; the majority keeps
// committing meanwhile. Like lan_test.go these tests need root: netns.New
// skips them otherwise, and fails them under CI.
//
// One station serves every scenario, to keep the runtime small; each
// scenario starts from a healthy station (every PC connected and running,
// an agreed leader, empty outboxes, the same feed everywhere) and cuts
// and heals the link itself.

const (
	// outboxAfter is the nodes' outbox_after: short, to keep tests fast.
	outboxAfter = "500ms"
	// pendingWithin bounds a cut-off PC's answer to a case write.
	pendingWithin = 3 * time.Second
	// drainTimeout bounds delivering an outbox after the link is back
	// (forwarder backoff up to 5 s, plus catching up).
	drainTimeout = 30 * time.Second
	// obPoll is the polling period of this file's waits.
	obPoll = 100 * time.Millisecond
)

// obStatus is GET /v1/status with the outbox fields.
type obStatus struct {
	Node   string             `json:"node"`
	Raft   harness.RaftStatus `json:"raft"`
	Feed   harness.FeedStatus `json:"feed"`
	Outbox struct {
		Pending    int        `json:"pending"`
		Oldest     *time.Time `json:"oldest"`
		AgeSeconds float64    `json:"age_seconds"`
	} `json:"outbox"`
	Conflicts int      `json:"conflicts"`
	Warnings  []string `json:"warnings"`
}

// obEvent is a case event with the outbox's flags.
type obEvent struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Node     string `json:"node"`
	Conflict bool   `json:"conflict"`
	Pending  bool   `json:"pending"`
}

// obCase is a case with the outbox's flags.
type obCase struct {
	ID          string    `json:"id"`
	State       string    `json:"state"`
	Pending     bool      `json:"pending"`
	Events      []obEvent `json:"events"`
	Evaluations []struct {
		ID      string `json:"id"`
		Level   string `json:"level"`
		Pending bool   `json:"pending"`
	} `json:"evaluations"`
}

// obWrite is the 201/202 answer of a case write.
type obWrite struct {
	Case        obCase `json:"case"`
	Replication string `json:"replication"`
	Repeat      bool   `json:"repeat"`
}

// obConflict is one entry of GET /v1/conflicts.
type obConflict struct {
	ID       string          `json:"id"`
	CaseID   string          `json:"case_id"`
	Kind     string          `json:"kind"`
	Type     string          `json:"type"`
	Node     string          `json:"node"`
	Kept     string          `json:"kept"`
	Resolved json.RawMessage `json:"resolved"`
}

// sig is what must be the same on every node once the station converged:
// the state and the events in order, with their flags.
func (c obCase) sig() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s pending=%v:", c.State, c.Pending)
	for _, e := range c.Events {
		fmt.Fprintf(&b, " %s/%s", e.ID, e.Type)
		if e.Conflict {
			b.WriteString("/conflict")
		}
		if e.Pending {
			b.WriteString("/pending")
		}
	}
	for _, e := range c.Evaluations {
		fmt.Fprintf(&b, " evaluation %s/%s", e.ID, e.Level)
		if e.Pending {
			b.WriteString("/pending")
		}
	}
	return b.String()
}

// count is how many times event id is in the case.
func (c obCase) count(id string) int {
	n := 0
	for _, e := range c.Events {
		if e.ID == id {
			n++
		}
	}
	return n
}

func (c obCase) event(id string) (obEvent, bool) {
	for _, e := range c.Events {
		if e.ID == id {
			return e, true
		}
	}
	return obEvent{}, false
}

// outboxEnv is the station the scenarios share.
type outboxEnv struct {
	st    *harness.Station
	cut   map[int]bool // hosts whose link is cut
	cases []string     // every case id written, committed or pending, once
	seq   int          // numbers client-chosen ids
}

func TestOutboxAcrossPartitions(t *testing.T) {
	start := time.Now()
	nw := netns.New(t, "10.231.10.0/24")
	st := harness.NewStation(t, "XC-OB-01", 3,
		harness.WithNetwork(nw),
		harness.WithStaticPeers(),
		harness.WithConfig(func(i int, cfg map[string]any) { cfg["outbox_after"] = outboxAfter }),
	)
	e := &outboxEnv{st: st, cut: map[int]bool{}}
	st.StartAll()
	leader := st.WaitLeader(leaderTimeout)
	if err := st.Node(leader).PutItem(itemCode, "企业开办"); err != nil {
		t.Fatal(err)
	}
	st.WaitSync(syncTimeout)
	t.Logf("station up in %v", time.Since(start).Round(time.Millisecond))

	for _, sc := range []struct {
		name string
		run  func(*testing.T, *outboxEnv)
	}{
		{"FollowerCutOff", testOutboxFollowerCutOff},
		{"LeaderCutOff", testOutboxLeaderCutOff},
		{"KilledWhileCutOff", testOutboxKilledWhileCutOff},
		{"RetriedIDs", testOutboxRetriedIDs},
		{"Conflict", testOutboxConflict},
	} {
		t.Run(sc.name, func(t *testing.T) {
			start := time.Now()
			sc.run(t, e)
			t.Logf("%s took %v", sc.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// 1. A follower's cable is pulled: it queues case writes (202 within 3 s),
// shows them as pending, refuses item edits (503 no_leader); the other two
// keep committing. Plugged back, it delivers everything once.
func testOutboxFollowerCutOff(t *testing.T, e *outboxEnv) {
	leader := e.healthy(t)
	f, other := (leader+1)%3, (leader+2)%3
	lone := e.st.Node(f)
	base := e.committed(t, leader, "f-base")
	e.sync(t)

	e.disconnect(t, f)
	off := e.offline(t, f, "/v1/cases", e.caseBody(lone, "", "离线-新件"))
	if !off.Case.Pending || off.Case.State != "received" {
		t.Fatalf("202 answer shows the new case as %+v, want received and pending", off.Case)
	}
	e.cases = append(e.cases, off.Case.ID)
	accID := e.id("f-acc")
	ans := e.offline(t, f, "/v1/cases/"+base+"/events", eventBody(accID, "accepted"))
	if ans.Case.State != "accepted" {
		t.Fatalf("202 answer shows %s as %s, want accepted (its pending event merged)", base, ans.Case.State)
	}
	evalID := e.id("f-eval")
	ans = e.offline(t, f, "/v1/cases/"+base+"/evaluations", map[string]any{"id": evalID, "level": "满意", "channel": 1})
	if len(ans.Case.Evaluations) != 1 || ans.Case.Evaluations[0].ID != evalID || !ans.Case.Evaluations[0].Pending {
		t.Fatalf("202 answer shows %s as %s, want evaluation %s pending", base, ans.Case.sig(), evalID)
	}

	// Item edits need the leader. The answer takes up to the write timeout:
	// wait for it in the background while the majority writes.
	putErr := make(chan error, 1)
	go func() { putErr <- lone.PutItem("XC-L-0009", "离线事项") }()

	// The cut-off PC shows its clerk what it holds: pending.
	c := e.getCase(t, f, off.Case.ID)
	if !c.Pending || len(c.Events) != 1 || !c.Events[0].Pending {
		t.Fatalf("%s on %s: %s, want the case and its received event pending", off.Case.ID, lone.ID, c.sig())
	}
	c = e.getCase(t, f, base)
	if ev, ok := c.event(accID); !ok || !ev.Pending || c.State != "accepted" || c.Pending {
		t.Fatalf("%s on %s: %s, want accepted with %s pending (the case itself committed)", base, lone.ID, c.sig(), accID)
	}
	var list struct {
		Cases []obCase `json:"cases"`
	}
	if _, err := lone.Get("/v1/cases?limit=1000", &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Cases) == 0 || list.Cases[0].ID != off.Case.ID || !list.Cases[0].Pending {
		t.Fatalf("%s lists %d cases, the first %+v: want the pending new case %s first", lone.ID, len(list.Cases), first(list.Cases), off.Case.ID)
	}
	s := e.status(t, f)
	if s.Outbox.Pending != 3 || s.Outbox.Oldest == nil || s.Outbox.AgeSeconds < 0 {
		t.Fatalf("%s outbox status %+v, want 3 pending with an oldest time", lone.ID, s.Outbox)
	}

	// The majority keeps committing, through the leader and the follower,
	// and does not see the cut-off PC's writes.
	for k := range 4 {
		e.committed(t, []int{leader, other}[k%2], fmt.Sprintf("f-on-%d", k))
	}
	if _, err := e.st.Node(leader).GetCase(off.Case.ID); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("the majority's leader reads %s, still pending on %s: %v", off.Case.ID, lone.ID, err)
	}

	e.requireNoLeader(t, f, putErr)
	if n := e.status(t, f).Outbox.Pending; n != 3 {
		t.Fatalf("%s outbox holds %d writes after the refused item edit, want 3", lone.ID, n)
	}

	e.reconnect(t, f)
	e.drained(t, f)
	got := e.converge(t)
	if c := got[base]; c.State != "accepted" || c.count(accID) != 1 || len(c.Evaluations) != 1 || c.Evaluations[0].ID != evalID {
		t.Fatalf("%s after healing: %s, want accepted with %s once and evaluation %s", base, c.sig(), accID, evalID)
	}
	if got[off.Case.ID].State != "received" || len(got[off.Case.ID].Events) != 1 {
		t.Fatalf("%s after healing: %s", off.Case.ID, got[off.Case.ID].sig())
	}
	for _, i := range []int{leader, other} {
		if _, err := e.st.Node(i).Get("/v1/items/XC-L-0009", nil); !isStatus(err, http.StatusNotFound) {
			t.Fatalf("the item edit refused on %s exists on %s: %v", lone.ID, e.st.Node(i).ID, err)
		}
	}
}

// 2. The leader's cable is pulled: its side queues, the other two elect a
// new leader and keep committing; healed, nothing is lost or doubled.
func testOutboxLeaderCutOff(t *testing.T, e *outboxEnv) {
	leader := e.healthy(t)
	old := e.st.Node(leader)
	others := []int{(leader + 1) % 3, (leader + 2) % 3}
	base := e.committed(t, leader, "l-base")
	e.sync(t)

	e.disconnect(t, leader)
	// An item edit on the old leader: it cannot commit it (503), whether
	// it is still leader when the edit arrives or already stepped down.
	putErr := make(chan error, 1)
	go func() { putErr <- old.PutItem("XC-L-0008", "离线事项") }()
	off := e.offline(t, leader, "/v1/cases", e.caseBody(old, "", "离线-领导"))
	e.cases = append(e.cases, off.Case.ID)
	accID := e.id("l-acc")
	e.offline(t, leader, "/v1/cases/"+base+"/events", eventBody(accID, "accepted"))

	nl := e.majorityLeader(t, others, old.ID)
	t.Logf("%s cut off; %s leads the majority", old.ID, e.st.Node(nl).ID)
	for k := range 4 {
		e.committed(t, others[k%2], fmt.Sprintf("l-on-%d", k))
	}
	// The old leader's side still answers case writes as pending.
	off2 := e.offline(t, leader, "/v1/cases", e.caseBody(old, "", "离线-领导-2"))
	e.cases = append(e.cases, off2.Case.ID)
	if n := e.status(t, leader).Outbox.Pending; n != 3 {
		t.Fatalf("%s outbox holds %d writes, want 3", old.ID, n)
	}

	e.requireNoLeader(t, leader, putErr)

	e.reconnect(t, leader)
	e.drained(t, leader)
	got := e.converge(t)
	for _, i := range others {
		if _, err := e.st.Node(i).Get("/v1/items/XC-L-0008", nil); !isStatus(err, http.StatusNotFound) {
			t.Fatalf("the item edit refused on %s exists on %s: %v", old.ID, e.st.Node(i).ID, err)
		}
	}
	if got[base].State != "accepted" || got[base].count(accID) != 1 {
		t.Fatalf("%s after healing: %s, want accepted with %s once", base, got[base].sig(), accID)
	}
}

// 3. A cut-off PC with a non-empty outbox is killed (SIGKILL) and started
// again, still cut off: its outbox survived; plugged back, it drains.
func testOutboxKilledWhileCutOff(t *testing.T, e *outboxEnv) {
	leader := e.healthy(t)
	f := (leader + 1) % 3
	lone := e.st.Node(f)
	base := e.committed(t, leader, "k-base")
	e.sync(t)

	e.disconnect(t, f)
	var offIDs []string
	for k := range 2 {
		w := e.offline(t, f, "/v1/cases", e.caseBody(lone, "", fmt.Sprintf("离线-重启-%d", k)))
		offIDs = append(offIDs, w.Case.ID)
		e.cases = append(e.cases, w.Case.ID)
	}
	accID := e.id("k-acc")
	e.offline(t, f, "/v1/cases/"+base+"/events", eventBody(accID, "accepted"))
	before := e.status(t, f)
	if before.Outbox.Pending != 3 || before.Outbox.Oldest == nil {
		t.Fatalf("%s outbox status %+v before the kill, want 3 pending", lone.ID, before.Outbox)
	}

	st := e.st.WithT(t)
	st.Kill(f)
	st.Start(f)
	after := e.status(t, f)
	if after.Outbox.Pending != before.Outbox.Pending || after.Outbox.Oldest == nil || !after.Outbox.Oldest.Equal(*before.Outbox.Oldest) {
		t.Fatalf("%s outbox after SIGKILL and restart (still cut off): %+v, before: %+v", lone.ID, after.Outbox, before.Outbox)
	}
	for _, id := range offIDs {
		if c := e.getCase(t, f, id); !c.Pending {
			t.Fatalf("%s on the restarted %s: %s, want pending", id, lone.ID, c.sig())
		}
	}
	if c := e.getCase(t, f, base); c.State != "accepted" {
		t.Fatalf("%s on the restarted %s: %s, want accepted (pending)", base, lone.ID, c.sig())
	}
	// The restarted PC, still cut off, keeps taking case writes: one on a
	// case whose creation is itself still queued.
	acc2 := e.id("k-acc-off")
	e.offline(t, f, "/v1/cases/"+offIDs[0]+"/events", eventBody(acc2, "accepted"))
	if n := e.status(t, f).Outbox.Pending; n != 4 {
		t.Fatalf("%s outbox holds %d writes, want 4", lone.ID, n)
	}
	e.committed(t, leader, "k-on")

	e.reconnect(t, f)
	e.drained(t, f)
	got := e.converge(t)
	if got[base].State != "accepted" || got[base].count(accID) != 1 {
		t.Fatalf("%s after healing: %s, want accepted with %s once", base, got[base].sig(), accID)
	}
	if c := got[offIDs[0]]; c.State != "accepted" || c.count(acc2) != 1 || len(c.Events) != 2 {
		t.Fatalf("%s after healing: %s, want received then accepted (%s)", offIDs[0], c.sig(), acc2)
	}
}

// 4. A client retries the same case id and the same event id on both
// sides of the partition (202 on the cut-off PC, 201 on the majority):
// one case and one event result, on every PC.
func testOutboxRetriedIDs(t *testing.T, e *outboxEnv) {
	leader := e.healthy(t)
	f, other := (leader+1)%3, (leader+2)%3
	lone := e.st.Node(f)
	base := e.committed(t, leader, "r-base")
	e.sync(t)

	e.disconnect(t, f)
	caseID := e.id("OB-RETRY")
	evID := e.id("r-acc")
	// The case on the cut-off PC first, then (a client that gave up on it)
	// on the majority's follower; the event the other way round, on the
	// majority's leader first.
	if w := e.offline(t, f, "/v1/cases", e.caseBody(lone, caseID, "重试")); w.Case.ID != caseID {
		t.Fatalf("client case id %s came back as %s", caseID, w.Case.ID)
	}
	if w := e.online(t, other, "/v1/cases", e.caseBody(e.st.Node(other), caseID, "重试")); w.Case.ID != caseID || w.Repeat {
		t.Fatalf("majority answer for %s: %+v", caseID, w)
	}
	e.cases = append(e.cases, caseID)
	e.online(t, leader, "/v1/cases/"+base+"/events", eventBody(evID, "accepted"))
	e.offline(t, f, "/v1/cases/"+base+"/events", eventBody(evID, "accepted"))

	e.reconnect(t, f)
	e.drained(t, f)
	got := e.converge(t) // every case exactly once on every node
	if c := got[caseID]; c.State != "received" || len(c.Events) != 1 || c.count(caseID+".received") != 1 {
		t.Fatalf("%s after healing: %s, want one received event", caseID, c.sig())
	}
	if c := got[base]; c.State != "accepted" || c.count(evID) != 1 || len(c.Events) != 2 {
		t.Fatalf("%s after healing: %s, want accepted with %s once", base, c.sig(), evID)
	}
}

// 5. The cut-off PC records "withdrawn" while the majority records
// "rejected" for the same case: healed, the case is rejected everywhere,
// the withdrawal is kept in its history as a conflict and listed at
// /v1/conflicts on every PC.
func testOutboxConflict(t *testing.T, e *outboxEnv) {
	leader := e.healthy(t)
	f := (leader + 1) % 3
	base := e.committed(t, leader, "c-base")
	e.sync(t)

	e.disconnect(t, f)
	wdID, rjID := e.id("c-withdrawn"), e.id("c-rejected")
	if w := e.offline(t, f, "/v1/cases/"+base+"/events", eventBody(wdID, "withdrawn")); w.Case.State != "withdrawn" {
		t.Fatalf("202 answer shows %s as %s, want withdrawn (pending)", base, w.Case.State)
	}
	e.online(t, leader, "/v1/cases/"+base+"/events", eventBody(rjID, "rejected"))

	e.reconnect(t, f)
	e.drained(t, f)
	got := e.converge(t)
	c := got[base]
	wd, _ := c.event(wdID)
	rj, _ := c.event(rjID)
	if c.State != "rejected" || c.count(wdID) != 1 || !wd.Conflict || c.count(rjID) != 1 || rj.Conflict {
		t.Fatalf("%s after healing: %s, want rejected, with %s once and marked conflict", base, c.sig(), wdID)
	}
	e.waitFor(t, syncTimeout, "every node lists the conflict", func() (bool, string) {
		for i := range e.st.Len() {
			n := e.st.Node(i)
			var list struct {
				Conflicts []obConflict `json:"conflicts"`
			}
			if _, err := n.Get("/v1/conflicts", &list); err != nil {
				return false, err.Error()
			}
			var found *obConflict
			for k := range list.Conflicts {
				if list.Conflicts[k].ID == wdID {
					found = &list.Conflicts[k]
				}
			}
			if found == nil || found.CaseID != base || found.Type != "withdrawn" || found.Kept != "in_history" || found.Node != e.st.Node(f).ID || len(found.Resolved) > 0 && string(found.Resolved) != "null" {
				return false, fmt.Sprintf("%s lists %+v, want %s (case %s, withdrawn, kept in_history, open)", n.ID, list.Conflicts, wdID, base)
			}
			if s, err := e.statusErr(i); err != nil || s.Conflicts != len(list.Conflicts) {
				return false, fmt.Sprintf("%s status conflicts %d (%v), lists %d", n.ID, s.Conflicts, err, len(list.Conflicts))
			}
		}
		return true, ""
	})
}

// requireNoLeader waits for the answer of an item edit sent to the
// cut-off node i (before the link comes back: healed, it would commit) and
// checks it is 503 no_leader. A wrong answer fails the test but not at
// once: the rest of the scenario still says whether the outbox works.
func (e *outboxEnv) requireNoLeader(t *testing.T, i int, putErr <-chan error) {
	t.Helper()
	start := time.Now()
	select {
	case err := <-putErr:
		var ae *harness.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != "no_leader" {
			t.Errorf("PUT item on the cut-off %s: %v, want 503 no_leader", e.st.Node(i).ID, err)
		}
	case <-time.After(harness.HTTPTimeout + 5*time.Second):
		t.Fatalf("PUT item on the cut-off %s: no answer\n%s", e.st.Node(i).ID, e.statuses())
	}
	if d := time.Since(start); d > time.Second {
		t.Logf("waited %v more for the item edit's answer on %s", d.Round(time.Millisecond), e.st.Node(i).ID)
	}
}

// healthy reconnects every cut host, starts every stopped node and waits
// for an agreed leader, empty outboxes and the same feed everywhere; it
// returns the leader's index.
func (e *outboxEnv) healthy(t *testing.T) int {
	t.Helper()
	st := e.st.WithT(t)
	for i := range e.cut {
		e.reconnect(t, i)
	}
	for i := range st.Len() {
		if !st.Node(i).Running() {
			st.Start(i)
		}
	}
	for i := range st.Len() {
		e.drained(t, i)
	}
	e.sync(t)
	// A PC just plugged back may still unsettle the leadership: start only
	// once the same leader in the same term is seen twice, apart.
	deadline := time.Now().Add(leaderTimeout)
	for {
		leader := st.WaitLeader(leaderTimeout)
		before := e.status(t, leader)
		time.Sleep(500 * time.Millisecond)
		if again := st.WaitLeader(leaderTimeout); again == leader && e.status(t, leader).Raft.Term == before.Raft.Term {
			return leader
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leadership does not settle\n%s", e.statuses())
		}
	}
}

func (e *outboxEnv) sync(t *testing.T) {
	t.Helper()
	e.st.WithT(t).WaitSync(syncTimeout)
}

func (e *outboxEnv) disconnect(t *testing.T, i int) {
	t.Helper()
	if err := e.st.WithT(t).Host(i).Disconnect(); err != nil {
		t.Fatal(err)
	}
	e.cut[i] = true
	t.Logf("cut %s off", e.st.Node(i).ID)
}

func (e *outboxEnv) reconnect(t *testing.T, i int) {
	t.Helper()
	if err := e.st.WithT(t).Host(i).Reconnect(); err != nil {
		t.Fatal(err)
	}
	delete(e.cut, i)
	t.Logf("reconnected %s", e.st.Node(i).ID)
}

// id returns a new client-chosen id starting with prefix.
func (e *outboxEnv) id(prefix string) string {
	e.seq++
	return fmt.Sprintf("%s-%d", prefix, e.seq)
}

func (e *outboxEnv) caseBody(n *harness.Node, id, name string) map[string]any {
	b := map[string]any{
		"item_code": itemCode,
		"channel":   "window",
		"actor":     "clerk-" + n.ID,
		"applicant": map[string]any{"kind": "person", "name": name},
	}
	if id != "" {
		b["id"] = id
	}
	return b
}

func eventBody(id, typ string) map[string]any {
	return map[string]any{"id": id, "type": typ, "actor": "clerk-e2e"}
}

// committed creates a case on node i, which must commit it (201), and
// records its id.
func (e *outboxEnv) committed(t *testing.T, i int, tag string) string {
	t.Helper()
	id, err := writeCase(e.st.Node(i), e.st.ID, tag)
	if err != nil {
		t.Fatalf("%v\n%s", err, e.statuses())
	}
	e.cases = append(e.cases, id)
	return id
}

// post sends a case write to node i and returns the status and answer.
func (e *outboxEnv) post(i int, path string, body any) (int, obWrite, time.Duration, error) {
	n := e.st.Node(i)
	start := time.Now()
	code, b, err := n.Do(http.MethodPost, path, body)
	took := time.Since(start)
	var w obWrite
	if err != nil {
		return code, w, took, err
	}
	if code != http.StatusCreated && code != http.StatusAccepted {
		return code, w, took, fmt.Errorf("%s: POST %s: %d %s", n.ID, path, code, b)
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return code, w, took, fmt.Errorf("%s: POST %s: %d with %v: %.300s", n.ID, path, code, err, b)
	}
	return code, w, took, nil
}

// offline posts a case write to the cut-off node i: it must answer 202
// "pending" within pendingWithin.
func (e *outboxEnv) offline(t *testing.T, i int, path string, body any) obWrite {
	t.Helper()
	code, w, took, err := e.post(i, path, body)
	if err != nil || code != http.StatusAccepted || w.Replication != "pending" {
		t.Fatalf("%s (cut off): POST %s: %d %q %v after %v, want 202 pending\n%s", e.st.Node(i).ID, path, code, w.Replication, err, took, e.statuses())
	}
	if took > pendingWithin {
		t.Fatalf("%s (cut off): POST %s answered 202 after %v, want within %v", e.st.Node(i).ID, path, took, pendingWithin)
	}
	t.Logf("%s (cut off): POST %s: 202 pending in %v", e.st.Node(i).ID, path, took.Round(time.Millisecond))
	return w
}

// online posts a case write to node i on the majority: it must answer 201
// "committed".
func (e *outboxEnv) online(t *testing.T, i int, path string, body any) obWrite {
	t.Helper()
	code, w, took, err := e.post(i, path, body)
	if err != nil || code != http.StatusCreated || w.Replication != "committed" {
		t.Fatalf("%s (majority): POST %s: %d %q %v after %v, want 201 committed\n%s", e.st.Node(i).ID, path, code, w.Replication, err, took, e.statuses())
	}
	return w
}

func (e *outboxEnv) getCase(t *testing.T, i int, id string) obCase {
	t.Helper()
	c, err := e.getCaseErr(i, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *outboxEnv) getCaseErr(i int, id string) (obCase, error) {
	var c obCase
	_, err := e.st.Node(i).Get("/v1/cases/"+url.PathEscape(id), &c)
	return c, err
}

func (e *outboxEnv) status(t *testing.T, i int) obStatus {
	t.Helper()
	s, err := e.statusErr(i)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *outboxEnv) statusErr(i int) (obStatus, error) {
	var s obStatus
	_, err := e.st.Node(i).Get("/v1/status", &s)
	return s, err
}

// statuses is one line per node, for failure messages.
func (e *outboxEnv) statuses() string {
	var lines []string
	for i, n := range e.st.Nodes() {
		cut := ""
		if e.cut[i] {
			cut = " [cut off]"
		}
		if !n.Running() {
			lines = append(lines, fmt.Sprintf("  %s%s: not running", n.ID, cut))
			continue
		}
		s, err := e.statusErr(i)
		if err != nil {
			lines = append(lines, fmt.Sprintf("  %s%s: %v", n.ID, cut, err))
			continue
		}
		oldest := "null"
		if s.Outbox.Oldest != nil {
			oldest = s.Outbox.Oldest.Format(time.RFC3339Nano)
		}
		lines = append(lines, fmt.Sprintf("  %s%s: %s term %d leader %q applied %d commit %d seq %d; outbox pending %d oldest %s age %.1fs; conflicts %d; warnings %q",
			n.ID, cut, s.Raft.State, s.Raft.Term, s.Raft.Leader, s.Raft.AppliedIndex, s.Raft.CommitIndex, s.Feed.Seq,
			s.Outbox.Pending, oldest, s.Outbox.AgeSeconds, s.Conflicts, s.Warnings))
	}
	return strings.Join(lines, "\n")
}

// waitFor polls cond until it holds, and fails the test with its last
// reason and every node's status at the deadline.
func (e *outboxEnv) waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s\nstatuses:\n%s", what, timeout, why, e.statuses())
		}
		time.Sleep(obPoll)
	}
}

// drained waits until node i's outbox is empty.
func (e *outboxEnv) drained(t *testing.T, i int) {
	t.Helper()
	start := time.Now()
	n := e.st.Node(i)
	e.waitFor(t, drainTimeout, n.ID+"'s outbox drains", func() (bool, string) {
		s, err := e.statusErr(i)
		if err != nil {
			return false, err.Error()
		}
		if s.Outbox.Pending != 0 || s.Outbox.Oldest != nil {
			return false, fmt.Sprintf("%s outbox %+v", n.ID, s.Outbox)
		}
		return true, ""
	})
	if d := time.Since(start); d > time.Second {
		t.Logf("%s's outbox drained in %v", n.ID, d.Round(time.Millisecond))
	}
}

// majorityLeader waits until nodes agree on a leader among them other than
// the node named not, and returns its index.
func (e *outboxEnv) majorityLeader(t *testing.T, nodes []int, not string) int {
	t.Helper()
	leader := -1
	e.waitFor(t, leaderTimeout, "the majority elects a new leader", func() (bool, string) {
		var ids []string
		var terms []uint64
		for _, i := range nodes {
			s, err := e.statusErr(i)
			if err != nil {
				return false, err.Error()
			}
			ids, terms = append(ids, s.Raft.Leader), append(terms, s.Raft.Term)
		}
		if ids[0] == "" || ids[0] == not || slices.ContainsFunc(ids, func(s string) bool { return s != ids[0] }) ||
			slices.ContainsFunc(terms, func(x uint64) bool { return x != terms[0] }) {
			return false, fmt.Sprintf("leaders %q terms %v", ids, terms)
		}
		for _, i := range nodes {
			if e.st.Node(i).ID == ids[0] {
				if s, err := e.statusErr(i); err != nil || s.Raft.State != "leader" {
					return false, fmt.Sprintf("%s named leader but is %s (%v)", ids[0], s.Raft.State, err)
				}
				leader = i
				return true, ""
			}
		}
		return false, fmt.Sprintf("leader %s is not among the majority", ids[0])
	})
	return leader
}

// converge waits until every node holds every case written so far exactly
// once, nothing pending anywhere, and each case identical on every node
// (state, events in order, conflict flags); it returns the cases as the
// first node holds them.
func (e *outboxEnv) converge(t *testing.T) map[string]obCase {
	t.Helper()
	want := slices.Sorted(slices.Values(e.cases))
	if d := slices.Compact(slices.Clone(want)); len(d) != len(want) {
		t.Fatalf("test bug: a case id was recorded twice: %v", want)
	}
	var got map[string]obCase
	e.waitFor(t, syncTimeout, "every node holds every case once, identically", func() (bool, string) {
		got = map[string]obCase{}
		for i, n := range e.st.Nodes() {
			s, err := e.statusErr(i)
			if err != nil {
				return false, err.Error()
			}
			if s.Outbox.Pending != 0 {
				return false, fmt.Sprintf("%s has %d pending writes", n.ID, s.Outbox.Pending)
			}
			list, err := n.ListCases()
			if err != nil {
				return false, err.Error()
			}
			var ids []string
			for _, c := range list {
				ids = append(ids, c.ID)
			}
			slices.Sort(ids)
			if !slices.Equal(ids, want) {
				return false, fmt.Sprintf("%s lists %d cases, want %d: missing %v, extra or doubled %v",
					n.ID, len(ids), len(want), minus(want, ids), extra(ids, want))
			}
			for _, id := range want {
				c, err := e.getCaseErr(i, id)
				if err != nil {
					return false, err.Error()
				}
				if c.Pending || slices.ContainsFunc(c.Events, func(ev obEvent) bool { return ev.Pending }) {
					return false, fmt.Sprintf("%s: %s still pending: %s", n.ID, id, c.sig())
				}
				if i == 0 {
					got[id] = c
				} else if c.sig() != got[id].sig() {
					return false, fmt.Sprintf("%s differs:\n  %s: %s\n  %s: %s", id, e.st.Node(0).ID, got[id].sig(), n.ID, c.sig())
				}
			}
		}
		return true, ""
	})
	for _, n := range e.st.Nodes() {
		requireCases(t, n, want)
	}
	return got
}

// extra is what ids holds beyond want, doubles included.
func extra(ids, want []string) []string {
	left := slices.Clone(want)
	var out []string
	for _, id := range ids {
		if k := slices.Index(left, id); k >= 0 {
			left = slices.Delete(left, k, k+1)
		} else {
			out = append(out, id)
		}
	}
	return out
}

func isStatus(err error, status int) bool {
	var ae *harness.APIError
	return errors.As(err, &ae) && ae.Status == status
}

func first(cs []obCase) any {
	if len(cs) == 0 {
		return nil
	}
	return cs[0]
}
