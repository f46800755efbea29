//go:build linux

package chaos

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stationsync/stationsync/internal/harness"
)

// caseView is a case as a station PC or the center shows it.
type caseView struct {
	ID      string      `json:"id"`
	State   string      `json:"state"`
	Pending bool        `json:"pending"`
	Events  []eventView `json:"events"`
}

type eventView struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Conflict bool   `json:"conflict"`
	Pending  bool   `json:"pending"`
}

// sig is what must be identical everywhere once the district converged.
func (c caseView) sig() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s pending=%v:", c.State, c.Pending)
	for _, e := range c.Events {
		fmt.Fprintf(&b, " %s/%s", e.ID, e.Type)
		if e.Conflict {
			b.WriteString("/conflict")
		}
		if e.Pending {
			b.WriteString("/pending")
		}
	}
	return b.String()
}

// dumpStuck logs the goroutine stacks of every PC whose raft is not
// running (state shutdown) or whose API does not answer: where it is
// stuck. Those PCs are ended by it (SIGQUIT).
func (e *env) dumpStuck() {
	for _, n := range e.st.Nodes() {
		if !n.Running() {
			continue
		}
		var s nodeStatus
		_, err := n.Get("/v1/status", &s)
		if err == nil && s.Raft.State != "shutdown" {
			continue
		}
		stacks, derr := n.Goroutines()
		if derr != nil {
			e.t.Logf("%s (status %v, raft %q): no goroutine dump: %v", n.ID, err, s.Raft.State, derr)
			continue
		}
		e.t.Logf("---- %s (status error %v, raft %q): goroutines ----\n%s", n.ID, err, s.Raft.State, stacks)
	}
}

type nodeStatus struct {
	Raft   harness.RaftStatus `json:"raft"`
	Feed   harness.FeedStatus `json:"feed"`
	Outbox struct {
		Pending int `json:"pending"`
	} `json:"outbox"`
}

type stationView struct {
	ID        string `json:"id"`
	Cursor    uint64 `json:"cursor"`
	Head      uint64 `json:"head"`
	ClusterID string `json:"cluster_id"`
	LagEvents uint64 `json:"lag_events"`
	LastError string `json:"last_error"`
	Digests   []struct {
		Month string    `json:"month"`
		Match bool      `json:"match"`
		At    time.Time `json:"at"`
	} `json:"digests"`
}

type itemView struct {
	Code    string `json:"code"`
	Name    string `json:"name"`
	Version uint64 `json:"version"`
}

