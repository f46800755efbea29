package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	"sync/atomic"
	"syscall"
	"time"
)

// buildStation builds ../cmd/stationsync as `make build` does (trimpath,
// stripped) into dir and returns its path.
func buildStation(dir string) (string, error) {
	out := filepath.Join(dir, "stationsync")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/stationsync")
	cmd.Dir = ".."
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/stationsync: %v\n%s", err, buf.String())
	}
	return out, nil
}

// freePort returns a port number free for both TCP and UDP on 127.0.0.1
// (a node's QUIC listener and its HTTP API share the number, as in the
// test harness).
func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		l.Close()
		if err == nil {
			u.Close()
			// The kernel may hand a just-closed port out again before its
			// first user binds it: never give the same port twice (etcd
			// refused a cluster with a duplicate URL).
			if portsGiven[p] {
				continue
			}
			portsGiven[p] = true
			return p, nil
		}
	}
	return 0, errors.New("no free port")
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

type stationNode struct {
	id      string
	dir     string
	addr    string // host:port, QUIC (UDP) and API (TCP)
	url     string
	pprof   string // the node's profiling listener (daemon `pprof:`), host:port
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	started time.Time
}

type station struct {
	bin   string
	root  string
	nodes []*stationNode
}

func run(bin string, args ...string) error {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return nil
}

// newStation makes a CA, three node certificates and configs (static
// peers, mdns off) under root with the real CLI.
func newStation(bin, root string, n int) (*station, error) {
	s := &station{bin: bin, root: root}
	caDir := filepath.Join(root, "ca")
	if err := run(bin, "ca", "init", "--dir", caDir); err != nil {
		return nil, err
	}
	var peers []string
	for range n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		peers = append(peers, fmt.Sprintf("127.0.0.1:%d", p))
	}
	for i := range n {
		id := fmt.Sprintf("pc-%d", i+1)
		dir := filepath.Join(root, id)
		if err := run(bin, "ca", "issue", "--ca", caDir, "--station", "BENCH-01", "--node", id, "--out", dir); err != nil {
			return nil, err
		}
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		pprofAddr := fmt.Sprintf("127.0.0.1:%d", pp)
		var cfg strings.Builder
		fmt.Fprintf(&cfg, "role: station\nstation_id: BENCH-01\nnode_id: %s\ndata_dir: data\nlisten: %s\napi: %s\npprof: %s\nexpect: %d\nmdns: false\npeers:\n", id, peers[i], peers[i], pprofAddr, n)
		for _, p := range peers {
			fmt.Fprintf(&cfg, "  - %s\n", p)
		}
		cfg.WriteString("tls:\n  ca: ca.crt\n  cert: node.crt\n  key: node.key\n")
		if err := os.WriteFile(filepath.Join(dir, "station.yaml"), []byte(cfg.String()), 0o600); err != nil {
			return nil, err
		}
		s.nodes = append(s.nodes, &stationNode{id: id, dir: dir, addr: peers[i], url: "http://" + peers[i], pprof: pprofAddr, logPath: filepath.Join(dir, "node.log")})
	}
	return s, nil
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STATIONSYNC_") {
			env = append(env, kv)
		}
	}
	return env
}

func (s *station) start(i int) error {
	n := s.nodes[i]
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== bench: start %s at %s\n", n.id, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(s.bin, "run", "--config", filepath.Join(n.dir, "station.yaml"))
	cmd.Dir = n.dir
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	n.started = time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd = cmd
	n.done = make(chan struct{})
	go func() { cmd.Wait(); close(n.done) }()
	return nil
}

func (n *stationNode) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

func (n *stationNode) pid() int { return n.cmd.Process.Pid }

func (n *stationNode) kill() {
	if n.running() {
		n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.done
	}
}

func (s *station) killAll() {
	for _, n := range s.nodes {
		n.kill()
	}
}

type nodeStatus struct {
	Node string `json:"node"`
	Raft struct {
		State  string `json:"state"`
		Term   uint64 `json:"term"`
		Leader string `json:"leader"`
		// LastLogIndex: the last raft entry in this node's log.
		LastLogIndex uint64 `json:"last_log_index"`
	} `json:"raft"`
}

var statusClient = &http.Client{Timeout: time.Second}

