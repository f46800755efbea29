package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stationsync/stationsync/internal/logtail"
	"github.com/stationsync/stationsync/records"
)

// Section "catchup": a node is stopped, the two others commit N events,
// the node restarts; how long until it has them all. Same for an etcd
// member.

func init() {
	addSection(section{name: "catchup", run: runCatchupSection, markdown: catchupMarkdown})
}

// catchupRun is one system's catch-up.
type catchupRun struct {
	ok        bool          // caught up within the wait
	events    int64         // events (values) committed while the node was down
	loadErrs  int64         // failed calls during the load (retried)
	load      time.Duration // committing them through the 2 other nodes
	behind    uint64        // raft entries between the stopped node and the leader at restart
	open      time.Duration // restart until the node/process is up (stationsync: Open returned; etcd: Status answers)
	catchup   time.Duration // restart until its applied index reaches the leader's commit index
	logged    time.Duration // stationsync: restart until its raft log reaches the leader's commit index
	how       string        // snapshot install or log replay, as far as can be told
	firstErr  string
	stoppedID string
}

type catchupResults struct {
	target, clients, perCall int
	station, etcd            catchupRun
}

const catchupTarget = 10 * time.Second

var catchupProfile = flag.String("catchup-profile", "", "catchup section: write a CPU profile of the bench process (the in-process cluster) from the node's restart until it caught up")

func runCatchupSection(rep *report, root string, smoke bool) {
	res := &rep.sec.catchup
	res.target, res.clients, res.perCall = 100_000, 64, eventsPerCase
	wait := 120 * time.Second // catch-up wait
	loadWait := 10 * time.Minute
	if smoke {
		res.target = 2_000
		wait, loadWait = 20*time.Second, 60*time.Second
	}
	res.station = catchupStation(rep, filepath.Join(root, "stationsync"), res.target, res.clients, res.perCall, loadWait, wait)
	res.etcd = catchupEtcd(rep, filepath.Join(root, "etcd"), res.target, res.clients, loadWait, wait)
}

