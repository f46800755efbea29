// Package e2e tests stationsync as it runs at a station: real
// `stationsync run` processes talking raft over QUIC with mutual TLS,
// driven only through the command line and the HTTP API (see
// internal/harness).
package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stationsync/stationsync/internal/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

const (
	itemCode      = "XC-L-0001"
	leaderTimeout = 20 * time.Second
	syncTimeout   = 20 * time.Second
)

// TestFailoverLeader kills the leader of a 3-node station mid-life.
func TestFailoverLeader(t *testing.T) {
	t.Parallel()
	testFailover(t, "XC-E2E-01", true)
}

// TestFailoverFollower kills a follower of a 3-node station mid-life.
func TestFailoverFollower(t *testing.T) {
	t.Parallel()
	testFailover(t, "XC-E2E-02", false)
}

// testFailover: write through every node, SIGKILL one node, check that the
// survivors keep every acknowledged case and keep taking writes, then
// restart the killed node and check that it catches up.
func testFailover(t *testing.T, station string, killLeader bool) {
	st := harness.NewStation(t, station, 3)
	st.StartAll()
	leader := st.WaitLeader(leaderTimeout)
	before, err := st.Node(leader).Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Members) != 3 {
		t.Fatalf("leader sees members %+v, want 3", before.Members)
	}

	// An item, written through a follower (forwarded to the leader).
	if err := st.Node((leader+1)%3).PutItem(itemCode, "企业开办"); err != nil {
		t.Fatalf("PUT item via follower: %v", err)
	}

	// write creates count cases spread over nodes, one goroutine per node
	// writing concurrently, and records every acknowledged id.
	var acked []string
	write := func(nodes []int, count int, tag string) {
		t.Helper()
		type result struct {
			ids  []string
			errs []string
		}
		results := make([]result, len(nodes))
		var wg sync.WaitGroup
		for w, i := range nodes {
			n := st.Node(i)
			wg.Go(func() {
				for k := w; k < count; k += len(nodes) {
					id, err := writeCase(n, station, fmt.Sprintf("%s-%d", tag, k))
					if err != nil {
						results[w].errs = append(results[w].errs, err.Error())
						return
					}
					results[w].ids = append(results[w].ids, id)
				}
			})
		}
		wg.Wait()
		var errs []string
		for _, r := range results {
			acked = append(acked, r.ids...)
			errs = append(errs, r.errs...)
		}
		if len(errs) > 0 {
			t.Fatalf("writes %s:\n%s", tag, strings.Join(errs, "\n"))
		}
	}
	write([]int{0, 1, 2}, 21, "a")

	victim := leader
	if !killLeader {
		victim = (leader + 1) % 3
	}
	var survivors []int
	for i := range 3 {
		if i != victim {
			survivors = append(survivors, i)
		}
	}
	t.Logf("killing %s (leader %v)", st.Node(victim).ID, victim == leader)
	st.Kill(victim)

	newLeader := st.WaitLeader(leaderTimeout)
	if newLeader == victim {
		t.Fatalf("the killed node %d is still the leader", victim)
	}
	if !killLeader && newLeader != leader {
		t.Logf("note: leader changed from %d to %d after a follower was killed", leader, newLeader)
	}
	after, err := st.Node(newLeader).Status()
	if err != nil {
		t.Fatal(err)
	}
	if killLeader && after.Raft.Term <= before.Raft.Term {
		t.Fatalf("new leader %s in term %d, not after the old term %d", after.Node, after.Raft.Term, before.Raft.Term)
	}

	// Every acknowledged case survives on both survivors.
	st.WaitSync(syncTimeout)
	for _, i := range survivors {
		requireCases(t, st.Node(i), acked)
	}

	// The survivors keep taking writes, through either of them.
	write(survivors, 10, "b")

	// The killed node comes back and catches up.
	st.Start(victim)
	st.WaitLeader(leaderTimeout)
	seq := st.WaitSync(syncTimeout)
	for i := range 3 {
		requireCases(t, st.Node(i), acked)
	}
	// The change feed is the same gapless sequence on every node:
	// the item and each case.
	var feeds [3][]harness.FeedChange
	var clusters [3]string
	for i := range 3 {
		feeds[i], clusters[i], err = st.Node(i).FeedAll()
		if err != nil {
			t.Fatal(err)
		}
		if clusters[i] == "" || clusters[i] != clusters[0] {
			t.Fatalf("cluster ids differ: %q", clusters)
		}
		if uint64(len(feeds[i])) != seq {
			t.Fatalf("%s: feed has %d changes, status says seq %d", st.Node(i).ID, len(feeds[i]), seq)
		}
		for k, c := range feeds[i] {
			if c.Seq != uint64(k+1) {
				t.Fatalf("%s: feed change %d has seq %d: not gapless", st.Node(i).ID, k, c.Seq)
			}
			if i > 0 && (c.Key != feeds[0][k].Key || c.Kind != feeds[0][k].Kind) {
				t.Fatalf("feed seq %d differs: %s has %s %s, %s has %s %s", c.Seq,
					st.Node(0).ID, feeds[0][k].Kind, feeds[0][k].Key, st.Node(i).ID, c.Kind, c.Key)
			}
		}
	}
	var caseChanges int
	for _, c := range feeds[0] {
		if c.Kind == "case" {
			caseChanges++
		}
	}
	if caseChanges != len(acked) {
		t.Fatalf("feed has %d case changes, %d cases were acknowledged", caseChanges, len(acked))
	}

	// The restarted node takes writes again.
	write([]int{victim}, 1, "c")
	st.WaitSync(syncTimeout)
	for i := range 3 {
		requireCases(t, st.Node(i), acked)
	}
}