func (n *stationNode) status() (nodeStatus, error) {
	var st nodeStatus
	resp, err := statusClient.Get(n.url + "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("status %d", resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// lastIndex is the highest last raft log index among the running nodes
// that answer (0 if none does).
func (s *station) lastIndex() uint64 {
	var last uint64
	for _, n := range s.nodes {
		if !n.running() {
			continue
		}
		if st, err := n.status(); err == nil {
			last = max(last, st.Raft.LastLogIndex)
		}
	}
	return last
}

// waitReady waits until node i's API answers /v1/status and returns the
// time from process start.
func (s *station) waitReady(i int, timeout time.Duration) (time.Duration, error) {
	n := s.nodes[i]
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !n.running() {
			return 0, fmt.Errorf("%s exited before its API answered; log %s", n.id, n.logPath)
		}
		if _, err := n.status(); err == nil {
			return time.Since(n.started), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s: API did not answer within %v; log %s", n.id, timeout, n.logPath)
}

// waitLeader waits until every running node names the same leader, which
// calls itself leader, and returns its index.
func (s *station) waitLeader(timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		leader, idx, ok := "", -1, true
		for i, n := range s.nodes {
			if !n.running() {
				continue
			}
			st, err := n.status()
			if err != nil || st.Raft.Leader == "" || (leader != "" && st.Raft.Leader != leader) {
				ok = false
				last = fmt.Sprintf("%s: %+v %v", n.id, st, err)
				break
			}
			leader = st.Raft.Leader
			if st.Node == leader && st.Raft.State == "leader" {
				idx = i
			}
		}
		if ok && idx >= 0 {
			return idx, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return -1, fmt.Errorf("no agreed leader within %v: %s", timeout, last)
}

func (s *station) pids() []int {
	var out []int
	for _, n := range s.nodes {
		if n.running() {
			out = append(out, n.pid())
		}
	}
	return out
}

// ---- HTTP workload ----

var payload = func() string {
	// ~1 KiB of JSON-safe text.
	return strings.Repeat("0123456789abcdef", 64)
}()

func eventBody(typ string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "actor": "bench", "data": map[string]any{"note": payload}})
	return b
}

var (
	bodyAccepted = eventBody("accepted")
	bodyPaused   = eventBody("paused")
	bodyResumed  = eventBody("resumed")
)

// eventsPerCase: each client writes this many events to a case, then opens
// a new one (a case is one record rewritten on each event, so a case that
// grew without bound would measure the record size, not the write path).
const eventsPerCase = 16

func newHTTPClient(conns int) *http.Client {
	tr := &http.Transport{MaxIdleConns: conns * 4, MaxIdleConnsPerHost: conns * 2, IdleConnTimeout: time.Minute, DisableCompression: true}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// post sends body and returns the status code, draining the answer.
func post(ctx context.Context, c *http.Client, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 && resp.StatusCode != 202 {
		msg := string(b)
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return resp.StatusCode, fmt.Errorf("HTTP %d: %s", resp.StatusCode, msg)
	}
	return resp.StatusCode, nil
}

func putItem(url string) error {
	req, _ := http.NewRequest("PUT", url+"/v1/items/BENCH-0001", strings.NewReader(`{"name":"bench item","type":{"code":"20"}}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("PUT item: %d %s", resp.StatusCode, b)
	}
	return nil
}

var caseSeq atomic.Uint64

// httpClientState is one client's current case.
type httpClientState struct {
	caseID string
	n      int // events written to it
}

// httpWorkload returns the ops of client w posting case events through
// node (first+w)%3's HTTP API. prepare opens a new case (one per
// eventsPerCase events); it runs before the clock of an op starts, so
// latencies are those of event POSTs only.
func (s *station) httpWorkload(clients, first int, creates *atomic.Int64) (prepareFunc, opFunc) {
	hc := newHTTPClient(clients)
	st := make([]httpClientState, clients)
	run := time.Now().UnixNano()
	prepare := func(ctx context.Context, w int) error {
		n := s.nodes[(first+w)%len(s.nodes)]
		cs := &st[w]
		if cs.caseID != "" && cs.n < eventsPerCase {
			return nil
		}
		id := fmt.Sprintf("b%x-%d", run, caseSeq.Add(1))
		body := fmt.Sprintf(`{"id":%q,"item_code":"BENCH-0001","channel":"window","actor":"bench","applicant":{"kind":"person","name":"bench"}}`, id)
		if _, err := post(ctx, hc, n.url+"/v1/cases", []byte(body)); err != nil {
			return fmt.Errorf("create case: %w", err)
		}
		creates.Add(1)
		cs.caseID, cs.n = id, 0
		return nil
	}
	op := func(ctx context.Context, w int) (bool, error) {
		return postEvent(ctx, hc, s.nodes[(first+w)%len(s.nodes)].url, &st[w])
	}
	return prepare, op
}

func postEvent(ctx context.Context, hc *http.Client, url string, cs *httpClientState) (bool, error) {
	body := bodyAccepted
	if cs.n > 0 {
		if cs.n%2 == 1 {
			body = bodyPaused
		} else {
			body = bodyResumed
		}
	}
	code, err := post(ctx, hc, url+"/v1/cases/"+cs.caseID+"/events", body)
	if err != nil {
		// A refused step would repeat forever: start a new case.
		cs.n = eventsPerCase
		return false, err
	}
	cs.n++
	return code == 202, nil
}

// ---- failover ----

type failoverRun struct {
	Took    time.Duration
	Pending int // 202 answers seen during the run
	Errors  int
	Killed  string
	Elected time.Duration // until both survivors name the same new leader (0: not seen)
}

// failover kills the leader with SIGKILL and measures until a case write
// through a surviving node answers 201. Writes are launched every 20 ms
// (alternating surviving nodes), each in its own request, so one slow
// attempt does not hide the moment the station accepts writes again.
func (s *station) failover() (failoverRun, error) {
	li, err := s.waitLeader(30 * time.Second)
	if err != nil {
		return failoverRun{}, err
	}
	var survivors []*stationNode
	for i, n := range s.nodes {
		if i != li {
			survivors = append(survivors, n)
		}
	}
	hc := newHTTPClient(8)
	hc.Timeout = 10 * time.Second
	// Warm the connections.
	for _, n := range survivors {
		statusClient.Get(n.url + "/v1/status")
	}
	res := failoverRun{Killed: s.nodes[li].id}
	var mu sync.Mutex
	success := make(chan time.Duration, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.nodes[li].cmd.Process.Signal(syscall.SIGKILL)
	t0 := time.Now()
	var wg sync.WaitGroup
	killed := s.nodes[li].id
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil && time.Since(t0) < 30*time.Second {
			a, errA := survivors[0].status()
			b, errB := survivors[1%len(survivors)].status()
			if errA == nil && errB == nil && a.Raft.Leader != "" && a.Raft.Leader != killed && a.Raft.Leader == b.Raft.Leader {
				mu.Lock()
				res.Elected = time.Since(t0)
				mu.Unlock()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(30 * time.Second)
	k := 0
loop:
	for {
		n := survivors[k%len(survivors)]
		k++
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("fo%x-%d", t0.UnixNano(), caseSeq.Add(1))
			body := fmt.Sprintf(`{"id":%q,"item_code":"BENCH-0001","channel":"window","actor":"bench","applicant":{"kind":"person","name":"bench"}}`, id)
			code, err := post(ctx, hc, n.url+"/v1/cases", []byte(body))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				if ctx.Err() == nil {
					res.Errors++
				}
			case code == 202:
				res.Pending++
			case code == 201:
				select {
				case success <- time.Since(t0):
				default:
				}
			}
		}()
		select {
		case d := <-success:
			res.Took = d
			break loop
		case <-timeout:
			cancel()
			wg.Wait()
			<-s.nodes[li].done
			return res, errors.New("no write succeeded within 30 s of killing the leader")
		case <-tick.C:
		}
	}
	cancel()
	wg.Wait()
	<-s.nodes[li].done
	return res, nil
}

// restartNode starts node i again and waits for an agreed leader.
func (s *station) restartNode(i int) error {
	if err := s.start(i); err != nil {
		return err
	}
	if _, err := s.waitReady(i, 30*time.Second); err != nil {
		return err
	}
	_, err := s.waitLeader(30 * time.Second)
	return err
}

func (s *station) leaderIndexByID(id string) int {
	for i, n := range s.nodes {
		if n.id == id {
			return i
		}
	}
	return -1
}

func itoa(i int) string { return strconv.Itoa(i) }
