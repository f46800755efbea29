package replication

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The heartbeat interval the node gives raft (third_party/raft's
// HeartbeatInterval patch) is valid for raft with every sensible pair of
// timeouts and keeps the margins heartbeatInterval promises.
func TestHeartbeatIntervalMargins(t *testing.T) {
	for _, tc := range []struct{ heartbeat, lease time.Duration }{
		{500 * time.Millisecond, 500 * time.Millisecond}, // the defaults
		{500 * time.Millisecond, 250 * time.Millisecond}, // the lease of configs before 2026-11-27
		{2 * time.Second, 2 * time.Second},
		{2 * time.Second, 100 * time.Millisecond},
		{50 * time.Millisecond, 50 * time.Millisecond}, // tests
	} {
		iv := heartbeatInterval(tc.heartbeat, tc.lease)
		// raft waits between iv and 2*iv before each heartbeat.
		if 2*iv > tc.heartbeat/2 || 2*iv > tc.lease*2/3 {
			t.Errorf("heartbeat %v, lease %v: interval %v leaves a follower or the lease less margin than promised", tc.heartbeat, tc.lease, iv)
		}
		c := raft.DefaultConfig()
		c.LocalID = "pc-1"
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.HeartbeatInterval = tc.heartbeat, tc.heartbeat, tc.lease, iv
		if err := raft.ValidateConfig(c); err != nil {
			t.Errorf("heartbeat %v, lease %v: raft refuses interval %v: %v", tc.heartbeat, tc.lease, iv, err)
		}
	}
	c := raft.DefaultConfig()
	c.LocalID = "pc-1"
	c.HeartbeatInterval = c.LeaderLeaseTimeout / 2
	if err := raft.ValidateConfig(c); err == nil {
		t.Error("raft accepts a heartbeat interval of half the lease: two waits of twice it would outlast the lease")
	}
}

// heartbeatCounter counts the heartbeats (AppendEntries without entries,
// previous entry or commit index) one server sends.
type heartbeatCounter struct {
	*raft.InmemTransport
	beats atomic.Int64

	mu   sync.Mutex
	sent map[raft.ServerID][]time.Time // when each heartbeat left, by follower
}

func (h *heartbeatCounter) AppendEntries(id raft.ServerID, target raft.ServerAddress, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if len(req.Entries) == 0 && req.PrevLogEntry == 0 && req.LeaderCommitIndex == 0 {
		h.beats.Add(1)
		h.mu.Lock()
		if h.sent == nil {
			h.sent = map[raft.ServerID][]time.Time{}
		}
		h.sent[id] = append(h.sent[id], time.Now())
		h.mu.Unlock()
	}
	return h.InmemTransport.AppendEntries(id, target, req, resp)
}

// sentBetween returns when heartbeats left for each follower between from
// and to.
func (h *heartbeatCounter) sentBetween(from, to time.Time) [][]time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out [][]time.Time
	for _, ts := range h.sent {
		var in []time.Time
		for _, t := range ts {
			if t.After(from) && t.Before(to) {
				in = append(in, t)
			}
		}
		out = append(out, in)
	}
	return out
}

type nopRaftFSM struct{}

