package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	_ "time/tzdata" // the district time zone, also on a machine without zoneinfo

	"github.com/stationsync/stationsync/pki"
)

// Section "center": district center consolidation. One real center pulls
// the change feeds of simulated stations (center_sim.go) over QUIC on
// loopback: the time until it has consolidated every station's recorded
// feed, then the lag of new changes in a steady state with the pull
// interval of the config's default.

// defaultPullInterval is daemon.DefaultConfig().PullInterval (the bench
// module does not import the daemon); the center's log line "district
// center running ... pull_interval=" is checked against it.
const defaultPullInterval = 10 * time.Second

// centerTZ is the district time zone of the center's config (its default,
// written out) and of the simulated stations' digests.
const centerTZ = "Asia/Shanghai"

var centerHeap = flag.String("center-heap", "", "center section: serve the center's pprof endpoints (config key pprof) and save a heap profile of it every 5 s of the consolidation into this folder (go tool pprof -sample_index=inuse_space FILE)")

var centerPerf = flag.String("center-perf", "", "center section: record a perf profile (perf record -g) of the center process during the consolidation to this file, with an unstripped build of the binary")

func init() {
	addSection(section{name: "center", run: runCenterSection, markdown: centerMarkdown})
}

type centerResults struct {
	ran        bool
	profile    string // perf data file (-center-perf)
	stations   int
	perStation int // feed changes recorded per station (at least)
	changes    int64
	events     int64 // lifecycle events in the feeds ("received" included)
	cases      int64
	dataBytes  int64 // JSON of the changes' records
	genTook    time.Duration
	interval   time.Duration // the center's pull interval in this run
	defaultInt time.Duration // the config default
	logInt     time.Duration // the pull interval the center logged at start

	apiReady    time.Duration // center start -> /v1/stations answering
	firstPull   time.Duration // center start -> first feed request at any station
	allCaughtUp time.Duration // center start -> every cursor at its station's head
	consolidate time.Duration // first feed request -> every cursor at head
	peakRSS     int64         // center process, during consolidation
	rssAnon     int64         // center RssAnon at the end of consolidation
	rssFile     int64         // center RssFile then
	heapInuse   int64         // max go_memstats_heap_inuse_bytes of the center's /metrics (sampled every second)
	heapSys     int64         // max go_memstats_heap_sys_bytes
	raftIndex   int64         // stationsync_raft_applied_index at the end of consolidation
	centerCPU   float64       // center process CPU seconds during consolidation
	benchCPU    float64       // bench process (simulated stations) CPU seconds, same window
	diskBytes   int64         // center data dir after consolidation
	diskWrites  int64         // center write_bytes (/proc/PID/io) from start to all consolidated

	steadyDur   time.Duration
	appendEvery time.Duration // per station
	appends     int
	lags        []time.Duration // sorted
	waits       []time.Duration // of each lag: append to the station's next feed request (sorted)
	procs       []time.Duration // and that feed request to visible at the center (sorted)
	periods     []time.Duration // between successive feed requests to a station (sorted)
	unseen      int             // appends not visible at the center by the end of the drain
	steadyRSS   int64

	digestMatch   int // stations whose compared months all match at the end
	digestChecked int // stations with at least one comparison
	rereads       int
	stationErrors int    // stations with a last_error at the end
	firstError    string // one of them
	feedCalls     int64
	digestCalls   int64
	refused       int64
	logWarnings   int
	pullFailures  int // "cannot pull station" lines in the center's log (one per failure streak)
}

// centerStationsAnswer is GET /v1/stations of the center.
type centerStationsAnswer struct {
	Stations []struct {
		ID        string `json:"id"`
		Cursor    uint64 `json:"cursor"`
		Head      uint64 `json:"head"`
		ClusterID string `json:"cluster_id"`
		Rereads   int    `json:"rereads"`
		LastError string `json:"last_error"`
		Digests   []struct {
			Month      string `json:"month"`
			Match      bool   `json:"match"`
			Persistent bool   `json:"persistent"`
		} `json:"digests"`
	} `json:"stations"`
}

var centerHTTP = &http.Client{Timeout: 5 * time.Second}

// centerGet returns the body of a GET of url that answered 200.
func centerGet(url string) ([]byte, error) {
	resp, err := centerHTTP.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return b, nil
}

