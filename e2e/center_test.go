package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the center's month is Asia/Shanghai's, whatever the host has

	"github.com/stationsync/stationsync/internal/harness"
)

// The district center as real processes: one district CA, station XC-A of
// three PCs, station XC-B of one PC and a center of one PC, all
// `stationsync run` on loopback, driven through their HTTP APIs only.
// center/center_test.go tests the same behaviour in one process.

const (
	districtItem  = "XC-D-0001"
	localItemB    = "XC-L-0002"
	centerTimeout = 45 * time.Second // a catch-up, possibly after the pull loop's backoff
	pollCenter    = 200 * time.Millisecond
)

// district is the running setup the subtests of TestCenter share.
type district struct {
	a, b   *harness.Station // XC-A (3 PCs) and XC-B (1 PC)
	center *harness.Station
	loc    *time.Location
	seq    int // numbers client case ids
	// bCases is every case created at XC-B (client ids), with the item and
	// the explicit id of its accepted event ("" if none): what a rebuilt
	// XC-B re-creates.
	bCases []bCase
}

type bCase struct {
	id, item, accepted string
}

// centerStationView is one station of the center's GET /v1/stations.
type centerStationView struct {
	ID        string `json:"id"`
	Cursor    uint64 `json:"cursor"`
	Head      uint64 `json:"head"`
	ClusterID string `json:"cluster_id"`
	LagEvents uint64 `json:"lag_events"`
	LastError string `json:"last_error"`
	Rereads   int    `json:"rereads"`
	Sync      string `json:"sync"`
	Digests   []struct {
		Month      string `json:"month"`
		Match      bool   `json:"match"`
		Persistent bool   `json:"persistent"`
		Station    struct {
			Count int `json:"count"`
		} `json:"station"`
		Center struct {
			Count int `json:"count"`
		} `json:"center"`
	} `json:"digests"`
}

// TestCenter: two stations and a district center that share one CA.
// Cases reach the center exactly once, district items reach every PC,
// and the center catches up with no gap and no duplicate after its own
// outage, a station's outage and a station rebuilt from scratch.
func TestCenter(t *testing.T) {
	t.Parallel()
	loc, err := time.LoadLocation("Asia/Shanghai") // the center's default timezone
	if err != nil {
		t.Fatal(err)
	}
	stationCfg := harness.WithConfig(func(i int, cfg map[string]any) { cfg["catalogue_interval"] = "1s" })
	a := harness.NewStation(t, "XC-A", 3, stationCfg)
	b := harness.NewStation(t, "XC-B", 1, stationCfg)
	b.UseCA(a.CADir) // one district CA
	c := harness.NewCenter(t, a.CADir, 1, []harness.CenterStation{a.CenterRef("阳澄湖国际科创园"), b.CenterRef("大数据与车联网创新中心")},
		harness.WithConfig(func(i int, cfg map[string]any) { cfg["pull_interval"] = "1s" }))
	for _, st := range []*harness.Station{a, b} {
		for i, n := range st.Nodes() {
			n.Config["center"] = c.CenterAddress()
			st.WriteConfig(i)
		}
	}
	d := &district{a: a, b: b, center: c, loc: loc}
	// Registered after the harness's cleanups: runs before they kill the
	// nodes and print their logs.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- center GET /v1/stations at the end ----\n%s", d.stationsDump())
		}
	})

	c.StartAll()
	a.StartAll()
	b.StartAll()
	c.WaitLeader(leaderTimeout)
	a.WaitLeader(leaderTimeout)
	b.WaitLeader(leaderTimeout)
	if err := a.Node(1).PutItem(itemCode, "本站事项A"); err != nil {
		t.Fatalf("local item at XC-A: %v", err)
	}
	if err := b.Node(0).PutItem(itemCode, "本站事项B"); err != nil {
		t.Fatalf("local item at XC-B: %v", err)
	}

	for _, step := range []struct {
		name string
		fn   func(t *testing.T, d *district)
	}{
		{"Consolidates", testCenterConsolidates},
		{"Catalogue", testCenterCatalogue},
		{"CenterOutage", testCenterOutage},
		{"StationOutage", testCenterStationOutage},
		{"StationRebuilt", testCenterStationRebuilt},
	} {
		if !t.Run(step.name, func(t *testing.T) { step.fn(t, d) }) {
			return // the later steps build on this one
		}
	}
}

