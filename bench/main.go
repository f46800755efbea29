// Command bench measures stationsync against etcd on one machine, each
// comparison in one run: write latency and throughput (HTTP API, Go API,
// etcd put), failover after SIGKILL of the leader, and the footprint of a
// node. `go run . -out FILE` writes a markdown table; `-smoke` runs every
// benchmark once in a tiny configuration (seconds) and fails when a
// workload makes no successful op.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type settings struct {
	Warmup, Dur  time.Duration
	Clients      []int
	FailoverRuns int
	Idle         time.Duration
}

type report struct {
	settings
	smoke      bool
	start      time.Time
	bin        string // the stationsync binary built for the run
	binSize    int64
	coldStart  time.Duration // max over the 3 nodes: process start to /v1/status answering
	leaderAt   time.Duration // first process start to an agreed leader
	startRSS   int64         // max over nodes right after cold start
	http, goap []loadResult
	etcd       []loadResult
	creates    [2]int64 // case creations (untimed) HTTP, Go API
	failovers  []failoverRun
	idleCPU    float64 // max over nodes, % of one core
	idleRSS    int64   // max over nodes
	profile    string
	trace      string // execution trace of the same run as profile
	failures   []string
	only       string // -only: run just these sections
	skip       string // -skip: leave these sections out
	// Results of the sections (sections.go), each filled by its own file.
	sec sectionResults
}

func (r *report) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, "bench: FAIL:", msg)
	r.failures = append(r.failures, msg)
}

