//go:build linux

// Package chaos is stationsync's fault-injection suite, in the spirit of
// the Jepsen tests of etcd, rqlite and dqlite: a station of five real
// `stationsync run` processes, each in its own network namespace (a PC on
// a simulated LAN, internal/netns), and a district center in a sixth;
// clerks write cases and lifecycle events through the HTTP API of every
// PC and record every request and its answer; a nemesis meanwhile
// partitions the LAN, kills, pauses and restarts processes, restarts the
// center, cuts the station from the center, fills a PC's disk (a tmpfs
// holding its data_dir) and frees it, and skews a PC's clock. When the
// time is up everything is healed and a checker proves that
//
//   - every event a node answered 201 or 202 for is present exactly once on
//     every PC and at the center, and every write answered with a refusal
//     (4xx) is present nowhere;
//   - every case is identical everywhere (state, events in order, flags);
//   - no case or event is present that no clerk sent;
//   - every PC holds the center's version of the district item list;
//   - the center's per-month digests match the station's;
//   - no applicant ID number or phone number is in any log.
//
// A violation fails the test with the case id and that case's history
// (every request about it, its answer and timing) and what each place
// holds.
//
// Run it: `make chaos` (30 minutes, the CI machine's long run) or
// `go test -run TestChaos ./chaos/` (the short run `make test` includes).
// Environment: CHAOS_DURATION (how long the nemesis runs; default 75s),
// CHAOS_SEED (the random seed; printed at the start, to replay a run's
// choice of faults), CHAOS_CLERKS (default 10). Needs root (network
// namespaces, SIGSTOP of another user's process is not needed); skips
// without it, and fails under CI (CI set) where it must run.
//
// The binary is built with the "chaos" tag, which only adds the clock
// hook (daemon/clock_chaos.go): each node reads a skew for its hybrid
// logical clock from a file the nemesis writes.
package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stationsync/stationsync/internal/harness"
	"github.com/stationsync/stationsync/internal/netns"
)

func TestMain(m *testing.M) {
	harness.BuildTags("chaos")
	harness.Main(m)
}

const (
	stationID = "XC-CHAOS-01"
	// nodes is the station's size.
	nodes = 5
	// localItem is the station-local item the clerks' cases are for;
	// districtItem the item the center publishes and updates.
	localItem    = "XC-L-0001"
	districtItem = "XC-D-0001"
	// leaderTimeout bounds electing a leader at the start and after
	// healing.
	leaderTimeout = 60 * time.Second
	// convergeTimeout bounds everything settling after the last fault is
	// healed: outboxes delivered, every PC and the center caught up.
	convergeTimeout = 4 * time.Minute
	// pullInterval and catalogueInterval: short, so convergence is quick.
	pullInterval      = "2s"
	catalogueInterval = "2s"
	// diskNode is the PC whose data_dir is on a disk of diskSize bytes
	// the nemesis fills (disk-full).
	diskNode = nodes - 1
	diskSize = 2 << 30
)

// env is the district under test.
type env struct {
	t      *testing.T
	rng    *rand.Rand
	nw     *netns.Network
	st     *harness.Station
	center *harness.Station
	hosts  []*netns.Host // the station's, h0..h4
	chost  *netns.Host   // the center's
	hist   *history
	faults map[string]int // faults injected, by kind
	// fault state, to heal
	killed  map[int]bool
	paused  map[int]bool
	skewed  map[int]bool
	catalog *catalogue
	disk    string // the mount point of diskNode's data disk
	filled  bool
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 30m", name, v)
	}
	return d
}

func envInt(t *testing.T, name string, def int64) int64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func TestChaos(t *testing.T) {
	duration := envDuration(t, "CHAOS_DURATION", 75*time.Second)
	seed := envInt(t, "CHAOS_SEED", time.Now().UnixNano()%1e12+1)
	clerks := int(envInt(t, "CHAOS_CLERKS", 10))
	t.Logf("chaos: %v of faults, seed %d (CHAOS_SEED=%d replays the choice of faults), %d clerks", duration, seed, seed, clerks)

	e := setup(t, seed)
	start := time.Now()
	stop := e.startWorkload(clerks)
	e.nemesis(duration)
	e.healAll()
	ops := stop()
	t.Logf("chaos: workload and nemesis done after %v: %s; faults %s", time.Since(start).Round(time.Second), ops, e.faultSummary())

	e.converge()
	report := e.check()
	t.Logf("chaos: checked after %v: %s", time.Since(start).Round(time.Second), report)
	e.writeSummary(duration, seed, ops, report)
}