// testCenterConsolidates: cases created at each station, through
// different PCs, appear at the center under their station exactly once.
func testCenterConsolidates(t *testing.T, d *district) {
	a := d.a.WithT(t)
	for k := range 6 {
		d.writeA(t, k%3, fmt.Sprintf("s1-%d", k))
	}
	listA, err := a.Node(0).ListCases()
	if err != nil || len(listA) == 0 {
		t.Fatalf("cases at XC-A: %d, %v", len(listA), err)
	}
	// One case moves on, accepted on another PC than it was received on.
	if _, err := a.Node(2).Post("/v1/cases/"+url.PathEscape(listA[0].ID)+"/events",
		map[string]any{"type": "accepted", "actor": "clerk-pc-3"}, nil); err != nil {
		t.Fatalf("accept at XC-A: %v", err)
	}
	for k := range 4 {
		d.writeB(t, itemCode, k%2 == 0)
	}
	d.caughtUp(t, d.a, centerTimeout)
	d.caughtUp(t, d.b, centerTimeout)
	d.sameCases(t, d.a)
	d.sameCases(t, d.b)

	// A case is shown under its own station only.
	var shown harness.Case
	if _, err := d.center.Node(0).Get("/v1/cases/"+url.PathEscape(listA[0].ID)+"?station=XC-A", &shown); err != nil {
		t.Fatalf("GET case of XC-A at the center: %v", err)
	}
	if shown.ID != listA[0].ID || shown.Station != "XC-A" || shown.State != "accepted" {
		t.Fatalf("case at the center: %+v", shown)
	}
	if _, err := d.center.Node(0).Get("/v1/cases/"+url.PathEscape(listA[0].ID)+"?station=XC-B", nil); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("case of XC-A asked under XC-B: %v, want 404", err)
	}
	// The month's statistics count every case once.
	var stats struct {
		Stations []struct {
			Station string `json:"station"`
			Total   struct {
				Received int `json:"received"`
			} `json:"total"`
		} `json:"stations"`
		Total struct {
			Received int `json:"received"`
		} `json:"total"`
	}
	if _, err := d.center.Node(0).Get("/v1/stats/monthly?month="+time.Now().In(d.loc).Format("2006-01"), &stats); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, s := range stats.Stations {
		got[s.Station] = s.Total.Received
	}
	if got["XC-A"] != 6 || got["XC-B"] != 4 || stats.Total.Received != 10 {
		t.Fatalf("monthly stats received: %v, total %d; want XC-A 6, XC-B 4, total 10", got, stats.Total.Received)
	}
}

// testCenterCatalogue: a district item published at the center reaches
// every PC of every station, and its update does not touch the stations'
// local items.
func testCenterCatalogue(t *testing.T, d *district) {
	cn := d.center.Node(0)
	item := map[string]any{"name": "企业开办", "type": map[string]any{"code": "20", "name": "公共服务"}}
	if _, err := cn.Put("/v1/catalogue/items/"+districtItem, item, nil); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if err := d.b.Node(0).PutItem(localItemB, "本站特色事项"); err != nil {
		t.Fatalf("local item at XC-B: %v", err)
	}
	d.itemEverywhere(t, 1, "企业开办")
	item["name"] = "企业开办一窗通办"
	var published struct {
		Version uint64 `json:"version"`
		Origin  string `json:"origin"`
	}
	if _, err := cn.Put("/v1/catalogue/items/"+districtItem, item, &published); err != nil {
		t.Fatalf("update: %v", err)
	}
	if published.Version != 2 || published.Origin != "district" {
		t.Fatalf("the center answered the update with %+v, want version 2 of a district item", published)
	}
	d.itemEverywhere(t, 2, "企业开办一窗通办")
	// Local items stay as their station wrote them, on every PC.
	for _, want := range []struct {
		st         *harness.Station
		code, name string
	}{{d.a, itemCode, "本站事项A"}, {d.b, itemCode, "本站事项B"}, {d.b, localItemB, "本站特色事项"}} {
		for _, n := range want.st.Nodes() {
			it := getItem(t, n, want.code)
			if it.Origin != "local" || it.Name != want.name {
				t.Fatalf("%s/%s: local item %s after the district update: %+v", want.st.ID, n.ID, want.code, it)
			}
		}
	}
	// The district item takes cases at both stations.
	d.writeB(t, districtItem, true)
	if _, status, err := d.a.Node(1).CreateCase(harness.CaseRequest{ItemCode: districtItem}); err != nil || status != http.StatusCreated {
		t.Fatalf("case for the district item at XC-A: %d %v", status, err)
	}
}