func main() {
	var (
		smoke      = flag.Bool("smoke", false, "tiny configuration: ~1 s per workload, 1 failover, 1 s idle window")
		out        = flag.String("out", "", "write the results as markdown to this file")
		cpuprofile = flag.String("cpuprofile", "", "write a CPU profile of the in-process Go-API run at the highest concurrency")
		traceF     = flag.String("trace", "", "write an execution trace (go tool trace) of the in-process Go-API run at the highest concurrency")
		keep       = flag.Bool("keep", false, "keep the temporary folder (logs, data)")
		only       = flag.String("only", "", "run only these sections (comma-separated names, see sections.go), without the write rows")
		skip       = flag.String("skip", "", "leave these sections out (comma-separated names)")
		clientsF   = flag.String("clients", "", "concurrency of the write rows, comma-separated (default 1,16,64)")
		failovers  = flag.Int("failovers", -1, "failover runs (default 10; 1 with -smoke)")
		idle       = flag.Duration("idle", 0, "idle window after the write rows (default 1m; 1s with -smoke)")
		// Hidden: the bench binary re-executed as one etcd member.
		member  = flag.String("etcd-member", "", "")
		eDir    = flag.String("etcd-dir", "", "")
		ePeer   = flag.String("etcd-peer", "", "")
		eClient = flag.String("etcd-client", "", "")
		eClust  = flag.String("etcd-cluster", "", "")
		// Hidden: the bench binary re-executed to run the in-process Go-API
		// cluster, so a panic of a node is a failed row, not a dead bench.
		goapiDir = flag.String("goapi-child", "", "")
	)
	flag.Parse()
	if *member != "" {
		if err := etcdMember(*member, *eDir, *ePeer, *eClient, *eClust); err != nil {
			fmt.Fprintln(os.Stderr, "etcd member:", err)
			os.Exit(1)
		}
		return
	}
	if *goapiDir != "" {
		var st settings
		if err := json.Unmarshal([]byte(os.Getenv("BENCH_SETTINGS")), &st); err != nil {
			fatal(err)
		}
		rep := &report{settings: st, profile: *cpuprofile, trace: *traceF}
		rep.runGoAPIInProcess(*goapiDir)
		json.NewEncoder(os.Stdout).Encode(struct {
			R []loadResult
			C int64
			F []string
		}{rep.goap, rep.creates[1], rep.failures})
		return
	}
	st := settings{Warmup: time.Second, Dur: 10 * time.Second, Clients: []int{1, 16, 64}, FailoverRuns: 10, Idle: 60 * time.Second}
	if *smoke {
		st = settings{Warmup: 200 * time.Millisecond, Dur: time.Second, Clients: []int{1, 16, 64}, FailoverRuns: 1, Idle: time.Second}
	}
	if *clientsF != "" {
		st.Clients = nil
		for _, f := range strings.Split(*clientsF, ",") {
			c, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || c < 1 {
				fatal(fmt.Errorf("-clients: %q is not a positive number of clients", f))
			}
			st.Clients = append(st.Clients, c)
		}
	}
	if *failovers >= 0 {
		st.FailoverRuns = *failovers
	}
	if *idle > 0 {
		st.Idle = *idle
	}
	root, err := os.MkdirTemp("", "stationsync-bench-")
	if err != nil {
		fatal(err)
	}
	rep := &report{settings: st, smoke: *smoke, start: time.Now(), profile: *cpuprofile, trace: *traceF, only: *only, skip: *skip}
	ok := runAll(rep, root)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(rep.markdown()), 0o644); err != nil {
			fatal(err)
		}
		fmt.Println("bench: results written to", *out)
	}
	if *keep || !ok {
		fmt.Println("bench: logs and data kept in", root)
	} else {
		os.RemoveAll(root)
	}
	if !ok {
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func runAll(rep *report, root string) bool {
	t0 := time.Now()
	bin, err := buildStation(root)
	if err != nil {
		rep.fail("%v", err)
		return false
	}
	if fi, err := os.Stat(bin); err == nil {
		rep.binSize = fi.Size()
	}
	fmt.Printf("bench: built %s (%s) in %v\n", bin, mib(rep.binSize), time.Since(t0).Round(time.Millisecond))

	if rep.only == "" {
		rep.runStation(bin, root+"/station")
		rep.runGoAPI(root + "/goapi")
		rep.runEtcd(root + "/etcd")
	}
	rep.bin = bin
	rep.runSections(root)

	for _, set := range [][]loadResult{rep.http, rep.goap, rep.etcd} {
		for _, r := range set {
			if r.OK == 0 {
				rep.fail("%s with %d clients: no successful op (first error: %s)", r.Name, r.Clients, r.FirstErr)
			}
		}
	}
	fmt.Printf("bench: done in %v\n", time.Since(t0).Round(time.Millisecond))
	return len(rep.failures) == 0
}

func (rep *report) runStation(bin, root string) {
	s, err := newStation(bin, root, 3)
	if err != nil {
		rep.fail("station setup: %v", err)
		return
	}
	defer s.killAll()
	first := time.Now()
	for i := range s.nodes {
		if err := s.start(i); err != nil {
			rep.fail("start: %v", err)
			return
		}
	}
	for i := range s.nodes {
		d, err := s.waitReady(i, 30*time.Second)
		if err != nil {
			rep.fail("cold start: %v", err)
			return
		}
		rep.coldStart = max(rep.coldStart, d)
	}
	if _, err := s.waitLeader(60 * time.Second); err != nil {
		rep.fail("station: %v", err)
		return
	}
	rep.leaderAt = time.Since(first)
	for _, p := range s.pids() {
		if r, err := rssBytes(p); err == nil {
			rep.startRSS = max(rep.startRSS, r)
		}
	}
	fmt.Printf("bench: station up: API answered within %v, leader after %v, RSS %s\n", rep.coldStart.Round(time.Millisecond), rep.leaderAt.Round(time.Millisecond), mib(rep.startRSS))
	if err := putItem(s.nodes[0].url); err != nil {
		rep.fail("station: %v", err)
		return
	}
	var creates atomic.Int64
	runs, err := writeRuns(rep.Clients, len(s.nodes), func() (int, error) { return s.waitLeader(30 * time.Second) })
	if err != nil {
		rep.fail("station: %v", err)
		return
	}
	for _, w := range runs {
		prep, op := s.httpWorkload(w.clients, w.first, &creates)
		sampler := sampleRSS(s.pids())
		first := s.lastIndex()
		r := runLoad("stationsync HTTP", w.clients, rep.Warmup, rep.Dur, prep, op)
		r.PeakRSS, r.Via = sampler.Stop(), w.via
		r.Entries = entriesBetween(first, s.lastIndex())
		fmt.Println("bench:", r)
		rep.http = append(rep.http, r)
	}
	rep.creates[0] = creates.Load()
	for k := 0; k < rep.FailoverRuns; k++ {
		fr, err := s.failover()
		if err != nil {
			rep.fail("failover run %d: %v", k+1, err)
			return
		}
		fmt.Printf("bench: failover %d: killed %s, new leader agreed after %v, write accepted (201) after %v (202s: %d, errors: %d)\n", k+1, fr.Killed, fr.Elected.Round(time.Millisecond), fr.Took.Round(time.Millisecond), fr.Pending, fr.Errors)
		rep.failovers = append(rep.failovers, fr)
		if err := s.restartNode(s.leaderIndexByID(fr.Killed)); err != nil {
			rep.fail("restart after failover: %v", err)
			return
		}
		time.Sleep(rep.Warmup) // let the restarted node catch up
	}
	// Idle window, all nodes measured at once.
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range s.pids() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cpu, rss, err := idleUsage(p, rep.Idle)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.fail("idle: %v", err)
				return
			}
			rep.idleCPU = max(rep.idleCPU, cpu)
			rep.idleRSS = max(rep.idleRSS, rss)
		}()
	}
	wg.Wait()
	fmt.Printf("bench: idle %v: CPU %.2f%%, RSS %s (max over nodes)\n", rep.Idle, rep.idleCPU, mib(rep.idleRSS))
	// Errors the nodes logged, for the report.
	for _, n := range s.nodes {
		if c := countLog(n.logPath); c > 0 {
			fmt.Printf("bench: %s logged %d warning/error lines (%s)\n", n.id, c, n.logPath)
		}
	}
}