func centerGetStations(url string) (centerStationsAnswer, error) {
	var a centerStationsAnswer
	b, err := centerGet(url + "/v1/stations")
	if err != nil {
		return a, err
	}
	return a, json.Unmarshal(b, &a)
}

func centerDirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512 // allocated: badger preallocates its files sparsely
			} else {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// centerRSSParts reads RssAnon and RssFile of pid.
func centerRSSParts(pid int) (anon, file int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(l, "RssAnon: %d kB", &kb); err == nil {
			anon = kb << 10
		}
		if _, err := fmt.Sscanf(l, "RssFile: %d kB", &kb); err == nil {
			file = kb << 10
		}
	}
	return anon, file
}

// centerMetrics reads the unlabelled samples of the center's /metrics.
func centerMetrics(url string) map[string]float64 {
	out := map[string]float64{}
	resp, err := centerHTTP.Get(url + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		name, val, ok := strings.Cut(l, " ")
		if !ok || strings.HasPrefix(l, "#") || strings.Contains(name, "{") {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(val, &v); err == nil {
			out[name] = v
		}
	}
	return out
}

// centerWriteBytes reads write_bytes of pid: what it made the kernel
// write to storage.
func centerWriteBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		var n int64
		if _, err := fmt.Sscanf(l, "write_bytes: %d", &n); err == nil {
			return n
		}
	}
	return 0
}

func centerSelfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func runCenterSection(rep *report, root string, smoke bool) {
	res := &rep.sec.center
	res.ran = true
	res.defaultInt = defaultPullInterval
	res.stations, res.perStation = 100, 5000
	res.interval = res.defaultInt
	res.steadyDur, res.appendEvery = 60*time.Second, 2*time.Second
	consTimeout := 10 * time.Minute
	if smoke {
		// The smallest pull interval the config allows, so the steady
		// state fits in seconds.
		res.stations, res.perStation = 3, 200
		res.interval = time.Second
		res.steadyDur, res.appendEvery = 3*time.Second, 300*time.Millisecond
		consTimeout = time.Minute
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		rep.fail("center: %v", err)
		return
	}
	loc, err := time.LoadLocation(centerTZ)
	if err != nil {
		rep.fail("center: time zone: %v", err)
		return
	}
	caDir := filepath.Join(root, "ca")
	if err := pki.InitCA(caDir); err != nil {
		rep.fail("center: %v", err)
		return
	}

	// Record the stations' feeds (untimed), in parallel.
	t0 := time.Now()
	var firstCall atomic.Int64
	sims := make([]*centerSim, res.stations)
	histStart := time.Now().Add(-40 * 24 * time.Hour)
	for i := range sims {
		sims[i] = newCenterSim(fmt.Sprintf("BS-%03d", i+1), loc, uint64(i+1)*7919, histStart, &firstCall)
	}
	defer func() {
		for _, s := range sims {
			s.close()
		}
	}()
	var genErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan *centerSim)
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				if err := s.record(res.perStation, 40*24*time.Hour-time.Hour); err != nil {
					mu.Lock()
					genErr = err
					mu.Unlock()
				}
			}
		}()
	}
	for _, s := range sims {
		work <- s
	}
	close(work)
	wg.Wait()
	if genErr != nil {
		rep.fail("center: recording the stations' feeds: %v", genErr)
		return
	}
	heads := map[string]uint64{}
	for _, s := range sims {
		res.changes += int64(len(s.feed))
		res.events += int64(s.events)
		res.cases += int64(s.cases)
		res.dataBytes += s.bytes
		heads[s.id] = uint64(len(s.feed))
	}
	res.genTook = time.Since(t0)
	logger := slog.New(slog.DiscardHandler)
	for _, s := range sims {
		if err := s.open(caDir, filepath.Join(root, s.id), logger); err != nil {
			rep.fail("center: simulated station %s: %v", s.id, err)
			return
		}
	}
	fmt.Printf("bench: center: %d simulated stations, %d feed changes (%d lifecycle events in %d cases, %s of records) recorded and listening in %v\n",
		res.stations, res.changes, res.events, res.cases, mib(res.dataBytes), time.Since(t0).Round(time.Millisecond))

	// The center's certificate and config.
	cdir := filepath.Join(root, "center-1")
	if err := pki.Issue(caDir, pki.Identity{Role: pki.RoleCenter, Node: "center-1"}, cdir, 24*time.Hour); err != nil {
		rep.fail("center: %v", err)
		return
	}
	port, err := freePort()
	if err != nil {
		rep.fail("center: %v", err)
		return
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "role: center\nnode_id: center-1\ndata_dir: data\nlisten: %s\napi: %s\nexpect: 1\nmdns: false\ntls: {ca: ca.crt, cert: node.crt, key: node.key}\ntimezone: %s\nlog: {level: info}\n", addr, addr, centerTZ)
	if res.interval != res.defaultInt {
		fmt.Fprintf(&cfg, "pull_interval: %s\n", res.interval)
	}
	pprofURL := ""
	if *centerHeap != "" {
		pport, err := freePort()
		if err != nil {
			rep.fail("center: %v", err)
			return
		}
		fmt.Fprintf(&cfg, "pprof: 127.0.0.1:%d\n", pport)
		pprofURL = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap", pport)
		if err := os.MkdirAll(*centerHeap, 0o755); err != nil {
			rep.fail("center: %v", err)
			return
		}
	}
	cfg.WriteString("stations:\n")
	for _, s := range sims {
		fmt.Fprintf(&cfg, "  - {id: %s, name: 模拟站点%s, addresses: [%s]}\n", s.id, s.id[3:], s.addr)
	}
	cfgPath := filepath.Join(cdir, "station.yaml") // the name station.start uses
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		rep.fail("center: %v", err)
		return
	}

	// Start the center: consolidation begins.
	bin := rep.bin
	if *centerPerf != "" {
		if bin, err = centerBuildUnstripped(root); err != nil {
			rep.fail("center: %v", err)
			return
		}
		res.profile = *centerPerf
	}
	node := &stationNode{id: "center-1", dir: cdir, addr: addr, url: "http://" + addr, logPath: filepath.Join(cdir, "node.log")}
	proc := &station{bin: bin, root: root, nodes: []*stationNode{node}}
	defer proc.killAll()
	cpu0 := centerSelfCPU()
	start := time.Now()
	if err := proc.start(0); err != nil {
		rep.fail("center: start: %v", err)
		return
	}
	var perf *exec.Cmd
	if res.profile != "" {
		perf = exec.Command("perf", "record", "-g", "-F", "499", "-o", res.profile, "-p", itoa(node.pid()))
		perf.Stdout, perf.Stderr = os.Stderr, os.Stderr
		if err := perf.Start(); err != nil {
			rep.fail("center: perf: %v", err)
			perf = nil
		}
	}
	stopPerf := func() {
		if perf != nil {
			perf.Process.Signal(os.Interrupt)
			perf.Wait()
			perf = nil
			fmt.Printf("bench: center: perf profile written to %s (perf report -i %s --no-children)\n", res.profile, res.profile)
		}
	}
	defer stopPerf()
	sampler := sampleRSS([]int{node.pid()})
	stopSampler := func() int64 {
		if sampler == nil {
			return 0
		}
		s := sampler.Stop()
		sampler = nil
		return s
	}
	defer stopSampler()

	// Until every station's cursor is at its head.
	deadline := start.Add(consTimeout)
	lastPrint, lastMetrics := time.Now(), time.Time{}
	lastHeap := start // the first heap profile 5 s in: pprof starts after the API
	var last string
	for {
		if !node.running() {
			rep.fail("center: the center process exited during consolidation; log %s", node.logPath)
			return
		}
		a, err := centerGetStations(node.url)
		now := time.Now()
		if err == nil {
			if res.apiReady == 0 {
				res.apiReady = now.Sub(start)
			}
			done, sum := 0, uint64(0)
			for _, st := range a.Stations {
				h, ok := heads[st.ID]
				if !ok {
					continue
				}
				if st.ClusterID != "" {
					sum += min(st.Cursor, h)
				}
				if st.Cursor >= h && st.ClusterID != "" {
					done++
				}
			}
			last = fmt.Sprintf("%d/%d changes, %d/%d stations at their head", sum, res.changes, done, res.stations)
			if done == res.stations {
				res.allCaughtUp = now.Sub(start)
				break
			}
		} else {
			last = err.Error()
		}
		if now.After(deadline) {
			rep.fail("center: consolidation not complete %v after the center started: %s; log %s", consTimeout, last, node.logPath)
			return
		}
		if pprofURL != "" && time.Since(lastHeap) >= 5*time.Second {
			lastHeap = time.Now()
			f := filepath.Join(*centerHeap, fmt.Sprintf("heap-%03.0fs.pb.gz", now.Sub(start).Seconds()))
			if err := centerSaveHeap(pprofURL, f); err != nil {
				fmt.Printf("bench: center: heap profile: %v\n", err)
			}
		}
		if time.Since(lastMetrics) >= time.Second {
			m := centerMetrics(node.url)
			res.heapInuse = max(res.heapInuse, int64(m["go_memstats_heap_inuse_bytes"]))
			res.heapSys = max(res.heapSys, int64(m["go_memstats_heap_sys_bytes"]))
			lastMetrics = time.Now()
		}
		if time.Since(lastPrint) >= 5*time.Second {
			fmt.Printf("bench: center: %v: %s\n", time.Since(start).Round(time.Second), last)
			lastPrint = time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopPerf()
	res.benchCPU = centerSelfCPU() - cpu0
	if fc := firstCall.Load(); fc > 0 {
		res.firstPull = time.Unix(0, fc).Sub(start)
		res.consolidate = res.allCaughtUp - res.firstPull
	}
	if t, err := cpuTicks(node.pid()); err == nil {
		res.centerCPU = float64(t) / userHZ
	}
	if d, ok := centerLogPullInterval(node.logPath); ok {
		res.logInt = d
		if d != res.interval {
			rep.fail("center: the center logged pull_interval=%v, the bench expected %v (defaultPullInterval out of date?)", d, res.interval)
		}
	}
	res.peakRSS = stopSampler()
	res.rssAnon, res.rssFile = centerRSSParts(node.pid())
	res.diskWrites = centerWriteBytes(node.pid())
	m := centerMetrics(node.url)
	res.raftIndex = int64(m["stationsync_raft_applied_index"])
	res.heapInuse = max(res.heapInuse, int64(m["go_memstats_heap_inuse_bytes"]))
	res.heapSys = max(res.heapSys, int64(m["go_memstats_heap_sys_bytes"]))
	res.diskBytes = centerDirSize(filepath.Join(cdir, "data"))
	fmt.Printf("bench: center: all %d changes consolidated %v after the center started (API after %v, first pull after %v; %v from the first pull, %.0f changes/s), peak RSS %s, data %s\n",
		res.changes, res.allCaughtUp.Round(time.Millisecond), res.apiReady.Round(time.Millisecond), res.firstPull.Round(time.Millisecond),
		res.consolidate.Round(time.Millisecond), float64(res.changes)/res.consolidate.Seconds(), mib(res.peakRSS), mib(res.diskBytes))

	// Steady state: every station appends an op every appendEvery (random
	// phase, +-20 % jitter); the lag of each is the time until the
	// center's API shows the station's cursor at or past it.
	sampler = sampleRSS([]int{node.pid()})
	stop := make(chan struct{})
	var appendErr atomic.Value
	var awg sync.WaitGroup
	for i, s := range sims {
		awg.Add(1)
		go func() {
			defer awg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(i), 42))
			wait := time.Duration(rng.Int64N(int64(res.appendEvery)))
			for {
				select {
				case <-stop:
					return
				case <-time.After(wait):
				}
				if err := s.appendLive(); err != nil {
					appendErr.CompareAndSwap(nil, err)
					return
				}
				wait = res.appendEvery*8/10 + time.Duration(rng.Int64N(int64(res.appendEvery)*4/10))
			}
		}()
	}
	ts := time.Now()
	next := make([]int, len(sims))
	stopped := false
	var drainUntil time.Time
	for {
		if !stopped && time.Since(ts) >= res.steadyDur {
			close(stop)
			awg.Wait()
			stopped = true
			drainUntil = time.Now().Add(3*res.interval + 10*time.Second)
		}
		a, err := centerGetStations(node.url)
		now := time.Now()
		pending := 0
		if err == nil {
			cursors := map[string]uint64{}
			for _, st := range a.Stations {
				cursors[st.ID] = st.Cursor
			}
			for i, s := range sims {
				s.mu.Lock()
				n := len(s.appended)
				recs := s.appended[next[i]:n]
				s.mu.Unlock()
				for _, r := range recs {
					if r.seq > cursors[s.id] {
						break
					}
					res.lags = append(res.lags, now.Sub(r.at))
					if f, ok := s.pullAfter(r.at); ok && !f.After(now) {
						res.waits = append(res.waits, f.Sub(r.at))
						res.procs = append(res.procs, now.Sub(f))
					}
					next[i]++
				}
				pending += n - next[i]
			}
		}
		if stopped {
			if err == nil && pending == 0 {
				break
			}
			if now.After(drainUntil) {
				res.unseen = pending
				break
			}
		}
		if !node.running() {
			rep.fail("center: the center process exited during the steady state; log %s", node.logPath)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.steadyRSS = stopSampler()
	if v := appendErr.Load(); v != nil {
		rep.fail("center: steady-state append: %v", v)
	}
	for _, s := range sims {
		res.appends += len(s.appended)
		res.feedCalls += s.feedCalls.Load()
		res.digestCalls += s.digestCalls.Load()
		res.refused += s.refused.Load()
	}
	for _, s := range sims {
		res.periods = append(res.periods, s.pullPeriods(ts)...)
	}
	slices.Sort(res.lags)
	slices.Sort(res.waits)
	slices.Sort(res.procs)
	slices.Sort(res.periods)
	if res.unseen > 0 {
		rep.fail("center: %d of %d changes appended in the steady state not visible at the center %v after the appends stopped", res.unseen, res.appends, 3*res.interval+10*time.Second)
	}
	if len(res.lags) == 0 {
		rep.fail("center: no steady-state lag measured")
	}

	// What the center says of each station at the end.
	if a, err := centerGetStations(node.url); err == nil {
		for _, st := range a.Stations {
			res.rereads += st.Rereads
			if st.LastError != "" {
				res.stationErrors++
				if res.firstError == "" {
					res.firstError = st.ID + ": " + st.LastError
				}
			}
			if len(st.Digests) > 0 {
				res.digestChecked++
				ok := true
				for _, d := range st.Digests {
					ok = ok && d.Match
				}
				if ok {
					res.digestMatch++
				}
			}
		}
	} else {
		rep.fail("center: final /v1/stations: %v", err)
	}
	proc.killAll()
	res.logWarnings = countLog(node.logPath)
	if b, err := os.ReadFile(node.logPath); err == nil {
		res.pullFailures = strings.Count(string(b), "cannot pull station")
	}
	fmt.Printf("bench: center: steady state: lag = wait for the next pull (p50 %v, max %v) + pull to visible (p50 %v, max %v); time between a station's pulls p50 %v, max %v\n",
		pct(res.waits, 0.5).Round(time.Millisecond), centerLast(res.waits).Round(time.Millisecond), pct(res.procs, 0.5).Round(time.Millisecond), centerLast(res.procs).Round(time.Millisecond),
		pct(res.periods, 0.5).Round(time.Millisecond), centerLast(res.periods).Round(time.Millisecond))
	fmt.Printf("bench: center: steady state %v, %d appends: lag p50 %v, p99 %v, max %v (pull interval %v); digests match at %d/%d stations (%d compared), %d rereads; %d feed and %d digest requests served; center log: %d warning/error lines (%s)\n",
		res.steadyDur, res.appends, pct(res.lags, 0.5).Round(time.Millisecond), pct(res.lags, 0.99).Round(time.Millisecond), centerLast(res.lags).Round(time.Millisecond), res.interval,
		res.digestMatch, res.stations, res.digestChecked, res.rereads, res.feedCalls, res.digestCalls, res.logWarnings, node.logPath)
	if res.refused > 0 {
		rep.fail("center: simulated stations refused %d feed requests from a non-center peer", res.refused)
	}
	if res.digestChecked == 0 {
		rep.fail("center: no station's digests were compared")
	}
	if res.digestMatch < res.digestChecked {
		rep.fail("center: digests differ for %d stations (the simulation or the center is wrong)", res.digestChecked-res.digestMatch)
	}
}

// centerBuildUnstripped builds ../cmd/stationsync with its symbols, for perf.
func centerBuildUnstripped(dir string) (string, error) {
	out := filepath.Join(dir, "stationsync-symbols")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/stationsync")
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/stationsync: %v\n%s", err, b)
	}
	return out, nil
}