// writeCase creates one case on n and reads it back there: a 201 means
// the case is applied on the node that answered.
func writeCase(n *harness.Node, station, tag string) (string, error) {
	id, status, err := n.CreateCase(harness.CaseRequest{
		ItemCode:  itemCode,
		Actor:     "clerk-" + n.ID,
		Applicant: harness.Applicant{Kind: "person", Name: "申请人-" + tag},
	})
	if err != nil {
		return "", fmt.Errorf("case %s on %s: %w", tag, n.ID, err)
	}
	if status != http.StatusCreated {
		return "", fmt.Errorf("case %s on %s: status %d, want 201", tag, n.ID, status)
	}
	c, err := n.GetCase(id)
	if err != nil {
		return "", fmt.Errorf("case %s (%s) just acknowledged by %s is not readable there: %w", tag, id, n.ID, err)
	}
	if c.ID != id || c.State != "received" || c.ItemCode != itemCode || c.Station != station || c.Applicant.Name != "申请人-"+tag {
		return "", fmt.Errorf("case %s read back on %s: %+v", id, n.ID, c)
	}
	return id, nil
}

// requireCases checks that node n lists exactly the acknowledged cases,
// each readable by id.
func requireCases(t *testing.T, n *harness.Node, acked []string) {
	t.Helper()
	list, err := n.ListCases()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range list {
		got = append(got, c.ID)
	}
	want := slices.Clone(acked)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("%s lists %d cases, %d were acknowledged\nmissing: %v\nextra: %v",
			n.ID, len(got), len(want), minus(want, got), minus(got, want))
	}
	for _, id := range acked {
		if _, err := n.GetCase(id); err != nil {
			t.Fatalf("%s: GET case %s: %v", n.ID, id, err)
		}
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestBadConfig: `run` with a wrong config exits non-zero at once with one
// line naming the key.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	st := harness.NewStation(t, "XC-E2E-03", 1)
	n := st.Node(0)
	good := n.Config

	cases := []struct {
		name string
		edit func(cfg map[string]any)
		sets []string // extra command-line arguments
		env  []string // extra environment
		key  string
	}{
		{"expect-zero", func(c map[string]any) { c["expect"] = 0 }, nil, nil, "expect"},
		{"unknown-key", func(c map[string]any) { c["bogus_key"] = 1 }, nil, nil, "bogus_key"},
		{"bad-listen", func(c map[string]any) { c["listen"] = "nowhere" }, nil, nil, "listen"},
		{"bad-node-id", func(c map[string]any) { c["node_id"] = "pc 1" }, nil, nil, "node_id"},
		{"bad-duration", func(c map[string]any) { c["raft"] = map[string]any{"election_timeout": "soon"} }, nil, nil, "raft.election_timeout"},
		{"bad-type", func(c map[string]any) { c["expect"] = "three" }, nil, nil, `key "expect"`},
		{"flag-expect", nil, []string{"--set", "expect=-1"}, nil, "expect"},
		{"flag-unknown", nil, []string{"--set", "nosuch=1"}, nil, "nosuch"},
		{"env-expect", nil, nil, []string{"STATIONSYNC_EXPECT=0"}, "expect"},
		{"env-not-a-number", nil, nil, []string{"STATIONSYNC_EXPECT=three"}, "expect"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := map[string]any{}
			for k, v := range good {
				cfg[k] = v
			}
			if tc.edit != nil {
				tc.edit(cfg)
			}
			n.Config = cfg
			st.WithT(t).WriteConfig(0)
			args := append([]string{"run", "--config", n.ConfigPath}, tc.sets...)
			start := time.Now()
			res := harness.RunCLIEnv(t, tc.env, args...)
			if res.ExitCode == 0 {
				t.Fatalf("exit 0 with a bad config; stderr:\n%s", res.Stderr)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v to refuse the config", d)
			}
			requireOneLine(t, res.Stderr, tc.key)
		})
	}

	// The good config still runs: the failures above are the edits'.
	n.Config = good
	st.WriteConfig(0)
	st.Start(0)
	st.WaitLeader(leaderTimeout)
	if err := st.Stop(0); err != nil {
		t.Fatalf("SIGTERM: exit %v", err)
	}
}