// testCenterOutage: the center is killed; both stations take cases
// meanwhile; the restarted center catches up with no gap and no
// duplicate.
func testCenterOutage(t *testing.T, d *district) {
	c := d.center.WithT(t)
	c.Kill(0)
	for k := range 6 {
		d.writeA(t, k%3, fmt.Sprintf("s3-%d", k))
	}
	for k := range 3 {
		d.writeB(t, itemCode, k == 1)
	}
	c.Start(0)
	c.WaitLeader(leaderTimeout)
	d.caughtUp(t, d.a, centerTimeout)
	d.caughtUp(t, d.b, centerTimeout)
	d.sameCases(t, d.a)
	d.sameCases(t, d.b)
}

// testCenterStationOutage: every PC of XC-B stops; the center reports
// XC-B not green with an error and keeps pulling XC-A; XC-B comes back
// and the center catches up with no gap and no duplicate.
func testCenterStationOutage(t *testing.T, d *district) {
	b := d.b.WithT(t)
	for i := range b.Len() {
		if err := b.Stop(i); err != nil {
			t.Errorf("XC-B %s exited with %v on SIGTERM", b.Node(i).ID, err)
		}
	}
	start := time.Now()
	d.waitStation(t, "XC-B", centerTimeout, "the center reports XC-B down", func(s centerStationView) string {
		if s.Sync == "green" || s.LastError == "" {
			return fmt.Sprintf("sync %s, last_error %q", s.Sync, s.LastError)
		}
		return ""
	})
	t.Logf("the center reported XC-B down after %v", time.Since(start).Round(time.Millisecond))
	// XC-A goes on, and so does the center's pull of it.
	for k := range 3 {
		d.writeA(t, k%3, fmt.Sprintf("s4-%d", k))
	}
	d.caughtUp(t, d.a, centerTimeout)

	b.StartAll()
	b.WaitLeader(leaderTimeout)
	for k := range 3 {
		d.writeB(t, itemCode, k == 2)
	}
	d.caughtUp(t, d.b, centerTimeout)
	d.caughtUp(t, d.a, centerTimeout)
	d.sameCases(t, d.b)
	d.sameCases(t, d.a)
}

