package transport

import (
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

func raftAddr(s string) raft.ServerAddress { return raft.ServerAddress(s) }

// listFSM records applied entries.
type listFSM struct {
	mu      sync.Mutex
	entries []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(l.Data))
	return len(f.entries)
}

func (f *listFSM) snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.entries...)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnapshot{}, nil }
func (f *listFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type nopSnapshot struct{}

func (nopSnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (nopSnapshot) Release()                             {}

func TestRaftClusterOverQUIC(t *testing.T) {
	env := newPKI(t)
	level := hclog.Warn
	if testing.Verbose() {
		level = hclog.Info
	}
	type member struct {
		tr   *node
		fsm  *listFSM
		r    *raft.Raft
		ntr  *raft.NetworkTransport
		name string
	}
	var members []*member
	var servers []raft.Server
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		m := &member{name: name, fsm: &listFSM{}}
		m.tr = start(t, env.node(station("s1", name)), nil)
		m.ntr = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  m.tr.RaftLayer(),
			MaxPool: 3,
			Timeout: 2 * time.Second,
			Logger:  hclog.New(&hclog.LoggerOptions{Name: "raft-net-" + name, Level: level, Output: os.Stderr}),
		})
		members = append(members, m)
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(name), Address: m.ntr.LocalAddr()})
	}
	for i, m := range members {
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(m.name)
		conf.HeartbeatTimeout = 300 * time.Millisecond
		conf.ElectionTimeout = 300 * time.Millisecond
		conf.LeaderLeaseTimeout = 150 * time.Millisecond
		conf.CommitTimeout = 20 * time.Millisecond
		conf.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft-" + m.name, Level: level, Output: os.Stderr})
		store := raft.NewInmemStore()
		r, err := raft.NewRaft(conf, m.fsm, store, store, raft.NewInmemSnapshotStore(), m.ntr)
		if err != nil {
			t.Fatal(err)
		}
		m.r = r
		if i == 0 {
			if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	shutdown := func() {
		for _, m := range members {
			if m.r != nil {
				_ = m.r.Shutdown().Error()
				m.r = nil
			}
		}
	}
	defer shutdown()

	var leader *raft.Raft
	deadline := time.Now().Add(10 * time.Second)
	for leader == nil {
		for _, m := range members {
			if m.r.State() == raft.Leader {
				leader = m.r
			}
		}
		if leader == nil {
			if time.Now().After(deadline) {
				t.Fatal("no leader elected within 10s")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	want := []string{"one", "two", "three", "four", "five"}
	for _, e := range want {
		if err := leader.Apply([]byte(e), 5*time.Second).Error(); err != nil {
			t.Fatalf("Apply(%s): %v", e, err)
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	for _, m := range members {
		for {
			got := m.fsm.snapshot()
			if fmt.Sprint(got) == fmt.Sprint(want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s applied %v, want %v", m.name, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	begin := time.Now()
	shutdown()
	for _, m := range members {
		if err := m.tr.Close(); err != nil {
			t.Errorf("close transport %s: %v", m.name, err)
		}
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	t.Logf("raft shutdown + transport close took %v", time.Since(begin))
}
