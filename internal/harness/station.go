package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stationsync/stationsync/internal/logtail"
	"github.com/stationsync/stationsync/internal/netns"
)

// Timeouts of process control. Each is a deadline for polling, not a sleep.
const (
	// ReadyTimeout bounds how long Start waits for a node's API to answer.
	ReadyTimeout = 20 * time.Second
	// StopTimeout bounds how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout = 15 * time.Second
	// KillTimeout bounds how long Kill waits for a killed process to be reaped.
	KillTimeout = 10 * time.Second
	// pollEvery is the polling period of every wait.
	pollEvery = 50 * time.Millisecond
	// logTailLines is how many lines of each node's log DumpLogs prints.
	logTailLines = 60
)

// Station is a station of N nodes, each a `stationsync run` process with
// its own folder under t.TempDir(): config, certificates, data and log.
type Station struct {
	t     testing.TB
	ID    string
	Dir   string // root folder: ca/ and one folder per node
	CADir string
	nodes []*Node
}

// Node is one node of a Station. Its fields are fixed when the station is
// made; Config may be edited and written back with Station.WriteConfig
// before the next Start.
type Node struct {
	Index      int
	ID         string // node_id, "pc-1" ...
	Station    string
	Dir        string // config, certificates and log
	ConfigPath string
	DataDir    string
	LogPath    string
	QUIC       string // QUIC (UDP) address, host:port: listen and peer address
	APIAddr    string // HTTP host:port
	URL        string // base URL of the HTTP API, "http://host:port"
	// Config is the node's YAML config as a map (keys of API.md).
	Config map[string]any
	// Env is added to the node's environment at its next start, e.g.
	// "STATIONSYNC_EXPECT=2" (see Environ).
	Env []string

	client *http.Client
	host   *netns.Host // with WithNetwork: the namespace the node runs in

	mu   sync.Mutex
	proc *process // nil when never started
}

// process is one run of a node.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // Wait's result, valid after done
}

// Option changes how NewStation sets up a station.
type Option func(*options)

type options struct {
	host       string // address every node listens on; 127.0.0.1
	config     []func(i int, cfg map[string]any)
	network    *netns.Network // WithNetwork: one host per node
	hostPrefix string         // WithHostPrefix; "h"
	peers      bool           // WithStaticPeers
}

// WithConfig edits each node's config map before it is written; i is the
// node's index. Keys are those of API.md (nested maps for tls, raft, log,
// limits). Setting a key to nil removes it.
func WithConfig(fn func(i int, cfg map[string]any)) Option {
	return func(o *options) { o.config = append(o.config, fn) }
}

// NewStation prepares (does not start) a station of n nodes: a CA made with
// `stationsync ca init`, a certificate per node from `stationsync ca
// issue`, and a config per node with expect n and every node as a static
// peer. Nodes are named pc-1 ... pc-n; node i's QUIC (UDP) listener and
// HTTP API (TCP) share one free port number. t.Cleanup kills the nodes still
// running when the test ends, and prints their logs if it failed.
//
// With [WithNetwork] each node runs in its own network namespace instead:
// see WithNetwork for its addresses and config.
func NewStation(t testing.TB, id string, n int, opts ...Option) *Station {
	t.Helper()
	if n < 1 {
		t.Fatalf("harness: NewStation %s: n = %d", id, n)
	}
	o := options{host: "127.0.0.1"}
	for _, opt := range opts {
		opt(&o)
	}
	root := t.TempDir()
	s := &Station{t: t, ID: id, Dir: root, CADir: filepath.Join(root, "ca")}
	// Registered after t.TempDir, so it runs before the folder is removed.
	t.Cleanup(func() {
		s.killAll()
		s.closeIdle()
		if t.Failed() {
			s.DumpLogs()
		}
	})
	// Each node's QUIC address (also its entry in the peer lists) and API
	// address.
	var quic, api, peers []string
	var hosts []*netns.Host
	if o.network != nil {
		hosts = networkHosts(t, o.network, o.hostPrefix, n)
		for _, h := range hosts {
			quic = append(quic, net.JoinHostPort(h.IP(), strconv.Itoa(NetworkQUICPort)))
			api = append(api, net.JoinHostPort("127.0.0.1", strconv.Itoa(NetworkAPIPort)))
		}
		if o.peers {
			peers = quic
		}
	} else {
		ports, err := FreePorts(o.host, n)
		if err != nil {
			t.Fatalf("harness: %v", err)
		}
		for i := range n {
			quic = append(quic, net.JoinHostPort(o.host, strconv.Itoa(ports[i])))
		}
		api, peers = quic, quic
	}
	MustRunCLI(t, "ca", "init", "--dir", s.CADir)
	for i := range n {
		nodeID := fmt.Sprintf("pc-%d", i+1)
		dir := filepath.Join(root, nodeID)
		MustRunCLI(t, "ca", "issue", "--ca", s.CADir, "--station", id, "--node", nodeID, "--out", dir)
		nd := &Node{
			Index:      i,
			ID:         nodeID,
			Station:    id,
			Dir:        dir,
			ConfigPath: filepath.Join(dir, "station.yaml"),
			DataDir:    filepath.Join(dir, "data"),
			LogPath:    filepath.Join(dir, "node.log"),
			QUIC:       quic[i],
			APIAddr:    api[i],
			URL:        "http://" + api[i],
			Config: map[string]any{
				"role":       "station",
				"station_id": id,
				"node_id":    nodeID,
				"data_dir":   "data",
				"listen":     quic[i],
				"api":        api[i],
				"expect":     n,
				"peers":      append([]string(nil), peers...),
				"mdns":       false,
				"tls":        map[string]any{"ca": "ca.crt", "cert": "node.crt", "key": "node.key"},
			},
			client: &http.Client{Timeout: HTTPTimeout},
		}
		if peers == nil {
			delete(nd.Config, "peers")
		}
		if hosts != nil {
			nd.host = hosts[i]
			nd.Config["advertise"] = ""
			nd.client = namespaceClient(hosts[i])
		}
		for _, fn := range o.config {
			fn(i, nd.Config)
		}
		s.nodes = append(s.nodes, nd)
		s.WriteConfig(i)
	}
	return s
}