// testCenterStationRebuilt: XC-B loses its data and starts from scratch
// (a new cluster id); its clerks enter the same cases again with the same
// client ids and event ids, and some new ones. The center reads it again
// from the start and doubles nothing.
func testCenterStationRebuilt(t *testing.T, d *district) {
	b := d.b.WithT(t)
	before, err := b.Node(0).Status()
	if err != nil {
		t.Fatal(err)
	}
	oldCluster := before.Feed.ClusterID
	atCenter := d.centerCases(t, "XC-B")
	for i := range b.Len() {
		if err := b.Stop(i); err != nil {
			t.Errorf("XC-B %s exited with %v on SIGTERM", b.Node(i).ID, err)
		}
		if err := os.RemoveAll(b.Node(i).DataDir); err != nil {
			t.Fatal(err)
		}
	}
	b.StartAll()
	b.WaitLeader(leaderTimeout)
	b.WaitSync(syncTimeout)
	after, err := b.Node(0).Status()
	if err != nil {
		t.Fatal(err)
	}
	newCluster := after.Feed.ClusterID
	if newCluster == "" || newCluster == oldCluster {
		t.Fatalf("rebuilt XC-B has cluster id %q, the old one was %q", newCluster, oldCluster)
	}
	if cs, err := b.Node(0).ListCases(); err != nil || len(cs) != 0 {
		t.Fatalf("rebuilt XC-B lists %d cases (%v), want none", len(cs), err)
	}
	// The items come back: the local ones by hand, the district one from
	// the center.
	if err := b.Node(0).PutItem(itemCode, "本站事项B"); err != nil {
		t.Fatal(err)
	}
	if err := b.Node(0).PutItem(localItemB, "本站特色事项"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, centerTimeout, "the district item is back at the rebuilt XC-B", func() string {
		it, err := itemAt(b.Node(0), districtItem)
		if err != nil || it.Version != 2 {
			return fmt.Sprintf("%+v %v", it, err)
		}
		return ""
	})
	// The same cases again, as the clerks re-enter them from paper.
	old := slices.Clone(d.bCases)
	for _, bc := range old {
		d.createB(t, bc)
	}
	for range 2 {
		d.writeB(t, itemCode, true)
	}

	d.caughtUp(t, d.b, centerTimeout)
	d.sameCases(t, d.b)
	s := d.stationView(t, "XC-B")
	if s.ClusterID != newCluster || s.Rereads < 1 {
		t.Fatalf("center's XC-B after the rebuild: cluster_id %q rereads %d; want %q and at least 1", s.ClusterID, s.Rereads, newCluster)
	}
	if got := d.centerCases(t, "XC-B"); len(got) != len(atCenter)+2 {
		t.Fatalf("the center holds %d cases of XC-B, %d before the rebuild + 2 new", len(got), len(atCenter))
	}
	// XC-A was not disturbed.
	d.caughtUp(t, d.a, centerTimeout)
	d.sameCases(t, d.a)
}

// writeA creates one case at XC-A through PC i (writeCase checks it).
func (d *district) writeA(t *testing.T, i int, tag string) {
	t.Helper()
	if _, err := writeCase(d.a.Node(i), "XC-A", tag); err != nil {
		t.Fatal(err)
	}
}

// writeB creates a new case with a client id at XC-B for item, accepted
// with an explicit event id if accept, and remembers it.
func (d *district) writeB(t *testing.T, item string, accept bool) {
	t.Helper()
	d.seq++
	bc := bCase{id: fmt.Sprintf("XC-B-%04d", d.seq), item: item}
	if accept {
		bc.accepted = bc.id + ".acc"
	}
	d.createB(t, bc)
	d.bCases = append(d.bCases, bc)
}

// createB creates bc at XC-B (again, after a rebuild) and checks it.
func (d *district) createB(t *testing.T, bc bCase) {
	t.Helper()
	n := d.b.Node(0)
	id, status, err := n.CreateCase(harness.CaseRequest{ID: bc.id, ItemCode: bc.item, Actor: "clerk-b",
		Applicant: harness.Applicant{Kind: "person", Name: "申请人-" + bc.id}})
	if err != nil || status != http.StatusCreated || id != bc.id {
		t.Fatalf("case %s at XC-B: %s %d %v", bc.id, id, status, err)
	}
	if bc.accepted != "" {
		if _, err := n.Post("/v1/cases/"+bc.id+"/events", map[string]any{"id": bc.accepted, "type": "accepted", "actor": "clerk-b"}, nil); err != nil {
			t.Fatalf("accept %s at XC-B: %v", bc.id, err)
		}
	}
	c, err := n.GetCase(bc.id)
	if err != nil {
		t.Fatalf("case %s just created at XC-B: %v", bc.id, err)
	}
	if c.Station != "XC-B" || c.ItemCode != bc.item || (bc.accepted != "") != (c.State == "accepted") {
		t.Fatalf("case %s read back at XC-B: %+v", bc.id, c)
	}
}

// runningNode is a running node of st.
func runningNode(t *testing.T, st *harness.Station) *harness.Node {
	t.Helper()
	r := st.Running()
	if len(r) == 0 {
		t.Fatalf("station %s has no running node", st.ID)
	}
	return st.Node(r[0])
}