func setup(t *testing.T, seed int64) *env {
	nw := netns.New(t, "10.239.0.0/24")
	e := &env{
		t: t, rng: rand.New(rand.NewPCG(uint64(seed), 0x5eed)), nw: nw, hist: newHistory(),
		faults: map[string]int{}, killed: map[int]bool{}, paused: map[int]bool{}, skewed: map[int]bool{},
	}
	for i := range nodes {
		e.hosts = append(e.hosts, nw.AddHost(fmt.Sprintf("h%d", i)))
	}
	e.chost = nw.AddHost("c0")
	centerAddr := e.chost.IP() + ":" + strconv.Itoa(harness.NetworkQUICPort)
	// The last PC keeps its data on a disk of its own (a tmpfs) that the
	// nemesis fills. Mounted before the station is made, so it is
	// unmounted after the station's cleanup has killed the node.
	e.disk = mountDisk(t, diskSize)
	e.st = harness.NewStation(t, stationID, nodes,
		harness.WithNetwork(nw),
		harness.WithStaticPeers(),
		harness.WithConfig(func(i int, cfg map[string]any) {
			cfg["center"] = centerAddr
			cfg["outbox_after"] = "500ms"
			cfg["catalogue_interval"] = catalogueInterval
			if i == diskNode {
				cfg["data_dir"] = filepath.Join(e.disk, "data")
			}
			// Debug logs: the most a node ever writes, for the scan for
			// personal data.
			cfg["log"] = map[string]any{"level": "debug", "format": "text"}
		}),
	)
	for _, n := range e.st.Nodes() {
		n.Env = append(n.Env, "CHAOS_CLOCK_SKEW_FILE="+skewFile(n))
	}
	e.center = harness.NewCenter(t, e.st.CADir, 1, []harness.CenterStation{e.st.CenterRef("混沌测试站")},
		harness.WithNetwork(nw),
		harness.WithConfig(func(i int, cfg map[string]any) {
			cfg["pull_interval"] = pullInterval
			cfg["log"] = map[string]any{"level": "debug", "format": "text"}
		}),
	)
	e.center.StartAll()
	e.st.StartAll()
	leader := e.st.WaitLeader(leaderTimeout)
	if err := e.st.Node(leader).PutItem(localItem, "混沌测试事项"); err != nil {
		t.Fatal(err)
	}
	e.catalog = &catalogue{center: e.center.Node(0)}
	if err := e.catalog.publish(); err != nil {
		t.Fatalf("publish %s at the center: %v", districtItem, err)
	}
	e.st.WaitSync(leaderTimeout)
	return e
}

func skewFile(n *harness.Node) string { return filepath.Join(n.Dir, "clock-skew") }

// faultSummary is "kind n, kind n ..." sorted by kind.
func (e *env) faultSummary() string {
	var kinds []string
	total := 0
	for k, n := range e.faults {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		total += n
	}
	slices.Sort(kinds)
	return fmt.Sprintf("%d (%s)", total, strings.Join(kinds, ", "))
}

// writeSummary appends the run's figures to CHAOS_SUMMARY (a file), when
// set, for `make chaos` to show and the README to quote.
func (e *env) writeSummary(d time.Duration, seed int64, ops opCounts, r checkReport) {
	path := os.Getenv("CHAOS_SUMMARY")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		e.t.Errorf("CHAOS_SUMMARY: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s chaos run: %v of faults, seed %d\n  operations: %s\n  faults: %s\n  checked: %s\n",
		time.Now().UTC().Format(time.RFC3339), d, seed, ops, e.faultSummary(), r)
}