// WithT returns the station bound to t, for use inside a subtest of the
// test that made it: its methods then fail t, not the parent (t.Fatal must
// be called from t's own goroutine). Nodes and cleanups are shared.
func (s *Station) WithT(t testing.TB) *Station {
	c := *s
	c.t = t
	return &c
}

// Len is the number of nodes.
func (s *Station) Len() int { return len(s.nodes) }

// Node returns node i (0-based).
func (s *Station) Node(i int) *Node {
	s.t.Helper()
	if i < 0 || i >= len(s.nodes) {
		s.t.Fatalf("harness: station %s has no node %d (it has %d)", s.ID, i, len(s.nodes))
	}
	return s.nodes[i]
}

// Nodes returns all nodes in index order.
func (s *Station) Nodes() []*Node { return append([]*Node(nil), s.nodes...) }

// Running returns the indexes of the nodes whose process is running.
func (s *Station) Running() []int {
	var out []int
	for i, n := range s.nodes {
		if n.Running() {
			out = append(out, i)
		}
	}
	return out
}

// WriteConfig writes node i's Config map to its config file; nil values
// are left out. A running node reads it at its next start.
func (s *Station) WriteConfig(i int) {
	s.t.Helper()
	n := s.Node(i)
	cfg := map[string]any{}
	for k, v := range n.Config {
		if v != nil {
			cfg[k] = v
		}
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		s.t.Fatalf("harness: config of %s: %v", n.ID, err)
	}
	b = append([]byte("# written by the stationsync test harness\n"), b...)
	if err := os.WriteFile(n.ConfigPath, b, 0o600); err != nil {
		s.t.Fatalf("harness: %v", err)
	}
}

// Start starts node i (`stationsync run --config`), its output appended to
// its log, and waits until its HTTP API answers (ReadyTimeout). It fails
// the test, with the log's tail, if the process exits first.
func (s *Station) Start(i int) {
	s.t.Helper()
	s.startProcess(i)
	s.waitReady(i)
}

// StartAll starts every node that is not running, then waits until each
// one's API answers.
func (s *Station) StartAll() {
	s.t.Helper()
	var started []int
	for i, n := range s.nodes {
		if !n.Running() {
			s.startProcess(i)
			started = append(started, i)
		}
	}
	for _, i := range started {
		s.waitReady(i)
	}
}