// caughtUp waits until the center has read station st up to its feed
// head under its cluster id, this month's digests match over every event
// the station holds, and the center shows the station green. The
// station's head is read again at every poll, in case the station writes
// by itself meanwhile (a district item fetched from the center).
func (d *district) caughtUp(t *testing.T, st *harness.Station, timeout time.Duration) {
	t.Helper()
	st = st.WithT(t)
	st.WaitSync(syncTimeout)
	n := runningNode(t, st)
	month := time.Now().In(d.loc).Format("2006-01")
	start := time.Now()
	var seq uint64
	d.waitStation(t, st.ID, timeout, fmt.Sprintf("the center caught up with %s (%s)", st.ID, month), func(s centerStationView) string {
		status, err := n.Status()
		if err != nil {
			return err.Error()
		}
		cases, err := n.ListCases()
		if err != nil {
			return err.Error()
		}
		seq = status.Feed.Seq
		events := 0
		for _, c := range cases {
			for _, e := range c.Events {
				if e.At.In(d.loc).Format("2006-01") == month {
					events++
				}
			}
		}
		var why []string
		if s.ClusterID != status.Feed.ClusterID {
			why = append(why, fmt.Sprintf("cluster_id %q, station's %q", s.ClusterID, status.Feed.ClusterID))
		}
		if s.Cursor != seq || s.Head != seq || s.LagEvents != 0 {
			why = append(why, fmt.Sprintf("cursor %d head %d lag %d, station's seq %d", s.Cursor, s.Head, s.LagEvents, seq))
		}
		if s.Sync != "green" || s.LastError != "" {
			why = append(why, fmt.Sprintf("sync %s last_error %q", s.Sync, s.LastError))
		}
		found := false
		for _, dg := range s.Digests {
			if dg.Month != month {
				continue
			}
			found = true
			if !dg.Match || dg.Persistent || dg.Station.Count != events || dg.Center.Count != events {
				why = append(why, fmt.Sprintf("digest %s match %v persistent %v counts station %d center %d, want %d (the station's events)",
					month, dg.Match, dg.Persistent, dg.Station.Count, dg.Center.Count, events))
			}
		}
		if !found {
			why = append(why, "no digest of "+month)
		}
		return strings.Join(why, "; ")
	})
	t.Logf("the center caught up with %s (seq %d) within %v", st.ID, seq, time.Since(start).Round(time.Millisecond))
}

// sameCases checks that the center holds exactly the cases of station
// st, each once and under st, each with exactly the station's event ids.
func (d *district) sameCases(t *testing.T, st *harness.Station) {
	t.Helper()
	list, err := runningNode(t, st).ListCases()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for _, c := range list {
		want[c.ID] = eventIDs(c)
	}
	got := d.centerCases(t, st.ID)
	var wantIDs, gotIDs []string
	for id := range want {
		wantIDs = append(wantIDs, id)
	}
	for id := range got {
		gotIDs = append(gotIDs, id)
	}
	if len(got) != len(want) {
		t.Fatalf("the center holds %d cases of %s, the station %d\nmissing: %v\nextra: %v",
			len(got), st.ID, len(want), minus(wantIDs, gotIDs), minus(gotIDs, wantIDs))
	}
	for id, ev := range want {
		c, ok := got[id]
		if !ok {
			t.Fatalf("case %s of %s is missing at the center", id, st.ID)
		}
		if c.Station != st.ID {
			t.Fatalf("case %s of %s is shown at the center with station %q", id, st.ID, c.Station)
		}
		if ids := eventIDs(c); !slices.Equal(ids, ev) {
			t.Fatalf("case %s of %s: events at the center %v, at the station %v", id, st.ID, ids, ev)
		}
	}
}