// TestCAIssueBadID: `ca issue` refuses ids that cannot be in a certificate.
func TestCAIssueBadID(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	harness.MustRunCLI(t, "ca", "init", "--dir", ca)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"space-in-node", []string{"--station", "XC-E2E-04", "--node", "pc 1"}, "node"},
		{"slash-in-node", []string{"--station", "XC-E2E-04", "--node", "../pc-1"}, "node"},
		{"empty-node", []string{"--station", "XC-E2E-04", "--node", ""}, "node"},
		{"bad-station", []string{"--station", "XC/04", "--node", "pc-1"}, "station"},
		{"bad-role", []string{"--station", "XC-E2E-04", "--node", "pc-1", "--role", "king"}, "role"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name)
			args := append([]string{"ca", "issue", "--ca", ca, "--out", out}, tc.args...)
			res := harness.RunCLI(t, args...)
			if res.ExitCode == 0 {
				t.Fatalf("exit 0; stdout %q", res.Stdout)
			}
			requireOneLine(t, res.Stderr, tc.want)
			if _, err := os.Stat(filepath.Join(out, "node.key")); err == nil {
				t.Errorf("a key was written to %s despite the error", out)
			}
		})
	}
	// A good id works with the same CA.
	harness.MustRunCLI(t, "ca", "issue", "--ca", ca, "--station", "XC-E2E-04", "--node", "pc-1", "--out", filepath.Join(dir, "good"))
	for _, f := range []string{"ca.crt", "node.crt", "node.key"} {
		if _, err := os.Stat(filepath.Join(dir, "good", f)); err != nil {
			t.Errorf("ca issue wrote no %s: %v", f, err)
		}
	}
}

// requireOneLine checks that stderr is one line that mentions want (in
// any case: a key may be named as expect or STATIONSYNC_EXPECT).
func requireOneLine(t *testing.T, stderr, want string) {
	t.Helper()
	msg := strings.TrimSpace(stderr)
	if msg == "" || strings.Contains(msg, "\n") {
		t.Fatalf("stderr is not one line:\n%s", stderr)
	}
	if !strings.Contains(strings.ToLower(msg), strings.ToLower(want)) {
		t.Fatalf("stderr does not name %q: %s", want, msg)
	}
	t.Logf("stderr: %s", msg)
}