// converge waits until the healed district has settled: a leader, every
// outbox delivered, every PC at the same feed position, the center caught
// up with it and its digests checked since, and every PC holding the
// center's version of the district item. It fails with what is missing.
func (e *env) converge() {
	start := time.Now()
	deadline := start.Add(convergeTimeout)
	e.st.WaitLeader(leaderTimeout)
	wait := func(what string, done func() (bool, string)) {
		said := time.Now()
		for {
			okay, why := done()
			if okay {
				e.t.Logf("converge: %s after %v", what, time.Since(start).Round(100*time.Millisecond))
				return
			}
			if time.Now().After(deadline) {
				e.dumpStuck()
				e.t.Fatalf("not converged %v after healing: %s: %s", convergeTimeout, what, why)
			}
			if time.Since(said) > 20*time.Second {
				e.t.Logf("converge: still waiting until %s: %s", what, why)
				said = time.Now()
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	wait("every outbox delivered", func() (bool, string) {
		for _, n := range e.st.Nodes() {
			var s nodeStatus
			if _, err := n.Get("/v1/status", &s); err != nil {
				return false, fmt.Sprintf("%s: %v", n.ID, err)
			}
			if s.Outbox.Pending != 0 {
				return false, fmt.Sprintf("%s: %d writes in its outbox", n.ID, s.Outbox.Pending)
			}
		}
		return true, ""
	})
	wait("every PC has the center's district item", func() (bool, string) {
		want, err := e.centerItem()
		if err != nil {
			return false, err.Error()
		}
		for _, n := range e.st.Nodes() {
			var it itemView
			if _, err := n.Get("/v1/items/"+districtItem, &it); err != nil {
				return false, fmt.Sprintf("%s: %v", n.ID, err)
			}
			if it.Version != want.Version || it.Name != want.Name {
				return false, fmt.Sprintf("%s has version %d %q, the center %d %q", n.ID, it.Version, it.Name, want.Version, want.Name)
			}
		}
		return true, ""
	})
	// The station is quiet now (the clerks stopped, outboxes are empty and
	// the last catalogue version is in): its feed no longer moves.
	seq := e.st.WaitSync(time.Until(deadline))
	healed := time.Now()
	wait("the center caught up and checked the digests", func() (bool, string) {
		var st nodeStatus
		if _, err := e.st.Node(0).Get("/v1/status", &st); err != nil {
			return false, err.Error()
		}
		if st.Feed.Seq != seq {
			// Something was still written after all: start over.
			seq, healed = st.Feed.Seq, time.Now()
		}
		var a struct {
			Stations []stationView `json:"stations"`
		}
		if _, err := e.center.Node(0).Get("/v1/stations", &a); err != nil {
			return false, err.Error()
		}
		for _, s := range a.Stations {
			if s.ID != stationID {
				continue
			}
			if s.Cursor != seq || s.LagEvents != 0 {
				return false, fmt.Sprintf("cursor %d of %d (head %d, lag %d, last error %q)", s.Cursor, seq, s.Head, s.LagEvents, s.LastError)
			}
			if len(s.Digests) == 0 {
				return false, "no digest checked yet"
			}
			for _, d := range s.Digests {
				if !d.At.After(healed) {
					return false, fmt.Sprintf("digest of %s last checked %s, before the station settled", d.Month, d.At.Format(time.TimeOnly))
				}
				if !d.Match {
					return false, fmt.Sprintf("digest of %s does not match (the center re-reads)", d.Month)
				}
			}
			return true, ""
		}
		return false, "the center does not list " + stationID
	})
}

func (e *env) centerItem() (itemView, error) {
	var list struct {
		Items []itemView `json:"items"`
	}
	if _, err := e.center.Node(0).Get("/v1/catalogue/items", &list); err != nil {
		return itemView{}, err
	}
	for _, it := range list.Items {
		if it.Code == districtItem {
			return it, nil
		}
	}
	return itemView{}, fmt.Errorf("the center's catalogue has no %s", districtItem)
}

// checkReport sums up what the checker verified.
type checkReport struct {
	Places, Cases, Events, Violations int
	LogLines                          int
}

func (r checkReport) String() string {
	return fmt.Sprintf("%d cases with %d events identical at %d places (5 PCs and the center), %d log lines scanned for personal data, %d violations",
		r.Cases, r.Events, r.Places, r.LogLines, r.Violations)
}

// expect is what the history says about one case.
type expect struct {
	created  outcome // best outcome of its create requests
	okEvents map[string]bool
	refused  map[string]bool
	sent     map[string]bool
}

func (e *env) expectations() map[string]*expect {
	exp := map[string]*expect{}
	for _, o := range e.hist.all() {
		x := exp[o.CaseID]
		if x == nil {
			x = &expect{created: unknown, okEvents: map[string]bool{}, refused: map[string]bool{}, sent: map[string]bool{}}
			exp[o.CaseID] = x
		}
		if o.Kind == "create" {
			if o.Outcome == ok || (o.Outcome == refused && x.created == unknown) {
				x.created = o.Outcome
			}
			continue
		}
		x.sent[o.EventID] = true
		switch o.Outcome {
		case ok:
			x.okEvents[o.EventID] = true
		case refused:
			x.refused[o.EventID] = true
		}
	}
	return exp
}

// check reads every case from every PC and the center and compares them
// with the history and with each other.
func (e *env) check() checkReport {
	exp := e.expectations()
	places := map[string]map[string]caseView{}
	var order []string
	for _, n := range e.st.Nodes() {
		cs, err := listCases(n, "")
		if err != nil {
			e.t.Fatal(err)
		}
		places[n.ID] = cs
		order = append(order, n.ID)
	}
	cs, err := listCases(e.center.Node(0), stationID)
	if err != nil {
		e.t.Fatal(err)
	}
	places["center"] = cs
	order = append(order, "center")

	report, violations, bad := verify(exp, places, order)
	lines, leaks := e.scanLogs(exp)
	report.LogLines = lines
	for _, l := range leaks {
		violations = append(violations, "(logs): "+l)
	}
	report.Violations = len(violations)
	if len(violations) > 0 {
		var b strings.Builder
		for k, v := range violations {
			if k == 40 {
				fmt.Fprintf(&b, "... and %d more\n", len(violations)-k)
				break
			}
			b.WriteString(v + "\n")
		}
		for k, id := range bad {
			if k == 8 {
				break
			}
			fmt.Fprintf(&b, "\nhistory of %s:\n%s", id, e.hist.ofCase(id))
			for _, place := range order {
				if c, present := places[place][id]; present {
					fmt.Fprintf(&b, "  at %s: %s\n", place, c.sig())
				} else {
					fmt.Fprintf(&b, "  at %s: absent\n", place)
				}
			}
		}
		e.t.Fatalf("%d violations:\n%s", len(violations), b.String())
	}
	return report
}

// verify compares what each place holds (places[name][case id]; order
// lists the names, the first being the reference) with the history's
// expectations and with each other. It returns the violations, each
// starting with its case id, and the ids of the cases involved, sorted.
func verify(exp map[string]*expect, places map[string]map[string]caseView, order []string) (checkReport, []string, []string) {
	var violations []string
	bad := map[string]bool{}
	violate := func(caseID, format string, args ...any) {
		violations = append(violations, caseID+": "+fmt.Sprintf(format, args...))
		bad[caseID] = true
	}
	report := checkReport{Places: len(order)}
	for _, place := range order {
		got := places[place]
		for id, x := range exp {
			c, present := got[id]
			switch {
			case x.created == ok && !present:
				violate(id, "answered 201/202 at creation, missing at %s", place)
				continue
			case x.created == refused && present:
				violate(id, "creation was refused, yet %s has it", place)
				continue
			case !present:
				// Never definitely created: absent is right, and so are its
				// events (a clerk moves on).
				continue
			}
			count := map[string]int{}
			received := 0
			for _, ev := range c.Events {
				if ev.Type == "received" {
					received++
					continue
				}
				count[ev.ID]++
				if !x.sent[ev.ID] {
					violate(id, "%s has event %s (%s) that no clerk sent", place, ev.ID, ev.Type)
				}
			}
			if received != 1 {
				violate(id, "%s has %d received events, want 1", place, received)
			}
			for ev := range x.okEvents {
				if count[ev] != 1 {
					violate(id, "event %s answered 201/202 is present %d times at %s", ev, count[ev], place)
				}
			}
			for ev := range x.refused {
				if count[ev] != 0 {
					violate(id, "event %s was refused, yet %s has it %d times", ev, place, count[ev])
				}
			}
			for ev, n := range count {
				if n > 1 {
					violate(id, "event %s is present %d times at %s", ev, n, place)
				}
			}
			if c.Pending || slices.ContainsFunc(c.Events, func(ev eventView) bool { return ev.Pending }) {
				violate(id, "still pending at %s after every outbox was delivered", place)
			}
		}
		for id := range got {
			if exp[id] == nil {
				violate(id, "%s has a case no clerk created", place)
			}
		}
	}
	// Identical everywhere.
	ref := places[order[0]]
	for id, c := range ref {
		report.Cases++
		report.Events += len(c.Events)
		for _, place := range order[1:] {
			o, present := places[place][id]
			if present && o.sig() != c.sig() {
				violate(id, "differs: %s has %s; %s has %s", order[0], c.sig(), place, o.sig())
			}
		}
	}
	for _, place := range order[1:] {
		if len(places[place]) != len(ref) {
			violate("(all)", "%s holds %d cases, %s %d", place, len(places[place]), order[0], len(ref))
		}
	}
	var ids []string
	for id := range bad {
		if !strings.HasPrefix(id, "(") {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	slices.Sort(violations)
	return report, violations, ids
}

// listCases reads every case of a PC (station "") or of one station at
// the center, following pages.
func listCases(n *harness.Node, station string) (map[string]caseView, error) {
	all := map[string]caseView{}
	after := ""
	for range 100000 {
		q := url.Values{"limit": {"1000"}}
		if station != "" {
			q.Set("station", station)
		}
		if after != "" {
			q.Set("after", after)
		}
		var page struct {
			Cases []caseView `json:"cases"`
			Next  string     `json:"next"`
		}
		if _, err := n.Get("/v1/cases?"+q.Encode(), &page); err != nil {
			return nil, fmt.Errorf("%s: list cases: %w", n.ID, err)
		}
		for _, c := range page.Cases {
			if _, dup := all[c.ID]; dup {
				return nil, fmt.Errorf("%s lists case %s twice", n.ID, c.ID)
			}
			all[c.ID] = c
		}
		if page.Next == "" || len(page.Cases) == 0 {
			return all, nil
		}
		after = page.Next
	}
	return nil, fmt.Errorf("%s: too many pages of cases", n.ID)
}

var digits = regexp.MustCompile(`[0-9]{11,18}`)

// scanLogs looks for the applicants' ID numbers and phone numbers in
// every log of the run.
func (e *env) scanLogs(exp map[string]*expect) (lines int, leaks []string) {
	secret := map[string]bool{}
	for id := range exp {
		var c, k int
		if _, err := fmt.Sscanf(id, "chaos-%d-%d", &c, &k); err == nil {
			secret[idNumber(c, k)] = true
			secret[phone(c, k)] = true
		}
	}
	nodes := append(e.st.Nodes(), e.center.Nodes()...)
	for _, n := range nodes {
		f, err := os.Open(n.LogPath)
		if err != nil {
			e.t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		ln := 0
		for sc.Scan() {
			ln++
			for _, m := range digits.FindAllString(sc.Text(), -1) {
				if secret[m] {
					leaks = append(leaks, fmt.Sprintf("%s:%s: personal data %s in the log", n.LogPath, strconv.Itoa(ln), m))
				}
			}
		}
		f.Close()
		lines += ln
	}
	return lines, leaks
}