// eventIDs returns a case's event ids, sorted.
func eventIDs(c harness.Case) []string {
	var ids []string
	for _, e := range c.Events {
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	return ids
}

// centerCases returns every case the center holds of a station, paging
// with after (small pages, so paging is exercised), and fails on a case
// listed twice or an event id twice in a case.
func (d *district) centerCases(t *testing.T, station string) map[string]harness.Case {
	t.Helper()
	out := map[string]harness.Case{}
	after := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("GET /v1/cases?station=%s: too many pages", station)
		}
		q := url.Values{"station": {station}, "limit": {"4"}}
		if after != "" {
			q.Set("after", after)
		}
		var page struct {
			Cases []harness.Case `json:"cases"`
			Next  string         `json:"next"`
		}
		if _, err := d.center.Node(0).Get("/v1/cases?"+q.Encode(), &page); err != nil {
			t.Fatalf("center: %v", err)
		}
		for _, c := range page.Cases {
			if _, dup := out[c.ID]; dup {
				t.Fatalf("the center lists case %s of %s twice", c.ID, station)
			}
			ids := eventIDs(c)
			if len(slices.Compact(slices.Clone(ids))) != len(ids) {
				t.Fatalf("case %s of %s at the center has an event twice: %v", c.ID, station, ids)
			}
			out[c.ID] = c
		}
		if page.Next == "" || len(page.Cases) == 0 {
			return out
		}
		after = page.Next
	}
}

// itemEverywhere waits until every PC of both stations holds version v of
// the district item, named name.
func (d *district) itemEverywhere(t *testing.T, v uint64, name string) {
	t.Helper()
	waitFor(t, centerTimeout, fmt.Sprintf("version %d of %s is on every PC", v, districtItem), func() string {
		var why []string
		for _, st := range []*harness.Station{d.a, d.b} {
			for _, n := range st.Nodes() {
				it, err := itemAt(n, districtItem)
				if err != nil || it.Origin != "district" || it.Version != v || it.Name != name {
					why = append(why, fmt.Sprintf("%s/%s: %+v %v", st.ID, n.ID, it, err))
				}
			}
		}
		return strings.Join(why, "; ")
	})
}

type stationItem struct {
	Code    string `json:"code"`
	Name    string `json:"name"`
	Origin  string `json:"origin"`
	Version uint64 `json:"version"`
}

func itemAt(n *harness.Node, code string) (stationItem, error) {
	var it stationItem
	_, err := n.Get("/v1/items/"+url.PathEscape(code), &it)
	return it, err
}

func getItem(t *testing.T, n *harness.Node, code string) stationItem {
	t.Helper()
	it, err := itemAt(n, code)
	if err != nil {
		t.Fatalf("%s: GET item %s: %v", n.ID, code, err)
	}
	return it
}

// stations returns the center's GET /v1/stations.
func (d *district) stations() ([]centerStationView, error) {
	var a struct {
		Stations []centerStationView `json:"stations"`
	}
	_, err := d.center.Node(0).Get("/v1/stations", &a)
	return a.Stations, err
}

// stationView returns the center's view of one station.
func (d *district) stationView(t *testing.T, id string) centerStationView {
	t.Helper()
	all, err := d.stations()
	if err != nil {
		t.Fatalf("center: %v", err)
	}
	for _, s := range all {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("the center's /v1/stations has no %s: %+v", id, all)
	return centerStationView{}
}

// stationsDump is GET /v1/stations as indented JSON, for failure
// messages.
func (d *district) stationsDump() string {
	_, body, err := d.center.Node(0).Do(http.MethodGet, "/v1/stations", nil)
	if err != nil {
		return fmt.Sprintf("(GET /v1/stations: %v)", err)
	}
	var v any
	if json.Unmarshal(body, &v) == nil {
		if b, err := json.MarshalIndent(v, "", "  "); err == nil {
			return string(b)
		}
	}
	return string(body)
}

// waitStation polls the center's view of station id until cond returns
// "" (else it says why not), and fails with the center's /v1/stations at
// the deadline.
func (d *district) waitStation(t *testing.T, id string, timeout time.Duration, what string, cond func(centerStationView) string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		all, err := d.stations()
		if err != nil {
			last = err.Error()
		} else {
			last = "no station " + id
			for _, s := range all {
				if s.ID == id {
					if last = cond(s); last == "" {
						return
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s: %s\ncenter GET /v1/stations:\n%s", timeout, what, last, d.stationsDump())
		}
		time.Sleep(pollCenter)
	}
}

// waitFor polls cond until it returns "" (else it says why not).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s: %s", timeout, what, why)
		}
		time.Sleep(pollCenter)
	}
}
