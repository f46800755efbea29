package replication

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication/transport"
)

// testCluster is a station of in-process nodes over the real QUIC
// transport on loopback, with real badger stores on disk.
type testCluster struct {
	t       *testing.T
	station string
	caDir   string
	nodes   []*testNode
	tune    func(*Config)

	partMu sync.Mutex
	side   map[string]int // node address -> side of a partition; nil: none
}

// partition splits the nodes (by index) into sides that cannot exchange
// a datagram; nodes not named form one more side.
func (c *testCluster) partition(sides ...[]int) {
	c.partMu.Lock()
	defer c.partMu.Unlock()
	c.side = map[string]int{}
	for _, tn := range c.nodes {
		c.side[tn.addr] = 0
	}
	for s, idx := range sides {
		for _, i := range idx {
			c.side[c.nodes[i].addr] = s + 1
		}
	}
}

// heal ends the partition.
func (c *testCluster) heal() {
	c.partMu.Lock()
	c.side = nil
	c.partMu.Unlock()
}

// dropper is node addr's transport's Drop: a datagram between two sides
// of the partition is lost.
func (c *testCluster) dropper(addr string) func(net.Addr) bool {
	return func(peer net.Addr) bool {
		c.partMu.Lock()
		defer c.partMu.Unlock()
		if c.side == nil {
			return false
		}
		return c.side[addr] != c.side[peer.String()]
	}
}

type testNode struct {
	id      string
	dir     string
	addr    string
	station string
	peers   []string
	key     []byte // each node encrypts its stores with its own key
	tr      *transport.Transport
	n       *Node
}

func freeUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("STATIONSYNC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func newTestCluster(t *testing.T, n int, tune func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, station: "XC-IP-01", caDir: filepath.Join(t.TempDir(), "ca"), tune: tune}
	if err := pki.InitCA(c.caDir); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for i := 0; i < n; i++ {
		addrs = append(addrs, freeUDPAddr(t))
	}
	for i := 0; i < n; i++ {
		c.nodes = append(c.nodes, c.newNode(fmt.Sprintf("pc-%d", i+1), c.station, addrs[i], addrs))
	}
	for i := range c.nodes {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	return c
}

func (c *testCluster) newNode(id, station, addr string, peers []string) *testNode {
	dir := filepath.Join(c.t.TempDir(), id)
	if err := pki.Issue(c.caDir, pki.Identity{Role: pki.RoleStation, Station: station, Node: id}, dir, 24*time.Hour); err != nil {
		c.t.Fatal(err)
	}
	key := make([]byte, 32)
	crand.Read(key)
	return &testNode{id: id, dir: dir, addr: addr, station: station, peers: peers, key: key}
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	tn := c.nodes[i]
	tl, err := pki.LoadTLS(filepath.Join(tn.dir, "ca.crt"), filepath.Join(tn.dir, "node.crt"), filepath.Join(tn.dir, "node.key"))
	if err != nil {
		c.t.Fatal(err)
	}
	logger := testLogger(c.t).With("node", tn.id)
	tn.tr, err = transport.New(transport.Config{
		Listen: tn.addr, TLS: tl, Station: tn.station,
		StatelessResetKeyFile: filepath.Join(tn.dir, "reset.key"), Logger: logger,
		Drop: c.dropper(tn.addr),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	tn.n = New(c.config(i, logger), tn.tr)
	if err := tn.tr.Open(); err != nil {
		c.t.Fatal(err)
	}
	if err := tn.n.Open(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testCluster) config(i int, logger *slog.Logger) Config {
	tn := c.nodes[i]
	cfg := Config{NodeID: tn.id, Station: tn.station, DataDir: filepath.Join(tn.dir, "data"), Peers: tn.peers, Expect: len(tn.peers), EncryptionKey: tn.key, Logger: logger}
	if c.tune != nil {
		c.tune(&cfg)
	}
	return cfg
}

func (c *testCluster) stop(i int) {
	tn := c.nodes[i]
	if tn.n == nil {
		return
	}
	if err := tn.n.Close(); err != nil {
		c.t.Errorf("close %s: %v", tn.id, err)
	}
	tn.tr.Close()
	tn.n, tn.tr = nil, nil
}

// waitLeader waits until every running node names the same leader and
// returns its index.
func (c *testCluster) waitLeader() int {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		leader, agree := "", true
		for _, tn := range c.nodes {
			if tn.n == nil {
				continue
			}
			s := tn.n.Status()
			if s.Leader == "" || (leader != "" && s.Leader != leader) {
				agree = false
				break
			}
			leader = s.Leader
		}
		if agree && leader != "" {
			for i, tn := range c.nodes {
				if tn.id == leader && tn.n != nil {
					return i
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no agreed leader within 20 s")
	return -1
}

func (c *testCluster) follower(leader int) int {
	for i, tn := range c.nodes {
		if i != leader && tn.n != nil {
			return i
		}
	}
	c.t.Fatal("no running follower")
	return -1
}

func ctx(t *testing.T) context.Context {
	cx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return cx
}

func putItem(t *testing.T, n *Node, code string) {
	t.Helper()
	it := records.Item{Code: code, Name: "企业开办", Type: records.ItemType{Code: "20", Name: "公共服务"}, Origin: records.OriginLocal}
	res, err := n.Submit(ctx(t), []records.Op{{Kind: records.OpPutItem, Item: &it}})
	if err != nil || res[0].Error != nil {
		t.Fatalf("put item: %v %+v", err, res)
	}
}

func newCase(id string) records.Op {
	c := records.Case{ID: id, ItemCode: "XC-L-0001", Channel: "window", Actor: "clerk-07",
		Applicant: records.Applicant{Kind: "person", Name: "张三", IDNumber: "320507199001011234"}}
	records.PrepareCase(&c, "XC-IP-01", "test", records.NewClock(nil).Now())
	return records.Op{Kind: records.OpCreateCase, Case: &c}
}

func createCase(n *Node, cx context.Context, id string) error {
	res, err := n.Submit(cx, []records.Op{newCase(id)})
	if err != nil {
		return err
	}
	if res[0].Error != nil {
		return res[0].Error
	}
	return nil
}

func hasCase(n *Node, id string) bool {
	err := n.View(func(r records.Reader) error { _, err := records.GetCase(r, id); return err })
	return err == nil
}

func caseCount(t *testing.T, n *Node) int {
	t.Helper()
	total, after := 0, ""
	for {
		var page records.CasePage
		err := n.View(func(r records.Reader) (err error) {
			page, err = records.ListCases(r, records.CaseQuery{After: after, Limit: 1000})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		total += len(page.Cases)
		if page.Next == "" {
			return total
		}
		after = page.Next
	}
}

// eventually polls cond until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClusterWritesSurviveLeaderLoss(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	putItem(t, c.nodes[leader].n, "XC-L-0001")

	// A case written to a follower is forwarded, and readable on that
	// follower as soon as the write returns.
	f := c.follower(leader)
	if err := createCase(c.nodes[f].n, ctx(t), "case-follower"); err != nil {
		t.Fatal(err)
	}
	if !hasCase(c.nodes[f].n, "case-follower") {
		t.Fatal("follower answered before the case was applied there")
	}
	for _, tn := range c.nodes {
		eventually(t, "the case is on "+tn.id, func() bool { return hasCase(tn.n, "case-follower") })
	}

	// Concurrent writes on every node; remember what was acknowledged.
	acked := writeConcurrently(t, c, "before", 60)
	if len(acked) != 60 {
		t.Fatalf("only %d of 60 writes acknowledged with a healthy cluster", len(acked))
	}

	c.stop(leader)
	newLeader := c.waitLeader()
	if newLeader == leader {
		t.Fatal("stopped node still leader")
	}
	for _, id := range acked {
		for i, tn := range c.nodes {
			if tn.n != nil && !hasCase(tn.n, id) {
				eventually(t, fmt.Sprintf("acknowledged case %s is on %s", id, c.nodes[i].id), func() bool { return hasCase(tn.n, id) })
			}
		}
	}
	after := writeConcurrently(t, c, "after", 20)
	if len(after) != 20 {
		t.Fatalf("only %d of 20 writes acknowledged after failover", len(after))
	}

	// The old leader comes back and catches up.
	c.start(leader)
	want := caseCount(t, c.nodes[newLeader].n)
	eventually(t, "the restarted node caught up", func() bool {
		return caseCount(t, c.nodes[leader].n) == want &&
			c.nodes[leader].n.Status().Seq == c.nodes[newLeader].n.Status().Seq
	})
}

// writeConcurrently creates n cases spread over the running nodes, all at
// once, and returns the ids whose writes were acknowledged.
func writeConcurrently(t *testing.T, c *testCluster, prefix string, n int) []string {
	var running []*Node
	for _, tn := range c.nodes {
		if tn.n != nil {
			running = append(running, tn.n)
		}
	}
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("%s-%03d", prefix, i)
			if err := createCase(running[i%len(running)], ctx(t), id); err != nil {
				t.Logf("write %s: %v", id, err)
				return
			}
			mu.Lock()
			acked = append(acked, id)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return acked
}

func TestGroupCommitBatchesConcurrentWrites(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	putItem(t, c.nodes[leader].n, "XC-L-0001")
	ln := c.nodes[leader].n
	before := ln.Status().EntriesApplied
	const writes = 64
	acked := writeConcurrently(t, &testCluster{nodes: []*testNode{c.nodes[leader]}}, "gc", writes)
	if len(acked) != writes {
		t.Fatalf("%d of %d writes acknowledged", len(acked), writes)
	}
	entries := ln.Status().EntriesApplied - before
	t.Logf("%d concurrent writes travelled in %d raft entries", writes, entries)
	if entries >= writes {
		t.Fatalf("%d concurrent writes took %d raft entries: no group commit", writes, entries)
	}
}

func TestRestartAppliesNothingTwice(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	putItem(t, c.nodes[leader].n, "XC-L-0001")
	writeConcurrently(t, c, "r", 30)
	for _, tn := range c.nodes {
		eventually(t, tn.id+" has every case", func() bool { return caseCount(t, tn.n) == 30 })
	}
	seqs := map[string]uint64{}
	for i, tn := range c.nodes {
		seqs[tn.id] = tn.n.Status().Seq
		c.stop(i)
	}
	for i := range c.nodes {
		c.start(i)
	}
	c.waitLeader()
	// A new leader commits a no-op, after which every node has seen the
	// whole log again.
	for _, tn := range c.nodes {
		eventually(t, tn.id+" applied up to the commit index", func() bool {
			s := tn.n.Status()
			return s.CommitIndex > 0 && s.AppliedIndex >= s.CommitIndex
		})
		s := tn.n.Status()
		if s.EntriesApplied != 0 {
			t.Errorf("%s re-applied %d entries after a restart", tn.id, s.EntriesApplied)
		}
		if s.Seq != seqs[tn.id] {
			t.Errorf("%s feed seq %d after restart, %d before", tn.id, s.Seq, seqs[tn.id])
		}
		if n := caseCount(t, tn.n); n != 30 {
			t.Errorf("%s has %d cases after restart, want 30", tn.id, n)
		}
	}
}

func TestLaggingNodeCatchesUpFromSnapshot(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.TrailingLogs = 4
		cfg.SnapshotThreshold = 8
		cfg.SnapshotInterval = time.Hour
	})
	leader := c.waitLeader()
	putItem(t, c.nodes[leader].n, "XC-L-0001")
	lag := c.follower(leader)
	c.stop(lag)
	for i := 0; i < 40; i++ {
		if err := createCase(c.nodes[leader].n, ctx(t), fmt.Sprintf("s-%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.nodes[leader].n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, err := c.nodes[leader].n.logs.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first <= 10 {
		t.Fatalf("log not truncated after snapshot: first index %d", first)
	}
	c.start(lag)
	eventually(t, "the lagging node installed the snapshot and caught up", func() bool {
		return caseCount(t, c.nodes[lag].n) == 40 && c.nodes[lag].n.Status().Seq == c.nodes[leader].n.Status().Seq
	})
}

func TestOtherStationCannotJoin(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.waitLeader()
	// Same CA, another station, the cluster's addresses as static peers.
	var peers []string
	for _, tn := range c.nodes {
		peers = append(peers, tn.addr)
	}
	intruder := c.newNode("pc-9", "XC-IP-02", freeUDPAddr(t), peers)
	c.nodes = append(c.nodes, intruder)
	c.start(len(c.nodes) - 1)
	// Give it several formation rounds.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		for _, tn := range c.nodes[:3] {
			for _, m := range tn.n.Status().Members {
				if m.ID == "pc-9" {
					t.Fatalf("a node of another station joined the cluster: %+v", m)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := len(c.nodes[0].n.Status().Members); got != 3 {
		t.Fatalf("cluster has %d members, want 3", got)
	}
}

func TestEnvelopeVersions(t *testing.T) {
	if _, err := decodeEnvelope([]byte(`{"v":2,"ops":[]}`)); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("v2 envelope: got %v, want ErrUnknownVersion", err)
	}
	if _, err := decodeEnvelope([]byte(`{"ops":[]}`)); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("envelope without version: got %v, want ErrUnknownVersion", err)
	}
	b, err := encodeEnvelope(envelope{Ops: []records.Op{newCase("x")}})
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	json.Unmarshal(b, &raw)
	if string(raw["v"]) != "1" {
		t.Fatalf("encoded version %s, want 1", raw["v"])
	}
	if _, err := decodeEnvelope(b); err != nil {
		t.Fatal(err)
	}
}

func TestNodeAddedLaterJoinsWithTheSameConfig(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	putItem(t, c.nodes[leader].n, "XC-L-0001")
	if err := createCase(c.nodes[leader].n, ctx(t), "early"); err != nil {
		t.Fatal(err)
	}
	// The fourth PC gets the station's config: every address as a peer,
	// expect 3. It must join, not bootstrap a cluster of its own.
	addr := freeUDPAddr(t)
	var peers []string
	for _, tn := range c.nodes {
		peers = append(peers, tn.addr)
	}
	peers = append(peers, addr)
	late := c.newNode("pc-4", c.station, addr, peers)
	c.nodes = append(c.nodes, late)
	c.tune = func(cfg *Config) { cfg.Expect = 3 }
	c.start(3)
	eventually(t, "pc-4 is a voter and has the early case", func() bool {
		for _, m := range c.nodes[leader].n.Status().Members {
			if m.ID == "pc-4" && m.Suffrage == "voter" {
				return hasCase(late.n, "early")
			}
		}
		return false
	})
	// A write on the new node is forwarded like on any follower.
	if err := createCase(late.n, ctx(t), "late"); err != nil {
		t.Fatal(err)
	}
	if cid := late.n.Status().ClusterID; cid != c.nodes[leader].n.Status().ClusterID || cid == "" {
		t.Fatalf("pc-4 cluster id %q differs from the station's", cid)
	}
}

func TestRecoverAfterPermanentQuorumLoss(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	putItem(t, c.nodes[leader].n, "XC-L-0001")
	acked := writeConcurrently(t, c, "q", 20)
	for _, tn := range c.nodes {
		eventually(t, tn.id+" has every case", func() bool { return caseCount(t, tn.n) == len(acked) })
	}
	for i := range c.nodes {
		c.stop(i)
	}
	// pc-2 and pc-3 are gone for good; pc-1 becomes a station of one.
	servers := []raft.Server{{ID: "pc-1", Address: raft.ServerAddress(c.nodes[0].addr), Suffrage: raft.Voter}}
	if err := Recover(c.config(0, testLogger(t)), servers); err != nil {
		t.Fatal(err)
	}
	c.nodes = c.nodes[:1]
	c.start(0)
	if got := c.waitLeader(); got != 0 {
		t.Fatalf("leader %d", got)
	}
	n := c.nodes[0].n
	if got := caseCount(t, n); got != len(acked) {
		t.Fatalf("%d cases after recovery, want %d", got, len(acked))
	}
	if err := createCase(n, ctx(t), "after-recovery"); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	if m := n.Status().Members; len(m) != 1 {
		t.Fatalf("members after recovery: %+v", m)
	}
}

func TestRemoveMember(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	f := c.follower(leader)
	if err := c.nodes[f].n.RemoveMember(ctx(t), c.nodes[leader].id, false); err == nil {
		t.Fatal("the leader removed itself")
	}
	if err := c.nodes[f].n.RemoveMember(ctx(t), "pc-9", false); err == nil {
		t.Fatal("removed an unknown member")
	}
	// Through a follower: forwarded to the leader.
	victim := 3 - leader - f
	c.stop(victim)
	eventually(t, "the leader sees the stopped member unreachable and the other reachable", func() bool {
		ok := 0
		for _, m := range c.nodes[leader].n.Status().Members {
			if (m.ID == c.nodes[victim].id && !m.Reachable) || (m.ID == c.nodes[f].id && m.Reachable) {
				ok++
			}
		}
		return ok == 2
	})
	if err := c.nodes[f].n.RemoveMember(ctx(t), c.nodes[victim].id, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two members left", func() bool { return len(c.nodes[leader].n.Status().Members) == 2 })
	// The two left still commit.
	putItem(t, c.nodes[f].n, "XC-L-0001")
}

// logLines is a slog handler target that tests can search.
type logLines struct {
	mu  sync.Mutex
	buf []byte
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *logLines) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(string(l.buf), substr)
}

func certFingerprint(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "node.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("node.crt: no PEM block")
	}
	return pki.Fingerprint(blk.Bytes)
}

// An mDNS announcement is only a hint: one whose fingerprint or node does
// not match the certificate presented at its address admits no one, and
// announcements of other stations are ignored; each is logged once. The
// same node announced truthfully is admitted.
func TestFalseAnnouncementsAdmitNoOne(t *testing.T) {
	var (
		hintMu sync.Mutex
		hints  []Hint
	)
	logs := &logLines{}
	c := newTestCluster(t, 1, func(cfg *Config) {
		if cfg.NodeID != "pc-1" {
			cfg.Expect = 2
			return
		}
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
		cfg.Discover = func() []Hint {
			hintMu.Lock()
			defer hintMu.Unlock()
			return append([]Hint(nil), hints...)
		}
	})
	leader := c.waitLeader()
	// pc-2 of this station, waiting for a second node before it would
	// bootstrap: it only becomes a member if the leader admits it.
	addr := freeUDPAddr(t)
	pc2 := c.newNode("pc-2", c.station, addr, []string{addr})
	c.nodes = append(c.nodes, pc2)
	c.start(1)
	fp := certFingerprint(t, pc2.dir)
	other := c.newNode("pc-9", "XC-IP-02", freeUDPAddr(t), nil)

	hintMu.Lock()
	hints = []Hint{
		{Addr: addr, Station: c.station, Node: "pc-2", Fingerprint: strings.Repeat("0", 64)}, // wrong certificate
		{Addr: addr, Station: c.station, Node: "pc-7", Fingerprint: fp},                      // wrong node
		{Addr: other.addr, Station: other.station, Node: other.id},                           // another station
	}
	hintMu.Unlock()
	eventually(t, "the false announcements are logged", func() bool {
		return logs.count("does not match the certificate") == 2 && logs.count("another station ignored") == 1
	})
	time.Sleep(2500 * time.Millisecond) // several more admission rounds
	if n := len(c.nodes[leader].n.Status().Members); n != 1 {
		t.Fatalf("members = %d after false announcements, want 1", n)
	}
	if m, o := logs.count("does not match the certificate"), logs.count("another station ignored"); m != 2 || o != 1 {
		t.Fatalf("logged %d mismatches and %d other-station announcements, want each once (2 and 1)", m, o)
	}

	hintMu.Lock()
	hints = append(hints, Hint{Addr: addr, Station: c.station, Node: "pc-2", Fingerprint: fp})
	hintMu.Unlock()
	eventually(t, "pc-2, announced truthfully, is a member", func() bool {
		return len(c.nodes[leader].n.Status().Members) == 2
	})
}

// A write on a follower is answered once the follower applied it, which
// needs the leader to tell it the entry committed. With no other traffic
// hashicorp/raft would only do that after CommitTimeout: the leader's
// barrier after a forwarded write makes it immediate. With a CommitTimeout
// of 20 s, ten follower writes in a row finish well inside it.
func TestFollowerWriteDoesNotWaitForCommitTimeout(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.CommitTimeout = 20 * time.Second })
	leader := c.waitLeader()
	f := c.nodes[c.follower(leader)].n
	putItem(t, f, "XC-L-0001")
	cx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i := range 10 {
		if err := createCase(f, cx, fmt.Sprintf("kick-%d", i)); err != nil {
			t.Fatalf("write %d through the follower: %v (the commit index reached it only with the next CommitTimeout?)", i, err)
		}
		if !hasCase(f, fmt.Sprintf("kick-%d", i)) {
			t.Fatalf("write %d answered before the follower applied it", i)
		}
	}
	// A write on the leader reaches the followers' state as soon.
	if err := createCase(c.nodes[leader].n, cx, "on-leader"); err != nil {
		t.Fatal(err)
	}
	for !hasCase(f, "on-leader") {
		if cx.Err() != nil {
			t.Fatal("a write on the leader reached the follower only with the next CommitTimeout")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Writes submitted on the leader one after another need no barrier each:
// the next write's entry carries the commit index. Sequential writes
// therefore add about one raft entry each (a barrier per write would add
// two), and the last one still reaches the followers without waiting for
// CommitTimeout.
func TestLeaderWritesInARowSkipBarriers(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.CommitTimeout = 20 * time.Second })
	leader := c.waitLeader()
	l := c.nodes[leader].n
	putItem(t, l, "XC-L-0001")
	cx := ctx(t)
	before := l.r().LastIndex()
	const writes = 40
	for i := range writes {
		if err := createCase(l, cx, fmt.Sprintf("row-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if added := l.r().LastIndex() - before; added > writes+writes/4 {
		t.Errorf("%d writes in a row added %d raft entries: a barrier after most of them", writes, added)
	}
	f := c.nodes[c.follower(leader)].n
	for !hasCase(f, fmt.Sprintf("row-%d", writes-1)) {
		if cx.Err() != nil {
			t.Fatal("the last write reached the follower only with the next CommitTimeout")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Writes forwarded by a follower need no barrier each: the leader tells
// the followers of the commit with a notice that carries no entry (no
// fsync), so sequential writes add about one raft entry each.
func TestFollowerWritesNeedNoBarrier(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.CommitTimeout = 20 * time.Second })
	leader := c.waitLeader()
	l, f := c.nodes[leader].n, c.nodes[c.follower(leader)].n
	putItem(t, f, "XC-L-0001")
	cx := ctx(t)
	before := l.r().LastIndex()
	const writes = 40
	for i := range writes {
		id := fmt.Sprintf("fw-%d", i)
		if err := createCase(f, cx, id); err != nil {
			t.Fatalf("write %d through the follower: %v", i, err)
		}
		if !hasCase(f, id) {
			t.Fatalf("write %d answered before the follower applied it", i)
		}
	}
	if added := l.r().LastIndex() - before; added > writes+writes/4 {
		t.Errorf("%d forwarded writes added %d raft entries: a barrier after most of them", writes, added)
	}
}

// With one follower down, the notices to it go unanswered: writes through
// the other follower are still answered at once (its notices, or the
// barrier that follows a failed one), not after CommitTimeout.
func TestFollowerWritesWithAPeerDown(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.CommitTimeout = 20 * time.Second })
	leader := c.waitLeader()
	f := c.follower(leader)
	var down int
	for i := range c.nodes {
		if i != leader && i != f {
			down = i
		}
	}
	putItem(t, c.nodes[f].n, "XC-L-0001")
	c.stop(down)
	cx := ctx(t)
	for i := range 20 {
		id := fmt.Sprintf("down-%d", i)
		if err := createCase(c.nodes[f].n, cx, id); err != nil {
			t.Fatalf("write %d through the follower with %s down: %v (waited for CommitTimeout?)", i, c.nodes[down].id, err)
		}
		if !hasCase(c.nodes[f].n, id) {
			t.Fatalf("write %d answered before the follower applied it", i)
		}
	}
}

// A follower gathers concurrent writes into batches of up to
// maxBatchBytes and forwards them: the leader takes such a batch even
// though it is larger than one write may be.
func TestForwardedBatchLargerThanOneWrite(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	f := c.nodes[c.follower(leader)].n
	putItem(t, f, "XC-L-0001")
	big := json.RawMessage(`{"note":"` + strings.Repeat("x", 15<<10) + `"}`)
	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("big-%02d", i)
			ops := []records.Op{newCase(id)}
			for j := range 3 {
				ev := records.Event{Type: records.EventAccepted, Actor: "clerk", Data: big}
				if j > 0 {
					ev.Type = records.EventPaused
				}
				records.PrepareEvent(&ev, id, "pc", records.NewClock(nil).Now())
				ops = append(ops, records.Op{Kind: records.OpAppendEvent, Event: &ev})
			}
			// A loaded machine may change leaders meanwhile: the same
			// ids again, as a client does.
			cx := ctx(t)
			for {
				_, err := f.Submit(cx, ops)
				if (errors.Is(err, ErrNoLeader) || errors.Is(err, ErrOutcomeUnknown)) && cx.Err() == nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("write %s (%d ops): %w", id, len(ops), err)
				}
				return
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Status().AppliedIndex of a node catching up never claims entries its
// state does not hold yet: whenever it reaches the leader's index, the
// node's feed is the leader's.
func TestAppliedIndexMeansInTheState(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	putItem(t, c.nodes[leader].n, "XC-L-0001")
	lag := (leader + 1) % 3
	c.stop(lag)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				if err := createCase(c.nodes[leader].n, ctx(t), fmt.Sprintf("ai-%d-%d", w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	want := c.nodes[leader].n.Status()
	c.start(lag)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := c.nodes[lag].n.Status()
		if st.AppliedIndex >= want.AppliedIndex {
			if st.Seq < want.Seq {
				t.Fatalf("applied index %d (leader's %d) claimed with feed seq %d of %d", st.AppliedIndex, want.AppliedIndex, st.Seq, want.Seq)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no catch-up: applied %d of %d", st.AppliedIndex, want.AppliedIndex)
		}
		time.Sleep(time.Millisecond)
	}
}

// A node whose last snapshot ends in entries the FSM never sees (the
// barrier after each write) does not restore that snapshot when it starts:
// its state already holds everything (a 1 GB snapshot took minutes).
func TestRestartAfterSnapshotEndingInBarrierRestoresNothing(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	ln := c.nodes[leader].n
	putItem(t, ln, "XC-L-0001")
	writeConcurrently(t, c, "sb", 10)
	if err := ln.r().Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if err := ln.Snapshot(); err != nil {
		t.Fatal(err)
	}
	metas, err := ln.snapshots.List()
	if err != nil || len(metas) == 0 {
		t.Fatalf("no snapshot: %v", err)
	}
	if applied := ln.fsm.applied.Load(); metas[0].Index <= applied {
		t.Fatalf("snapshot at %d, FSM at %d: the snapshot does not end in a barrier", metas[0].Index, applied)
	}
	c.stop(leader)
	c.start(leader)
	if n := c.nodes[leader].n.fsm.restores.Load(); n != 0 {
		t.Fatalf("restored %d snapshots at start", n)
	}
	if got := caseCount(t, c.nodes[leader].n); got != 10 {
		t.Fatalf("%d cases after the restart, want 10", got)
	}
}
