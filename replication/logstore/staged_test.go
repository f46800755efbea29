package logstore

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// commitHold holds s's commits while armed: each waits until letGo (or
// at most 10 s); started is closed when the first one waits.
type commitHold struct {
	armed   atomic.Bool
	fail    error // set before letGo: held commits then fail with it
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func holdCommits(s *Store) *commitHold {
	h := &commitHold{started: make(chan struct{}), release: make(chan struct{})}
	var first sync.Once
	s.commit = func(txn *badger.Txn) error {
		if h.armed.Load() {
			first.Do(func() { close(h.started) })
			select {
			case <-h.release:
				if h.fail != nil {
					txn.Discard()
					return h.fail
				}
			case <-time.After(10 * time.Second):
			}
		}
		return txn.Commit()
	}
	return h
}

func (h *commitHold) letGo() { h.once.Do(func() { close(h.release) }) }

func TestStagedEntriesAreServedWhileTheyAreWritten(t *testing.T) {
	s, _ := openTest(t)
	if err := s.StoreLogs(testLogs(1, 3)); err != nil {
		t.Fatal(err)
	}
	batch := testLogs(4, 6)
	s.StageLogs(batch)
	h := holdCommits(s)
	h.armed.Store(true)
	stored := make(chan error, 1)
	go func() { stored <- s.StoreLogs(batch) }()
	<-h.started
	// The write is in flight: a badger read would wait for it; the staged
	// entries come from memory at once.
	got := make(chan error, 1)
	go func() {
		for _, want := range batch {
			var l raft.Log
			if err := s.GetLog(want.Index, &l); err != nil {
				got <- err
				return
			}
			if !equalLog(&l, want) {
				got <- fmt.Errorf("GetLog(%d) = %+v, want %+v", want.Index, l, *want)
				return
			}
		}
		got <- nil
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("GetLog of a staged entry waited for the write in flight")
	}
	h.letGo()
	if err := <-stored; err != nil {
		t.Fatal(err)
	}
	// Written: only the batch's last entry stays staged (the next
	// AppendEntries names it); all of it reads the same from badger.
	if len(s.staged) != 1 || s.staged[6] != batch[2] {
		t.Fatalf("staged after the write = %v, want only entry 6", s.staged)
	}
	for _, want := range testLogs(1, 6) {
		checkLog(t, s, want)
	}
}

func TestAFailedWriteUnstagesItsBatch(t *testing.T) {
	s, _ := openTest(t)
	if err := s.StoreLogs(testLogs(1, 3)); err != nil {
		t.Fatal(err)
	}
	s.StageLogs(testLogs(1, 3)[2:]) // entry 3 staged, as after its write
	batch := testLogs(4, 5)
	s.StageLogs(batch)
	s.commit = func(*badger.Txn) error { return errors.New("disk full") }
	if err := s.StoreLogs(batch); err == nil {
		t.Fatal("StoreLogs with a failing commit succeeded")
	}
	s.commit = (*badger.Txn).Commit
	checkMissing(t, s, 4)
	checkMissing(t, s, 5)
	checkLog(t, s, testLog(3, []byte("data-3")))
}

func TestStagedEntriesGoWhenTheLogDropsOrReplacesThem(t *testing.T) {
	s, _ := openTest(t)
	batch := testLogs(1, 3)
	s.StageLogs(batch)
	if err := s.StoreLogs(batch); err != nil {
		t.Fatal(err)
	}
	// A leader that stepped down has its tail truncated and written over
	// by the new leader's entries (not staged).
	if err := s.DeleteRange(3, 3); err != nil {
		t.Fatal(err)
	}
	checkMissing(t, s, 3)
	s.StageLogs(testLogs(3, 4))
	if err := s.StoreLogs(testLogs(3, 4)); err != nil {
		t.Fatal(err)
	}
	other := testLog(4, []byte("from the new leader"))
	other.Term = 9
	if err := s.StoreLogs([]*raft.Log{other}); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, other)
	if len(s.staged) != 0 {
		t.Fatalf("staged = %v, want none", s.staged)
	}
}

// stagedServer is one of three raft servers on Stores (the vendored
// raft) with in-memory transports, its commits holdable and its applied
// entries recorded.
type stagedServer struct {
	store *Store
	hold  *commitHold
	fsm   *recordFSM
	raft  *raft.Raft
}