// loadChunks commits target items in chunks of at most per through
// clients workers: do commits one chunk and returns how many of its items
// were committed (a failed rest is retried). It stops at the deadline.
func loadChunks(target, per, clients int, deadline time.Duration, do func(ctx context.Context, w, n int) (int, error)) (done, errs int64, first string, took time.Duration) {
	chunks := make(chan int, target/per+1)
	for left := target; left > 0; left -= per {
		chunks <- min(per, left)
	}
	var doneN, errN atomic.Int64
	var mu sync.Mutex
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && doneN.Load() < int64(target) {
				var n int
				select {
				case n = <-chunks:
				default:
					return // the rest is on its way in other workers (or requeued and taken)
				}
				got, err := do(ctx, w, n)
				doneN.Add(int64(got))
				if got < n {
					chunks <- n - got
				}
				if err != nil {
					errN.Add(1)
					mu.Lock()
					if first == "" {
						first = err.Error()
					}
					mu.Unlock()
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	// A chunk requeued after the other workers left: finish it here.
	for ctx.Err() == nil && doneN.Load() < int64(target) {
		n := <-chunks
		got, err := do(ctx, 0, n)
		doneN.Add(int64(got))
		if got < n {
			chunks <- n - got
		}
		if err != nil {
			errN.Add(1)
			if first == "" {
				first = err.Error()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return doneN.Load(), errN.Load(), first, time.Since(start)
}

// ---- stationsync ----

func catchupStation(rep *report, root string, target, clients, per int, loadWait, wait time.Duration) catchupRun {
	var run catchupRun
	c, err := newSectionCluster(root, 3, false)
	if err != nil {
		rep.fail("catchup stationsync: %v", err)
		return run
	}
	defer c.Close()
	const down = 2 // node 3
	run.stoppedID = c.ids[down]
	appliedAtStop := c.nodes[down].Status().AppliedIndex
	snapDir := filepath.Join(c.cfgs[down].DataDir, "snapshots", "snapshots")
	before := snapshotNames(snapDir)
	c.stopNode(down)

	// Write through nodes 1 and 2: per client, a case (untimed in the
	// Go-API rows, counted in the load time here) and then per events on
	// it in one Submit.
	do := func(ctx context.Context, w, n int) (int, error) {
		i := w % 2
		cse := records.Case{ID: fmt.Sprintf("cu%x-%d", time.Now().UnixNano(), caseSeq.Add(1)), ItemCode: "BENCH-0001", Channel: "window", Actor: "bench", Applicant: records.Applicant{Kind: "person", Name: "bench"}}
		if err := cse.Validate(); err != nil {
			return 0, err
		}
		records.PrepareCase(&cse, "BENCH-01", c.ids[i], c.clocks[i].Now())
		if err := c.submit(ctx, i, records.Op{Kind: records.OpCreateCase, Case: &cse}); err != nil {
			return 0, fmt.Errorf("create case: %w", err)
		}
		ops := make([]records.Op, n)
		for k := range ops {
			typ := records.EventAccepted
			if k > 0 {
				typ = records.EventPaused
				if k%2 == 0 {
					typ = records.EventResumed
				}
			}
			ev := records.Event{Type: typ, Actor: "bench", Data: notePayload}
			records.PrepareEvent(&ev, cse.ID, c.ids[i], c.clocks[i].Now())
			ops[k] = records.Op{Kind: records.OpAppendEvent, Event: &ev}
		}
		res, err := c.nodes[i].Submit(ctx, ops)
		if err != nil {
			return 0, err
		}
		got := 0
		var first error
		for _, r := range res {
			if r.Error == nil {
				got++
			} else if first == nil {
				first = r.Error
			}
		}
		if first != nil {
			return got, fmt.Errorf("event: %v", first)
		}
		return got, nil
	}
	run.events, run.loadErrs, run.firstErr, run.load = loadChunks(target, per, clients, loadWait, do)
	fmt.Printf("bench: catchup stationsync: %d events committed with %s down in %v (%d failed calls)\n", run.events, run.stoppedID, run.load.Round(time.Millisecond), run.loadErrs)
	if run.events == 0 {
		rep.fail("catchup stationsync: no successful write while %s was down (first error: %s)", run.stoppedID, run.firstErr)
		return run
	}
	if run.events < int64(target) {
		rep.fail("catchup stationsync: only %d of %d events committed within %v (first error: %s)", run.events, target, loadWait, run.firstErr)
	}
	// The leader's commit index, and its feed seq: Status.AppliedIndex
	// includes raft's applied index, which counts entries handed to the
	// FSM, not yet applied by it; the feed seq is the FSM's own (the same
	// on every node at the same index).
	leader := func() (commit, seq uint64) {
		for i := range down {
			st := c.nodes[i].Status()
			commit, seq = max(commit, st.CommitIndex), max(seq, st.Seq)
		}
		return commit, seq
	}
	lc, _ := leader()
	run.behind = lc - appliedAtStop

	if *catchupProfile != "" {
		if f, err := os.Create(*catchupProfile); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
	}
	t0 := time.Now()
	if err := c.openNode(down); err != nil {
		rep.fail("catchup stationsync: restart %s: %v", run.stoppedID, err)
		return run
	}
	run.open = time.Since(t0)
	for {
		st := c.nodes[down].Status()
		lc, ls := leader()
		if run.logged == 0 && st.LastLogIndex >= lc {
			run.logged = time.Since(t0)
		}
		if st.AppliedIndex >= lc && st.Seq >= ls {
			run.catchup, run.ok = time.Since(t0), true
			break
		}
		if time.Since(t0) > wait {
			rep.fail("catchup stationsync: %s not caught up %v after restart (applied index %d, feed seq %d; leader: commit %d, seq %d)", run.stoppedID, wait, st.AppliedIndex, st.Seq, lc, ls)
			return run
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A snapshot install leaves a snapshot past what the node had; log
	// replay applies the entries one by one (EntriesApplied).
	applied := c.nodes[down].Status().EntriesApplied
	run.how = fmt.Sprintf("log replay (no snapshot installed; the FSM applied %d command entries)", applied)
	for name := range snapshotNames(snapDir) {
		if before[name] {
			continue
		}
		if f := strings.Split(name, "-"); len(f) == 3 {
			if idx, err := strconv.ParseUint(f[1], 10, 64); err == nil && idx > appliedAtStop {
				run.how = fmt.Sprintf("snapshot install (index %d), then the FSM applied %d command entries", idx, applied)
			}
		}
	}
	fmt.Printf("bench: catchup stationsync: %s restarted: open %v, log complete after %v, caught up (%d entries behind) after %v by %s\n", run.stoppedID, run.open.Round(time.Millisecond), run.logged.Round(time.Millisecond), run.behind, run.catchup.Round(time.Millisecond), run.how)
	return run
}

// snapshotNames lists raft's snapshot directories (term-index-ms).
func snapshotNames(dir string) map[string]bool {
	out := map[string]bool{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") {
			out[e.Name()] = true
		}
	}
	return out
}

// ---- etcd ----

func catchupEtcd(rep *report, root string, target, clients int, loadWait, wait time.Duration) catchupRun {
	var run catchupRun
	os.MkdirAll(root, 0o755)
	e, err := startEtcd(root)
	if err != nil {
		rep.fail("catchup etcd: %v", err)
		return run
	}
	defer e.Close()
	const down = 2
	run.stoppedID = fmt.Sprintf("e%d", down+1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	st, err := e.clients[down].Status(ctx, e.endpoints[down])
	cancel()
	if err != nil {
		rep.fail("catchup etcd: status of %s: %v", run.stoppedID, err)
		return run
	}
	appliedAtStop := st.RaftAppliedIndex
	old := e.cmds[down]
	old.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done[down]:
	case <-time.After(10 * time.Second):
		old.Process.Kill()
		<-e.done[down]
	}

	val := payload[:1024]
	var seq atomic.Int64
	do := func(ctx context.Context, w, n int) (int, error) {
		// n is 1: one put per call.
		_, err := e.clients[w%2].Put(ctx, fmt.Sprintf("catchup/%08d", seq.Add(1)), val)
		if err != nil {
			return 0, err
		}
		return 1, nil
	}
	run.events, run.loadErrs, run.firstErr, run.load = loadChunks(target, 1, clients, loadWait, do)
	fmt.Printf("bench: catchup etcd: %d puts committed with %s down in %v (%d failed calls)\n", run.events, run.stoppedID, run.load.Round(time.Millisecond), run.loadErrs)
	if run.events == 0 {
		rep.fail("catchup etcd: no successful put while %s was down (first error: %s)", run.stoppedID, run.firstErr)
		return run
	}
	if run.events < int64(target) {
		rep.fail("catchup etcd: only %d of %d puts committed within %v (first error: %s)", run.events, target, loadWait, run.firstErr)
	}
	// The leader's commit index and revision: the highest of the two
	// members up.
	leader := func() (index uint64, rev int64, err error) {
		for i := range down {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			s, serr := e.clients[i].Status(ctx, e.endpoints[i])
			cancel()
			if serr != nil {
				err = serr
				continue
			}
			index, rev = max(index, s.RaftIndex), max(rev, s.Header.Revision)
		}
		return index, rev, err
	}
	if li, _, err := leader(); err == nil {
		run.behind = li - appliedAtStop
	}

	// Restart the member process with the same arguments (same data dir).
	dir := ""
	for i, a := range old.Args {
		if a == "-etcd-dir" && i+1 < len(old.Args) {
			dir = old.Args[i+1]
		}
	}
	logf, err := os.OpenFile(dir+".log", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		rep.fail("catchup etcd: %v", err)
		return run
	}
	cmd := exec.Command(old.Path, old.Args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	err = cmd.Start()
	logf.Close()
	if err != nil {
		rep.fail("catchup etcd: restart %s: %v", run.stoppedID, err)
		return run
	}
	d := make(chan struct{})
	go func() { cmd.Wait(); close(d) }()
	e.cmds[down], e.done[down] = cmd, d // e.Close stops it

	// A fresh client: the old one's reconnect backoff grew while the
	// member was down.
	var cl *clientv3.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	for {
		if cl == nil {
			cl, _ = clientv3.New(clientv3.Config{Endpoints: []string{e.endpoints[down]}, DialTimeout: time.Second})
		}
		var s *clientv3.StatusResponse
		if cl != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			s, err = cl.Status(ctx, e.endpoints[down])
			cancel()
			if err != nil {
				cl.Close()
				cl = nil
			}
		}
		if s != nil {
			if run.open == 0 {
				run.open = time.Since(t0)
			}
			li, lrev, lerr := leader()
			if lerr == nil && s.RaftAppliedIndex >= li && s.Header.Revision >= lrev {
				run.catchup, run.ok = time.Since(t0), true
				break
			}
		}
		if time.Since(t0) > wait {
			rep.fail("catchup etcd: %s not caught up %v after restart (last status error: %v); the end of its log (%s.log):\n%s", run.stoppedID, wait, err, dir, logtail.Tail(dir+".log", 20))
			return run
		}
		select {
		case <-d:
			rep.fail("catchup etcd: restarted %s exited (log %s.log)", run.stoppedID, dir)
			return run
		case <-time.After(10 * time.Millisecond):
		}
	}
	run.how = "log replay"
	if n, err := etcdSnapshotsReceived(e.endpoints[down]); err != nil {
		run.how = "unknown (" + err.Error() + ")"
	} else if n > 0 {
		run.how = fmt.Sprintf("snapshot install (%d received)", n)
	}
	fmt.Printf("bench: catchup etcd: %s restarted: status answered after %v, caught up (%d entries behind) after %v by %s\n", run.stoppedID, run.open.Round(time.Millisecond), run.behind, run.catchup.Round(time.Millisecond), run.how)
	return run
}

// etcdSnapshotsReceived reads etcd_network_snapshot_receive_success from
// the member's /metrics (since its process started).
func etcdSnapshotsReceived(endpoint string) (int, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(endpoint + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, errors.New("metrics: " + resp.Status)
	}
	n := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "etcd_network_snapshot_receive_success") {
			continue
		}
		if f := strings.Fields(l); len(f) >= 2 {
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			n += v
		}
	}
	return int(n), sc.Err()
}

// ---- markdown ----

func catchupMarkdown(rep *report) string {
	res := rep.sec.catchup
	s, e := res.station, res.etcd
	var b strings.Builder
	b.WriteString("## Catch-up of a restarted node\n\n")
	// stationsync: applied index and feed seq (the FSM's own count, since
	// Status.AppliedIndex also counts entries raft handed the FSM).
	fmt.Fprintf(&b, "One of 3 nodes (stationsync in-process Go-API cluster; etcd member processes) is stopped cleanly, %d events of ~1 KiB are committed through the other two by %d concurrent clients, then it restarts on its data; measured: restart until its applied index reaches the leader's commit index (stationsync: and its feed seq the leader's; etcd: and its revision the leader's), polled every 10 ms.\n\n", res.target, res.clients)
	b.WriteString("| metric | stationsync | etcd | ratio | target | met |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| events committed while down | %d | %d | | %d | %s |\n", s.events, e.events, res.target, yesno(s.events >= int64(res.target) && e.events >= int64(res.target)))
	fmt.Fprintf(&b, "| load time (stationsync: %d events per Submit + a case create; etcd: one 1 KiB put per call) | %s | %s | %s | | |\n", res.perCall, secs(s.load), secs(e.load), ratio(float64(s.load), float64(e.load)))
	fmt.Fprintf(&b, "| raft entries behind the leader at restart | %d | %d | %s | | |\n", s.behind, e.behind, ratio(float64(s.behind), float64(e.behind)))
	fmt.Fprintf(&b, "| restart until up (stationsync: Open returned; etcd: process start to Status answering, which etcd serves only once ready, i.e. caught up) | %s | %s | %s | | |\n", secs(s.open), secs(e.open), ratio(float64(s.open), float64(e.open)))
	fmt.Fprintf(&b, "| restart until its raft log holds every committed entry (stationsync: last log index reaches the leader's commit index) | %s | n/a | | | |\n", secs(s.logged))
	sc, ec := "not caught up", "not caught up"
	if s.ok {
		sc = secs(s.catchup)
	}
	if e.ok {
		ec = secs(e.catchup)
	}
	r := ""
	if s.ok && e.ok {
		r = ratio(float64(s.catchup), float64(e.catchup))
	}
	fmt.Fprintf(&b, "| **restart until caught up** | %s | %s | %s | < %v | %s |\n", sc, ec, r, catchupTarget, yesno(s.ok && s.catchup < catchupTarget))
	fmt.Fprintf(&b, "| how it caught up | %s | %s | | | |\n", orNA(s.how), orNA(e.how))
	fmt.Fprintf(&b, "| failed calls during the load (retried) | %d | %d | | | |\n", s.loadErrs, e.loadErrs)
	for _, x := range []struct {
		name string
		r    catchupRun
	}{{"stationsync", s}, {"etcd", e}} {
		if x.r.firstErr != "" {
			fmt.Fprintf(&b, "\nFirst error of the %s load: `%s`\n", x.name, x.r.firstErr)
		}
	}
	return b.String()
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}