func (s *Station) startProcess(i int) {
	s.t.Helper()
	n := s.Node(i)
	if n.Running() {
		s.t.Fatalf("harness: start %s: already running", n.ID)
	}
	bin := Binary(s.t)
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatalf("harness: %v", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== harness: start %s at %s\n", n.ID, time.Now().Format(time.RFC3339Nano))
	var cmd *exec.Cmd
	if n.host != nil {
		// `ip netns exec` execs the node in place: cmd.Process is the node.
		cmd = n.host.Command(context.Background(), bin, "run", "--config", n.ConfigPath)
	} else {
		cmd = exec.Command(bin, "run", "--config", n.ConfigPath)
	}
	cmd.Dir = n.Dir
	cmd.Env = Environ(n.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("harness: start %s: %v", n.ID, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()
}

func (s *Station) waitReady(i int) {
	s.t.Helper()
	n := s.Node(i)
	p := n.process()
	deadline := time.Now().Add(ReadyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			s.t.Fatalf("harness: %s exited before its API answered: %v\n%s", n.ID, p.err, logtail.Tail(n.LogPath, 20))
		default:
		}
		if _, lastErr = n.statusTimeout(time.Second); lastErr == nil {
			return
		}
		time.Sleep(pollEvery)
	}
	logTail := logtail.Tail(n.LogPath, 20)
	stacks, err := n.Goroutines() // where it is stuck
	if err != nil {
		stacks = "no goroutine dump: " + err.Error()
	}
	s.t.Fatalf("harness: %s: API %s did not answer within %v: %v\n%s\n---- %s goroutines ----\n%s", n.ID, n.URL, ReadyTimeout, lastErr, logTail, n.ID, stacks)
}

// Kill sends node i SIGKILL and waits until the process is gone.
func (s *Station) Kill(i int) {
	s.t.Helper()
	n := s.Node(i)
	p := n.process()
	if p == nil || p.exited() {
		s.t.Fatalf("harness: kill %s: not running", n.ID)
	}
	if err := n.kill(); err != nil {
		s.t.Fatalf("harness: kill %s: %v", n.ID, err)
	}
}

// Stop sends node i SIGTERM and waits up to StopTimeout for it to exit,
// then kills it and fails the test. It returns the process's exit error:
// nil when it stopped cleanly with status 0.
func (s *Station) Stop(i int) error {
	s.t.Helper()
	n := s.Node(i)
	p := n.process()
	if p == nil || p.exited() {
		s.t.Fatalf("harness: stop %s: not running", n.ID)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Fatalf("harness: stop %s: %v", n.ID, err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(StopTimeout):
		_ = n.kill()
		s.t.Fatalf("harness: %s did not exit within %v of SIGTERM; killed it\n%s", n.ID, StopTimeout, logtail.Tail(n.LogPath, 20))
		return nil
	}
}

// Restart stops node i (SIGTERM) if it is running and starts it again.
func (s *Station) Restart(i int) {
	s.t.Helper()
	if s.Node(i).Running() {
		if err := s.Stop(i); err != nil {
			s.t.Errorf("harness: restart %s: it exited with %v on SIGTERM", s.Node(i).ID, err)
		}
	}
	s.Start(i)
}

// killAll kills every node still running (t.Cleanup).
func (s *Station) killAll() {
	for _, n := range s.nodes {
		if n.Running() {
			if err := n.kill(); err != nil {
				s.t.Errorf("harness: cleanup: %s: %v", n.ID, err)
			}
		}
	}
}

// WaitLeader waits until every running node names the same leader in the
// same term, and that leader is running and calls itself leader. It
// returns the leader's index and fails the test, with every node's last
// status, at the deadline.
func (s *Station) WaitLeader(timeout time.Duration) int {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		idx, why := s.leaderOnce()
		if idx >= 0 {
			return idx
		}
		last = why
		if time.Now().After(deadline) {
			s.t.Fatalf("harness: station %s: no agreed leader within %v: %s", s.ID, timeout, last)
		}
		time.Sleep(pollEvery)
	}
}

// leaderOnce returns the agreed leader's index, or -1 and why not.
func (s *Station) leaderOnce() (int, string) {
	running := s.Running()
	if len(running) == 0 {
		return -1, "no node is running"
	}
	var leader string
	var term uint64
	var report []string
	for k, i := range running {
		n := s.nodes[i]
		st, err := n.statusTimeout(time.Second)
		if err != nil {
			return -1, fmt.Sprintf("%s: %v", n.ID, err)
		}
		report = append(report, fmt.Sprintf("%s: %s term %d leader %q", n.ID, st.Raft.State, st.Raft.Term, st.Raft.Leader))
		if k == 0 {
			leader, term = st.Raft.Leader, st.Raft.Term
		}
		if st.Raft.Leader == "" || st.Raft.Leader != leader || st.Raft.Term != term {
			return -1, strings.Join(report, "; ") + " (no agreement yet)"
		}
	}
	for _, i := range running {
		n := s.nodes[i]
		if n.ID != leader {
			continue
		}
		st, err := n.statusTimeout(time.Second)
		if err != nil {
			return -1, fmt.Sprintf("%s: %v", n.ID, err)
		}
		if st.Raft.State != "leader" || st.Raft.Term != term {
			return -1, strings.Join(report, "; ") + fmt.Sprintf(" (%s is %s in term %d)", n.ID, st.Raft.State, st.Raft.Term)
		}
		return i, ""
	}
	return -1, strings.Join(report, "; ") + fmt.Sprintf(" (leader %q is not a running node)", leader)
}

// WaitSync waits until every running node reports the same non-empty
// cluster id and the same feed seq, stable over two polls, and returns
// that seq. Call it when no writes are in flight.
func (s *Station) WaitSync(timeout time.Duration) uint64 {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var prev string
	var last string
	for {
		seq, key, why := s.syncOnce()
		if why == "" && key == prev {
			return seq
		}
		prev, last = key, why
		if why == "" {
			last = "not yet stable: " + key
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("harness: station %s: nodes not in sync within %v: %s", s.ID, timeout, last)
		}
		time.Sleep(pollEvery)
	}
}

func (s *Station) syncOnce() (seq uint64, key, why string) {
	running := s.Running()
	if len(running) == 0 {
		return 0, "", "no node is running"
	}
	var report []string
	var cluster string
	agree := true
	for k, i := range running {
		n := s.nodes[i]
		st, err := n.statusTimeout(time.Second)
		if err != nil {
			return 0, "", fmt.Sprintf("%s: %v", n.ID, err)
		}
		report = append(report, fmt.Sprintf("%s: cluster %q seq %d applied %d", n.ID, st.Feed.ClusterID, st.Feed.Seq, st.Raft.AppliedIndex))
		if k == 0 {
			cluster, seq = st.Feed.ClusterID, st.Feed.Seq
		}
		if st.Feed.ClusterID == "" || st.Feed.ClusterID != cluster || st.Feed.Seq != seq {
			agree = false
		}
	}
	key = strings.Join(report, "; ")
	if !agree {
		return 0, key, key
	}
	return seq, key, ""
}

// DumpLogs prints the last lines of every node's log with t.Log. NewStation
// registers it to run when the test fails.
func (s *Station) DumpLogs() {
	for _, n := range s.nodes {
		where := ""
		if n.host != nil {
			where = fmt.Sprintf(" in netns %s (%s)", n.host.Namespace(), n.host.IP())
		}
		s.t.Logf("---- %s/%s%s log (%s), last %d lines ----\n%s", s.ID, n.ID, where, n.LogPath, logTailLines, logtail.Tail(n.LogPath, logTailLines))
	}
}

// Running reports whether the node's process is running.
func (n *Node) Running() bool {
	p := n.process()
	return p != nil && !p.exited()
}

// PID is the process id of the node's last run (0 if never started).
func (n *Node) PID() int {
	p := n.process()
	if p == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Wait waits up to timeout for the node's process to exit. It reports
// whether it exited (true also when it never ran) and its exit error (nil
// for status 0).
func (n *Node) Wait(timeout time.Duration) (exited bool, err error) {
	p := n.process()
	if p == nil {
		return true, nil
	}
	select {
	case <-p.done:
		return true, p.err
	case <-time.After(timeout):
		return false, nil
	}
}

func (n *Node) process() *process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

func (n *Node) kill() error {
	p := n.process()
	if p == nil {
		return nil
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(KillTimeout):
		return fmt.Errorf("pid %d not reaped within %v of SIGKILL", p.cmd.Process.Pid, KillTimeout)
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Goroutines ends the node's process with SIGQUIT, which makes the Go
// runtime print every goroutine's stack before it exits, and returns what
// the process printed from then on. For a node found stuck: the stacks
// show where. The node is not running afterwards.
func (n *Node) Goroutines() (string, error) {
	p := n.process()
	if p == nil || p.exited() {
		return "", fmt.Errorf("%s is not running", n.ID)
	}
	st, err := os.Stat(n.LogPath)
	if err != nil {
		return "", err
	}
	if err := p.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		return "", err
	}
	select {
	case <-p.done:
	case <-time.After(KillTimeout):
		n.kill()
	}
	f, err := os.Open(n.LogPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, st.Size(), 1<<26))
	return string(b), err
}