// startStagedCluster starts three such servers and returns them and the
// leader, once it committed an entry of its term.
func startStagedCluster(t *testing.T) ([3]*stagedServer, *stagedServer) {
	t.Helper()
	var (
		servers [3]*stagedServer
		trans   [3]*raft.InmemTransport
		cfg     raft.Configuration
	)
	for i := range servers {
		s, err := Open(filepath.Join(t.TempDir(), "log"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		servers[i] = &stagedServer{store: s, hold: holdCommits(s), fsm: &recordFSM{}}
		_, trans[i] = raft.NewInmemTransport("")
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(fmt.Sprint(i)), Address: trans[i].LocalAddr()})
	}
	for i := range trans {
		for j := range trans {
			if i != j {
				trans[i].Connect(trans[j].LocalAddr(), trans[j])
			}
		}
	}
	for i, sv := range servers {
		c := raft.DefaultConfig()
		c.LocalID = cfg.Servers[i].ID
		c.LogOutput = io.Discard
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
		snaps := raft.NewInmemSnapshotStore()
		if err := raft.BootstrapCluster(c, sv.store, sv.store, snaps, trans[i], cfg); err != nil {
			t.Fatal(err)
		}
		r, err := raft.NewRaft(c, sv.fsm, sv.store, sv.store, snaps, trans[i])
		if err != nil {
			t.Fatal(err)
		}
		sv.raft = r
		t.Cleanup(func() { sv.hold.letGo(); r.Shutdown().Error() })
	}
	leader := waitStagedLeader(t, servers[:])
	if err := leader.raft.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	return servers, leader
}

// waitStagedLeader waits up to 10 s for one of servers to lead.
func waitStagedLeader(t *testing.T, servers []*stagedServer) *stagedServer {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, sv := range servers {
			if sv.raft.State() == raft.Leader {
				return sv
			}
		}
	}
	t.Fatal("no leader within 10 s")
	return nil
}

// waitFollowersHold waits up to 5 s for every server but leader to hold
// entry index in its log.
func waitFollowersHold(t *testing.T, servers [3]*stagedServer, leader *stagedServer, index uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, sv := range servers {
		if sv == leader {
			continue
		}
		for {
			if last, _ := sv.store.LastIndex(); last >= index {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a follower's log does not reach entry %d while the leader writes it: entries are sent only after the leader's write", index)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// recordFSM records the data of the entries it applies.
type recordFSM struct {
	mu      sync.Mutex
	applied []string
}

func (f *recordFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, string(l.Data))
	return nil
}

// count says how often f applied an entry with data.
func (f *recordFSM) count(data string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, d := range f.applied {
		if d == data {
			n++
		}
	}
	return n
}

func (*recordFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("no snapshots") }
func (*recordFSM) Restore(io.ReadCloser) error         { return errors.New("no snapshots") }

// TestLeaderSendsEntriesWhileItWritesThem runs three raft servers on
// Stores (the vendored raft, third_party/raft/PATCHES.md) and holds the
// leader's write of a new entry: the followers must receive the entry
// meanwhile, and the write must not be answered before the leader's own
// write returned.
func TestLeaderSendsEntriesWhileItWritesThem(t *testing.T) {
	servers, leader := startStagedCluster(t)

	want := leader.raft.LastIndex() + 1 // the entry about to be written
	leader.hold.armed.Store(true)
	f := leader.raft.Apply([]byte("held"), 10*time.Second)
	answered := make(chan error, 1)
	go func() { answered <- f.Error() }()
	<-leader.hold.started
	waitFollowersHold(t, servers, leader, want)
	// Both followers hold the entry, a majority without the leader; still
	// the leader answers only after its own write.
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-answered:
		t.Fatalf("the write was answered (%v) before the leader's own write returned", err)
	default:
	}
	leader.hold.letGo()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write was not answered after the leader's write returned")
	}
}

// TestLeaderLogWriteFailsAfterFollowersGotTheEntry: the failure path of
// the raft patch. The leader's own write of an entry fails after the
// followers received it: the write is answered with that error (the
// node calls the outcome unknown, replication.ErrOutcomeUnknown), the
// leader steps down as upstream's does, and the followers, a majority
// holding the entry, elect one of them, which commits it. Every server,
// the old leader included once its disk works again, applies it once.
func TestLeaderLogWriteFailsAfterFollowersGotTheEntry(t *testing.T) {
	servers, leader := startStagedCluster(t)
	want := leader.raft.LastIndex() + 1
	leader.hold.armed.Store(true)
	f := leader.raft.Apply([]byte("unknown outcome"), 10*time.Second)
	<-leader.hold.started
	waitFollowersHold(t, servers, leader, want)
	diskGone := errors.New("disk gone")
	leader.hold.fail = diskGone
	leader.hold.letGo()
	if err := f.Error(); !errors.Is(err, diskGone) {
		t.Fatalf("apply after the leader's log write failed: %v, want the write's error", err)
	}
	leader.hold.armed.Store(false) // the disk works again
	var others []*stagedServer
	for _, sv := range servers {
		if sv != leader {
			others = append(others, sv)
		}
	}
	next := waitStagedLeader(t, others) // the old leader's log is shorter: it cannot win
	if err := next.raft.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		done := true
		for _, sv := range servers {
			if sv.fsm.count("unknown outcome") != 1 {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			for i, sv := range servers {
				t.Logf("server %d (%v): applied the entry %d times", i, sv.raft.State(), sv.fsm.count("unknown outcome"))
			}
			t.Fatal("the entry the followers held was not applied once everywhere within 10 s")
		}
	}
}