// TestAPIRefusesBadInput: malformed writes get a 400 that says what is
// wrong, and change nothing.
func TestAPIRefusesBadInput(t *testing.T) {
	t.Parallel()
	st := harness.NewStation(t, "XC-E2E-05", 1)
	st.StartAll()
	st.WaitLeader(leaderTimeout)
	n := st.Node(0)
	if err := n.PutItem(itemCode, "企业开办"); err != nil {
		t.Fatal(err)
	}
	before, err := n.Status()
	if err != nil {
		t.Fatal(err)
	}
	if before.Feed.Seq == 0 {
		t.Fatalf("feed seq 0 after writing an item")
	}

	goodCase := `{"item_code":"` + itemCode + `","channel":"window","actor":"clerk-07","applicant":{"kind":"person","name":"张三"}`
	huge := `{"item_code":"` + itemCode + `","channel":"window","actor":"clerk-07","applicant":{"kind":"person","name":"` +
		strings.Repeat("x", 1<<20+100) + `"}}`
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		field  string // error.field, when the API must name one
	}{
		{"unknown-field", "POST", "/v1/cases", goodCase + `,"colour":"red"}`, "colour"},
		{"unknown-nested-field", "POST", "/v1/cases", `{"item_code":"` + itemCode + `","channel":"window","actor":"a","applicant":{"kind":"person","name":"张三","age":3}}`, "age"},
		{"bad-json", "POST", "/v1/cases", `{"item_code": "` + itemCode + `",`, ""},
		{"not-an-object", "POST", "/v1/cases", `[1,2,3]`, ""},
		{"empty-body", "POST", "/v1/cases", ``, ""},
		{"trailing-data", "POST", "/v1/cases", goodCase + `}{}`, ""},
		{"too-large", "POST", "/v1/cases", huge, ""},
		{"missing-item-code", "POST", "/v1/cases", `{"channel":"window","actor":"clerk-07","applicant":{"kind":"person","name":"张三"}}`, "item_code"},
		{"wrong-type", "POST", "/v1/cases", goodCase + `,"tolerance":"yes"}`, "tolerance"},
		{"bad-channel", "POST", "/v1/cases", `{"item_code":"` + itemCode + `","channel":"pigeon","actor":"a","applicant":{"kind":"person","name":"张三"}}`, "channel"},
		{"missing-applicant", "POST", "/v1/cases", `{"item_code":"` + itemCode + `","channel":"window","actor":"a"}`, "applicant"},
		{"item-unknown-field", "PUT", "/v1/items/XC-L-0002", `{"name":"x","type":{"code":"20","name":"公共服务"},"colour":"red"}`, "colour"},
		{"item-bad-json", "PUT", "/v1/items/XC-L-0002", `{"name":`, ""},
		{"item-too-large", "PUT", "/v1/items/XC-L-0002", `{"name":"` + strings.Repeat("x", 1<<20+100) + `"}`, ""},
		{"item-code-mismatch", "PUT", "/v1/items/XC-L-0002", `{"code":"XC-L-0003","name":"x","type":{"code":"20","name":"公共服务"}}`, "code"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			switch tc.method {
			case "POST":
				_, err = n.Post(tc.path, tc.body, nil)
			case "PUT":
				_, err = n.Put(tc.path, tc.body, nil)
			}
			var ae *harness.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("want an API error, got %v", err)
			}
			if ae.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %v", ae.Status, ae)
			}
			if ae.Code == "" || ae.Message == "" {
				t.Fatalf("error body lacks code or message: %s", ae.Body)
			}
			if tc.field != "" && ae.Field != tc.field && !strings.HasSuffix(ae.Field, "."+tc.field) {
				t.Fatalf("error.field %q, want %q: %v", ae.Field, tc.field, ae)
			}
			if tc.field != "" && !strings.Contains(ae.Message, tc.field) {
				t.Errorf("message does not name %q: %s", tc.field, ae.Message)
			}
		})
	}

	// Nothing was written.
	after, err := n.Status()
	if err != nil {
		t.Fatal(err)
	}
	if after.Feed.Seq != before.Feed.Seq {
		t.Fatalf("feed seq went from %d to %d after refused writes", before.Feed.Seq, after.Feed.Seq)
	}
	page, err := n.Feed(before.Feed.Seq, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Changes) != 0 {
		t.Fatalf("feed has changes after the refused writes: %+v", page.Changes)
	}
	cases, err := n.ListCases()
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 0 {
		t.Fatalf("%d cases exist after refused writes", len(cases))
	}
	if _, err := n.Get("/v1/items/XC-L-0002", nil); err == nil {
		t.Fatal("item XC-L-0002 exists after refused writes")
	}

	// The node still takes a good write.
	if _, status, err := n.CreateCase(harness.CaseRequest{ItemCode: itemCode}); err != nil || status != http.StatusCreated {
		t.Fatalf("good case after bad ones: %d %v", status, err)
	}
}