func countLog(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
			n++
		}
	}
	return n
}

func (rep *report) runGoAPI(root string) {
	self, err := os.Executable()
	if err != nil {
		rep.fail("go api: %v", err)
		return
	}
	sj, _ := json.Marshal(rep.settings)
	args := []string{"-goapi-child", root}
	if rep.profile != "" {
		args = append(args, "-cpuprofile", rep.profile)
	}
	if rep.trace != "" {
		args = append(args, "-trace", rep.trace)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), "BENCH_SETTINGS="+string(sj))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res struct {
		R []loadResult
		C int64
		F []string
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || runErr != nil {
		msg := stderr.String()
		if i := strings.Index(msg, "panic:"); i >= 0 {
			msg = msg[i:]
		}
		if i := strings.Index(msg, "\n"); i >= 0 {
			msg = msg[:i]
		}
		rep.fail("go api child process died (%v): %s", runErr, msg)
		os.WriteFile(root+"-child.log", stderr.Bytes(), 0o644)
		return
	}
	rep.goap, rep.creates[1], rep.failures = res.R, res.C, append(rep.failures, res.F...)
	for _, r := range rep.goap {
		fmt.Println("bench:", r)
	}
}

func (rep *report) runGoAPIInProcess(root string) {
	c, err := newGoCluster(root, 3)
	if err != nil {
		rep.fail("go api: %v", err)
		return
	}
	defer c.Close()
	var creates atomic.Int64
	runs, err := writeRuns(rep.Clients, len(c.nodes), c.leaderIndex)
	if err != nil {
		rep.fail("go api: %v", err)
		return
	}
	for i, w := range runs {
		prep, op := c.workload(w.clients, w.first, &creates)
		var pf, tf *os.File
		if rep.profile != "" && i == len(runs)-1 {
			if pf, err = os.Create(rep.profile); err == nil {
				pprof.StartCPUProfile(pf)
			}
		}
		if rep.trace != "" && i == len(runs)-1 {
			if tf, err = os.Create(rep.trace); err == nil {
				trace.Start(tf)
			}
		}
		first := c.lastIndex()
		r := runLoad("stationsync Go API", w.clients, rep.Warmup, rep.Dur, prep, op)
		r.Via = w.via
		r.Entries = entriesBetween(first, c.lastIndex())
		if pf != nil {
			pprof.StopCPUProfile()
			pf.Close()
		}
		if tf != nil {
			trace.Stop()
			tf.Close()
		}
		fmt.Fprintln(os.Stderr, "bench:", r)
		rep.goap = append(rep.goap, r)
	}
	rep.creates[1] = creates.Load()
}

func (rep *report) runEtcd(root string) {
	os.MkdirAll(root, 0o755)
	e, err := startEtcd(root)
	if err != nil {
		rep.fail("etcd: %v", err)
		return
	}
	defer e.Close()
	runs, err := writeRuns(rep.Clients, len(e.clients), e.leaderIndex)
	if err != nil {
		rep.fail("etcd: %v", err)
		return
	}
	for _, w := range runs {
		sampler := sampleRSS(e.pids())
		r := runLoad("etcd put", w.clients, rep.Warmup, rep.Dur, nil, e.workload(w.clients, w.first))
		r.PeakRSS, r.Via = sampler.Stop(), w.via
		fmt.Println("bench:", r)
		rep.etcd = append(rep.etcd, r)
	}
}