var centerPullIntervalRe = regexp.MustCompile(`district center running.* pull_interval=(\S+)`)

// centerLogPullInterval reads the pull interval the center logged at start.
func centerLogPullInterval(path string) (time.Duration, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	m := centerPullIntervalRe.FindSubmatch(b)
	if m == nil {
		return 0, false
	}
	d, err := time.ParseDuration(string(m[1]))
	return d, err == nil
}

func centerLast(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[len(ds)-1]
}

func centerSecs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func centerMarkdown(rep *report) string {
	r := rep.sec.center
	var b strings.Builder
	b.WriteString("## Center consolidation\n\n")
	if !r.ran {
		b.WriteString("not measured\n")
		return b.String()
	}
	how := "the real `stationsync` binary with `role: center` as its own process"
	intervalNote := "the default pull interval"
	if r.interval != r.defaultInt {
		intervalNote = fmt.Sprintf("pull interval %v (smoke; the default is %v)", r.interval, r.defaultInt)
	}
	fmt.Fprintf(&b, "One district center (%s: one node, badger on disk, %s) pulls %d simulated stations over QUIC on loopback, listed in its config's `stations:`. "+
		"Each simulated station is a feed server in the bench process with its own QUIC transport and a station certificate from the district CA; it answers the center's `feed` and `digest` requests (replication.ServeFeedWith, center certificates only) from a recorded feed of %d+ changes: "+
		"its item list, then cases received and taken through their lifecycles (accepted, corrections, pauses, completed, rejected, withdrawn; several open at once), 60 %% of completed cases evaluated, bad reviews opening work orders, over the 40 days before the run. "+
		"The feed is made by applying real station ops with records.Apply to an in-memory store as a station's state machine does, and the digests by records.MonthDigest over that store, so the center's digest verification runs as against a real station. "+
		"Consolidation: from the start of the center until GET /v1/stations (polled every 50 ms) shows every station's cursor at its feed head. "+
		"Steady state: for %v each station appends one op every %v (±20 %%, random phase) and the lag of each is the time from the append until /v1/stations (polled every 100 ms) shows the station's cursor at or past it; appends not seen within 3 pull intervals + 10 s of the end are counted as unseen. "+
		"Numbers come from a 2-core machine where the simulated stations share the CPU with the center.\n\n",
		how, intervalNote, r.stations, r.perStation, r.steadyDur, r.appendEvery)
	b.WriteString("| metric | value | target | met |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| stations x feed changes | %d x %d = %d changes (%d lifecycle events in %d cases, %s of records) | 100 x 5,000 | %s |\n",
		r.stations, r.perStation, r.changes, r.events, r.cases, mib(r.dataBytes), yesno(r.changes >= 500000))
	fmt.Fprintf(&b, "| center start to API answering | %s | | |\n", centerSecs(r.apiReady))
	fmt.Fprintf(&b, "| center start to first feed request | %s | | |\n", centerSecs(r.firstPull))
	caught := r.allCaughtUp > 0
	fmt.Fprintf(&b, "| **center start to all %d changes consolidated** (every cursor at its head) | %s | < 30 s for 500,000 | %s |\n", r.changes, centerSecs(r.allCaughtUp), yesno(caught && r.changes >= 500000 && r.allCaughtUp < 30*time.Second))
	rate := 0.0
	if r.consolidate > 0 {
		rate = float64(r.changes) / r.consolidate.Seconds()
	}
	fmt.Fprintf(&b, "| first feed request to all consolidated | %s (%.0f changes/s) | > 16,700 changes/s | %s |\n", centerSecs(r.consolidate), rate, yesno(caught && rate > 500000.0/30))
	cores := 0.0
	if r.allCaughtUp > 0 {
		cores = r.centerCPU / r.allCaughtUp.Seconds()
	}
	fmt.Fprintf(&b, "| center CPU from start to all consolidated | %.1f s (%.2f cores on average) | | |\n", r.centerCPU, cores)
	fmt.Fprintf(&b, "| simulated stations' CPU (bench process), same window | %.1f s | | |\n", r.benchCPU)
	fmt.Fprintf(&b, "| center peak RSS during consolidation | %s (at the end: %s anonymous, %s file-backed; Go heap in use at most %s, heap reserved %s) | | |\n", mib(r.peakRSS), mib(r.rssAnon), mib(r.rssFile), mib(r.heapInuse), mib(r.heapSys))
	if r.raftIndex > 0 {
		fmt.Fprintf(&b, "| raft entries the center applied (changes per entry) | %d (%.0f) | | |\n", r.raftIndex, float64(r.changes)/float64(r.raftIndex))
	}
	fmt.Fprintf(&b, "| center data on disk after consolidation / written to storage until then | %s / %s | | |\n", mib(r.diskBytes), mib(r.diskWrites))
	fmt.Fprintf(&b, "| pull interval | %v | | |\n", r.interval)
	fmt.Fprintf(&b, "| steady state: ops appended (all stations) | %d in %v (%.0f/s) | | |\n", r.appends, r.steadyDur, float64(r.appends)/r.steadyDur.Seconds())
	two := 2 * r.interval
	ok := len(r.lags) > 0 && r.unseen == 0
	fmt.Fprintf(&b, "| **steady-state lag p50** | %s | < %v (2 pull intervals) | %s |\n", centerSecs(pct(r.lags, 0.5)), two, yesno(ok && pct(r.lags, 0.5) < two))
	fmt.Fprintf(&b, "| steady-state lag p99 | %s | | |\n", centerSecs(pct(r.lags, 0.99)))
	fmt.Fprintf(&b, "| **steady-state lag max** | %s (%d samples, %d unseen) | < %v (2 pull intervals) | %s |\n", centerSecs(centerLast(r.lags)), len(r.lags), r.unseen, two, yesno(ok && centerLast(r.lags) < two))
	fmt.Fprintf(&b, "| of the lag: append to the station's next feed request, p50 / max | %s / %s | | |\n", centerSecs(pct(r.waits, 0.5)), centerSecs(centerLast(r.waits)))
	fmt.Fprintf(&b, "| of the lag: that feed request to visible at the center, p50 / max | %s / %s | | |\n", centerSecs(pct(r.procs, 0.5)), centerSecs(centerLast(r.procs)))
	fmt.Fprintf(&b, "| time between successive pulls of a station (gaps ending in the steady state), p50 / max | %s / %s | | |\n", centerSecs(pct(r.periods, 0.5)), centerSecs(centerLast(r.periods)))
	fmt.Fprintf(&b, "| center peak RSS in the steady state | %s | | |\n", mib(r.steadyRSS))
	notCompared := ""
	if r.digestChecked < r.stations {
		notCompared = fmt.Sprintf("; %d stations never compared: each had moved on between pull and digest", r.stations-r.digestChecked)
	}
	fmt.Fprintf(&b, "| stations whose digests (this month and the one before) match the center's copy | %d of the %d compared%s | all compared | %s |\n", r.digestMatch, r.digestChecked, notCompared, yesno(r.digestChecked > 0 && r.digestMatch == r.digestChecked))
	fmt.Fprintf(&b, "| re-reads / stations with a pull error at the end | %d / %d | 0 / 0 | %s |\n", r.rereads, r.stationErrors, yesno(r.rereads == 0 && r.stationErrors == 0))
	fmt.Fprintf(&b, "| pull failures the center logged (first of each streak, e.g. a page's commit over 30 s) | %d | | |\n", r.pullFailures)
	fmt.Fprintf(&b, "| requests served by the stations (feed / digest) | %d / %d | | |\n", r.feedCalls, r.digestCalls)
	if r.firstPull >= r.interval*9/10 {
		fmt.Fprintf(&b, "\nThe first pull came %s after the center started: its pull loops start before its raft node is leader, find it is not and wait a whole pull interval (center.leaderLoop) before trying again.\n", centerSecs(r.firstPull))
	}
	if r.firstError != "" {
		fmt.Fprintf(&b, "\nA station's last pull error: `%s`\n", r.firstError)
	}
	if r.profile != "" {
		fmt.Fprintf(&b, "\nperf profile of the center process during the consolidation (unstripped build): `%s`.\n", r.profile)
	}
	b.WriteString("\netcd has no counterpart to a center consolidating station feeds: no etcd column here.\n")
	return b.String()
}

// centerSaveHeap saves the heap profile served at url to file.
func centerSaveHeap(url, file string) error {
	b, err := centerGet(url)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}