func (nopRaftFSM) Apply(*raft.Log) any                 { return nil }
func (nopRaftFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("no snapshots here") }
func (nopRaftFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

// heartbeatCluster starts three raft servers with the node's default
// timeouts on in-memory transports that count heartbeats, and returns
// them, the index of the leader and the heartbeat interval.
func heartbeatCluster(t *testing.T) ([3]*heartbeatCounter, [3]*raft.Raft, int, time.Duration) {
	t.Helper()
	var cfg Config
	cfg.setDefaults()
	iv := heartbeatInterval(cfg.HeartbeatTimeout, cfg.LeaderLeaseTimeout)
	var (
		trans   [3]*heartbeatCounter
		rafts   [3]*raft.Raft
		servers raft.Configuration
	)
	for i := range trans {
		_, tr := raft.NewInmemTransport("")
		trans[i] = &heartbeatCounter{InmemTransport: tr}
		servers.Servers = append(servers.Servers, raft.Server{ID: raft.ServerID(fmt.Sprint("pc-", i)), Address: tr.LocalAddr()})
	}
	for i := range trans {
		for j := range trans {
			if i != j {
				trans[i].Connect(trans[j].LocalAddr(), trans[j].InmemTransport)
			}
		}
	}
	for i := range rafts {
		c := raft.DefaultConfig()
		c.LocalID = servers.Servers[i].ID
		c.LogOutput = io.Discard
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.CommitTimeout = cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout, cfg.CommitTimeout
		c.HeartbeatInterval = iv
		store, snaps := raft.NewInmemStore(), raft.NewInmemSnapshotStore()
		if err := raft.BootstrapCluster(c, store, store, snaps, trans[i], servers); err != nil {
			t.Fatal(err)
		}
		r, err := raft.NewRaft(c, nopRaftFSM{}, store, store, snaps, trans[i])
		if err != nil {
			t.Fatal(err)
		}
		rafts[i] = r
		t.Cleanup(func() { r.Shutdown().Error() })
	}
	leader := -1
	for deadline := time.Now().Add(10 * time.Second); leader < 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for i, r := range rafts {
			if r.State() == raft.Leader {
				leader = i
			}
		}
	}
	if leader < 0 {
		t.Fatal("no leader within 10 s")
	}
	if err := rafts[leader].Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	return trans, rafts, leader, iv
}

// TestLeaderSpacesHeartbeats: a leader of three raft servers with the
// node's defaults sends each follower a heartbeat at most every 125 ms
// (upstream raft: every 50-100 ms), to both followers at the same
// instants (third_party/raft's slotTimeout; upstream times each follower
// at random), and the followers, hearing from it at least every 250 ms,
// keep it leader.
func TestLeaderSpacesHeartbeats(t *testing.T) {
	trans, rafts, leader, iv := heartbeatCluster(t)
	term := rafts[leader].CurrentTerm()
	before, start := trans[leader].beats.Load(), time.Now()
	const window = 2 * time.Second
	time.Sleep(window)
	beats := trans[leader].beats.Load() - before
	// Every heartbeat to one follower left within a few milliseconds of
	// one to the other (the window's ends aside).
	sent := trans[leader].sentBetween(start.Add(iv), start.Add(window-iv))
	if len(sent) != 2 || len(sent[0]) == 0 {
		t.Fatalf("heartbeats in the window, by follower: %v", sent)
	}
	for _, at := range sent[0] {
		paired := false
		for _, other := range sent[1] {
			if d := at.Sub(other); d > -10*time.Millisecond && d < 10*time.Millisecond {
				paired = true
			}
		}
		if !paired {
			var others []time.Duration
			for _, other := range sent[1] {
				others = append(others, other.Sub(start).Round(time.Millisecond))
			}
			t.Errorf("a heartbeat to one follower at +%v has none to the other within 10 ms (to the other at %v)", at.Sub(start).Round(time.Millisecond), others)
			break
		}
	}
	// Two followers, each waited for at least iv between heartbeats (the
	// window may cut into one wait at each end).
	if most := 2 * (int64(window/iv) + 1); beats > most {
		t.Errorf("%d heartbeats to two followers in %v, want at most %d (one per %v each)", beats, window, most, iv)
	}
	if beats == 0 {
		t.Errorf("no heartbeats in %v", window)
	}
	if rafts[leader].State() != raft.Leader || rafts[leader].CurrentTerm() != term {
		t.Errorf("the leader lost its place (state %v, term %d, was %d) with heartbeats every %v-%v", rafts[leader].State(), rafts[leader].CurrentTerm(), term, iv, 2*iv)
	}
}

// A leader cut off from both followers steps down once its lease is out,
// with heartbeats on the slot clock (third_party/raft's third patch).
func TestLeaderStepsDownWithoutFollowers(t *testing.T) {
	trans, rafts, leader, _ := heartbeatCluster(t)
	var cfg Config
	cfg.setDefaults()
	trans[leader].DisconnectAll()
	cut := time.Now()
	for rafts[leader].State() == raft.Leader {
		if time.Since(cut) > 10*cfg.LeaderLeaseTimeout {
			t.Fatalf("still leader %v after losing both followers (lease %v)", time.Since(cut), cfg.LeaderLeaseTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("stepped down %v after losing both followers (lease %v)", time.Since(cut).Round(time.Millisecond), cfg.LeaderLeaseTimeout)
}