// ---- markdown ----

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// find returns the row of c clients writing via ("" for any).
func find(rs []loadResult, c int, via string) (loadResult, bool) {
	for _, r := range rs {
		if r.Clients == c && (via == "" || r.Via == via) {
			return r, true
		}
	}
	return loadResult{}, false
}

func yesno(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func machine() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		fs := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		if len(fs) >= 2 {
			var kb int64
			fmt.Sscan(fs[1], &kb)
			mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	kernel := "?"
	if b, err := exec.Command("uname", "-sr").Output(); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores, %s RAM, %s, %s", model, runtime.NumCPU(), mem, kernel, runtime.Version())
}

func (rep *report) markdown() string {
	var b strings.Builder
	mode := "full"
	if rep.smoke {
		mode = "smoke (numbers meaningless)"
	}
	fmt.Fprintf(&b, "# stationsync bench results\n\n")
	fmt.Fprintf(&b, "- Date: %s\n- Machine: %s\n- Command: `%s` (mode: %s)\n", rep.start.Format("2006-01-02 15:04 MST"), machine(), strings.Join(os.Args, " "), mode)
	fmt.Fprintf(&b, "- Each workload: %v warm-up, then %v measured; concurrency %v; failover runs %d; idle window %v\n\n", rep.Warmup, rep.Dur, rep.Clients, rep.FailoverRuns, rep.Idle)
	if len(rep.failures) > 0 {
		fmt.Fprintf(&b, "**Failures:**\n\n")
		for _, f := range rep.failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
		b.WriteString("\n")
	}
	if rep.only != "" {
		rep.sectionsMarkdown(&b)
		return b.String()
	}
	b.WriteString("## Writes (3 nodes on loopback, ~1 KiB, fsync on)\n\n")
	b.WriteString("| clients | metric | stationsync HTTP | stationsync Go API | etcd put | HTTP / etcd | Go API / etcd | target | HTTP vs target |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, w := range writeRows(rep.Clients) {
		c := w.clients
		h, _ := find(rep.http, c, w.via)
		g, _ := find(rep.goap, c, w.via)
		e, _ := find(rep.etcd, c, w.via)
		t50, t99, tops := "", "", ""
		m50, m99, mops := "", "", ""
		label := fmt.Sprint(c)
		if w.via != "" {
			label = fmt.Sprintf("%d via %s", c, w.via)
		}
		if c == 1 {
			t50, m50 = "<= etcd", yesno(h.P50 <= e.P50 && h.OK > 0)
		}
		if c == rep.Clients[len(rep.Clients)-1] {
			t99, m99 = "<= etcd", yesno(h.P99 <= e.P99 && h.OK > 0)
			tops, mops = ">= 1.5x etcd", yesno(h.OpsPerSec() >= 1.5*e.OpsPerSec())
		}
		fmt.Fprintf(&b, "| %s | p50 | %s | %s | %s | %s | %s | %s | %s |\n", label, ms(h.P50), ms(g.P50), ms(e.P50), ratio(float64(h.P50), float64(e.P50)), ratio(float64(g.P50), float64(e.P50)), t50, m50)
		fmt.Fprintf(&b, "| %s | p99 | %s | %s | %s | %s | %s | %s | %s |\n", label, ms(h.P99), ms(g.P99), ms(e.P99), ratio(float64(h.P99), float64(e.P99)), ratio(float64(g.P99), float64(e.P99)), t99, m99)
		fmt.Fprintf(&b, "| %s | ops/s | %.0f | %.0f | %.0f | %s | %s | %s | %s |\n", label, h.OpsPerSec(), g.OpsPerSec(), e.OpsPerSec(), ratio(h.OpsPerSec(), e.OpsPerSec()), ratio(g.OpsPerSec(), e.OpsPerSec()), tops, mops)
		ptarget, pmet := "", ""
		if c == rep.Clients[len(rep.Clients)-1] {
			ptarget, pmet = "< 256 MiB", yesno(h.PeakRSS > 0 && h.PeakRSS < 256<<20)
		}
		fmt.Fprintf(&b, "| %s | peak RSS, one server process | %s | n/a (in-process) | %s | %s | | %s | %s |\n", label, mib(h.PeakRSS), mib(e.PeakRSS), ratio(float64(h.PeakRSS), float64(e.PeakRSS)), ptarget, pmet)
		fmt.Fprintf(&b, "| %s | events per raft entry (case creations take entries too) | %s | %s | n/a | | | | |\n", label, perEntry(h), perEntry(g))
		fmt.Fprintf(&b, "| %s | ok / errors / 202 pending | %d / %d / %d | %d / %d / - | %d / %d / - | | | | |\n", label, h.OK, h.Errors, h.Pending, g.OK, g.Errors, e.OK, e.Errors)
	}
	fmt.Fprintf(&b, "\nCase creations (one per %d events, run before an op's clock starts, not counted in ops/s): HTTP %d, Go API %d.\n", eventsPerCase, rep.creates[0], rep.creates[1])
	for _, set := range [][]loadResult{rep.http, rep.goap, rep.etcd} {
		for _, r := range set {
			if r.FirstErr != "" {
				fmt.Fprintf(&b, "\nFirst error of %s with %d clients (%d errors): `%s`\n", r.Name, r.Clients, r.Errors, r.FirstErr)
			}
		}
	}
	b.WriteString("\n## Failover (stationsync: SIGKILL of the leader until a case write through a survivor answers 201)\n\n")
	if len(rep.failovers) > 0 {
		var ds, es []time.Duration
		pend, errs := 0, 0
		for _, f := range rep.failovers {
			ds = append(ds, f.Took)
			es = append(es, f.Elected)
			pend += f.Pending
			errs += f.Errors
		}
		slices.Sort(ds)
		slices.Sort(es)
		p50 := pct(ds, 0.5)
		fmt.Fprintf(&b, "| measure | runs | p50 | max | min | target | |\n|---|---|---|---|---|---|---|\n| kill to first 201 write | %d | %s | %s | %s | p50 <= 1.5 s | %s |\n", len(ds), ms(p50), ms(ds[len(ds)-1]), ms(ds[0]), yesno(p50 <= 1500*time.Millisecond))
		fmt.Fprintf(&b, "| kill to survivors agreeing on a new leader (status polled every 10 ms) | %d | %s | %s | %s | | |\n\n", len(es), ms(pct(es, 0.5)), ms(es[len(es)-1]), ms(es[0]))
		fmt.Fprintf(&b, "Answers during the failovers other than 201: %d x 202 pending, %d errors (requests cancelled once one write succeeded are not counted). Each run: ", pend, errs)
		for i, d := range rep.failovers {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s (killed %s, leader after %s, %d x 202)", ms(d.Took), d.Killed, ms(d.Elected), d.Pending)
		}
		b.WriteString("\n")
	} else {
		b.WriteString("not measured (failed earlier)\n")
	}
	b.WriteString("\n## Footprint (stationsync node)\n\n| metric | value | target | |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| binary size (`-trimpath -ldflags '-s -w'`, linux/%s) | %s | | |\n", runtime.GOARCH, mib(rep.binSize))
	fmt.Fprintf(&b, "| cold start, process start to /v1/status answering (empty store, max of 3) | %s | < 2 s | %s |\n", ms(rep.coldStart), yesno(rep.coldStart > 0 && rep.coldStart < 2*time.Second))
	fmt.Fprintf(&b, "| first start of 3 nodes to an agreed leader | %s | | |\n", ms(rep.leaderAt))
	fmt.Fprintf(&b, "| RSS right after start (max of 3) | %s | | |\n", mib(rep.startRSS))
	fmt.Fprintf(&b, "| idle RSS after the write runs and failovers, end of a %v idle window (max of 3) | %s | < 96 MiB | %s |\n", rep.Idle, mib(rep.idleRSS), yesno(rep.idleRSS > 0 && rep.idleRSS < 96<<20))
	fmt.Fprintf(&b, "| idle CPU over that window (max of 3, %% of one core) | %.2f %% | < 1 %% | %s |\n", rep.idleCPU, yesno(rep.idleRSS > 0 && rep.idleCPU < 1))
	rep.sectionsMarkdown(&b)
	return b.String()
}
