package center_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/xuri/excelize/v2"

	"github.com/stationsync/stationsync/center"
	"github.com/stationsync/stationsync/daemon"
	"github.com/stationsync/stationsync/internal/harness"
	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication/logstore"
	"github.com/stationsync/stationsync/replication/sealed"
)

// district is a district CA with one-node stations and a center, all
// in this process (real QUIC on loopback, real badger on disk).
type district struct {
	t      *testing.T
	dir    string
	ca     string
	quic   map[string]string // node name -> QUIC address
	nodes  map[string]*daemon.Daemon
	center string // the center's QUIC address
}

func newDistrict(t *testing.T, stations ...string) *district {
	t.Helper()
	d := &district{t: t, dir: t.TempDir(), quic: map[string]string{}, nodes: map[string]*daemon.Daemon{}}
	d.ca = filepath.Join(d.dir, "ca")
	if err := pki.InitCA(d.ca); err != nil {
		t.Fatal(err)
	}
	ports, err := harness.FreePorts("127.0.0.1", len(stations)+1)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range stations {
		d.quic[st] = fmt.Sprintf("127.0.0.1:%d", ports[i])
	}
	d.center = fmt.Sprintf("127.0.0.1:%d", ports[len(stations)])
	t.Cleanup(func() {
		for _, n := range d.nodes {
			n.Close()
		}
	})
	return d
}

func (d *district) configFile(name, text string, id pki.Identity) string {
	dir := filepath.Join(d.dir, name)
	if _, err := os.Stat(filepath.Join(dir, "node.crt")); err != nil {
		if err := pki.Issue(d.ca, id, dir, 24*time.Hour); err != nil {
			d.t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(p, []byte(text+"data_dir: data\napi: 127.0.0.1:0\nmdns: false\nexpect: 1\ntls: {ca: ca.crt, cert: node.crt, key: node.key}\nlog: {level: debug}\n"), 0o600); err != nil {
		d.t.Fatal(err)
	}
	return p
}

func (d *district) open(name, path string, opts ...daemon.Option) *daemon.Daemon {
	d.t.Helper()
	cfg, err := daemon.LoadConfig(path, nil, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	n := daemon.New(cfg, testLogger(name), opts...)
	if err := n.Open(); err != nil {
		d.t.Fatal(err)
	}
	d.nodes[name] = n
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := n.Node().WaitLeader(ctx); err != nil {
		d.t.Fatalf("%s: %v", name, err)
	}
	return n
}

// testLogger discards logs unless STATIONSYNC_TEST_LOG is set.
func testLogger(name string) *slog.Logger {
	if os.Getenv("STATIONSYNC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", name)
	}
	return slog.New(slog.DiscardHandler)
}

// startStation starts station st's one node.
func (d *district) startStation(st string) *daemon.Daemon {
	p := d.configFile(st, fmt.Sprintf("station_id: %s\nnode_id: pc-1\nlisten: %s\ncenter: %s\ncatalogue_interval: 1s\n", st, d.quic[st], d.center),
		pki.Identity{Role: pki.RoleStation, Station: st, Node: "pc-1"})
	return d.open(st, p)
}

// startCenter starts the center, pulling every second.
func (d *district) startCenter(stations ...string) *daemon.Daemon {
	return d.startCenterWith("", stations...)
}

// startCenterWith starts the center with extra config lines.
func (d *district) startCenterWith(extra string, stations ...string) *daemon.Daemon {
	var refs []string
	for _, st := range stations {
		refs = append(refs, fmt.Sprintf("  - {id: %s, name: %s, addresses: [%s]}", st, stationName(st), d.quic[st]))
	}
	p := d.configFile("center", fmt.Sprintf("role: center\nnode_id: center-1\nlisten: %s\npull_interval: 1s\n%sstations:\n%s\n", d.center, extra, strings.Join(refs, "\n")),
		pki.Identity{Role: pki.RoleCenter, Node: "center-1"})
	return d.open("center", p, daemon.WithExtension(center.New()))
}

// stationName names test stations after the district's first parks.
func stationName(id string) string {
	names := map[string]string{"XC-A": "阳澄湖国际科创园", "XC-B": "大数据与车联网创新中心"}
	if n, ok := names[id]; ok {
		return n
	}
	return "站点" + id
}

func (d *district) stop(name string) {
	d.t.Helper()
	if err := d.nodes[name].Close(); err != nil {
		d.t.Fatalf("close %s: %v", name, err)
	}
	delete(d.nodes, name)
}

// call does one API request and decodes a JSON answer into out (if set).
func call(t *testing.T, n *daemon.Daemon, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, n.APIURL()+path, rd)
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 && method != "GET" {
		t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting until %s", what)
}

type stationsAnswer struct {
	Stations []struct {
		ID        string `json:"id"`
		Cursor    uint64 `json:"cursor"`
		Head      uint64 `json:"head"`
		ClusterID string `json:"cluster_id"`
		Rereads   int    `json:"rereads"`
		Sync      string `json:"sync"`
		Digests   []struct {
			Month string `json:"month"`
			Match bool   `json:"match"`
		} `json:"digests"`
	} `json:"stations"`
}

// caughtUp says whether the center read station st to its feed head
// (head at least min) and this month's digests match.
func caughtUp(t *testing.T, c, station *daemon.Daemon, st string) bool {
	var a stationsAnswer
	call(t, c, "GET", "/v1/stations", nil, &a)
	head := station.Node().Status().Seq
	for _, s := range a.Stations {
		if s.ID != st {
			continue
		}
		month := time.Now().In(c.Location()).Format("2006-01")
		for _, d := range s.Digests {
			if d.Month == month {
				return s.Cursor == head && head > 0 && d.Match && s.Sync == "green"
			}
		}
	}
	return false
}

func newCase(id, item string) map[string]any {
	return map[string]any{"id": id, "item_code": item, "channel": "window", "actor": "clerk-07",
		"applicant": map[string]any{"kind": "person", "name": "张三", "id_type": "111", "id_number": "320507199001011234", "phone": "13912345678"}}
}

func caseIDs(t *testing.T, n *daemon.Daemon, path string) []string {
	var a struct {
		Cases []records.Case `json:"cases"`
	}
	if call(t, n, "GET", path, nil, &a) != 200 {
		t.Fatalf("GET %s failed", path)
	}
	var ids []string
	for _, c := range a.Cases {
		ids = append(ids, c.ID)
	}
	return ids
}

func TestCenterConsolidatesAndPublishes(t *testing.T) {
	d := newDistrict(t, "XC-A", "XC-B")
	a, b := d.startStation("XC-A"), d.startStation("XC-B")
	// The center's settings: work orders due in 10 working days, and a
	// holiday calendar with one more year.
	hol := filepath.Join(d.dir, "holidays")
	os.MkdirAll(hol, 0o755)
	if err := os.WriteFile(filepath.Join(hol, "2027.yaml"), []byte("year: 2027\nholidays:\n  - 2027-01-01\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf("work_order_days: 10\nholidays_dir: %s\n", hol)
	c := d.startCenterWith(extra, "XC-A", "XC-B")
	eventually(t, "both stations use the center's settings", func() bool {
		for _, n := range []*daemon.Daemon{a, b} {
			var st struct {
				Center struct {
					SettingsVersion string `json:"settings_version"`
					WorkOrderDays   int    `json:"work_order_days"`
				} `json:"center"`
			}
			call(t, n, "GET", "/v1/status", nil, &st)
			if st.Center.SettingsVersion == "" || st.Center.WorkOrderDays != 10 {
				return false
			}
		}
		return true
	})

	// The district item list reaches both stations; a station keeps its
	// own local item.
	item := map[string]any{"name": "企业开办", "type": map[string]any{"code": "20", "name": "公共服务"}, "promised_limit": map[string]any{"value": 3, "unit": "working_days"}}
	if code := call(t, c, "PUT", "/v1/catalogue/items/XC-D-0001", item, nil); code != 200 {
		t.Fatalf("publish: %d", code)
	}
	if code := call(t, a, "PUT", "/v1/items/XC-L-0001", map[string]any{"name": "本站事项", "type": map[string]any{"code": "20"}}, nil); code != 200 {
		t.Fatalf("local item: %d", code)
	}
	itemAt := func(n *daemon.Daemon, code string) records.Item {
		var it records.Item
		call(t, n, "GET", "/v1/items/"+code, nil, &it)
		return it
	}
	eventually(t, "the district item is at both stations", func() bool {
		return itemAt(a, "XC-D-0001").Version == 1 && itemAt(b, "XC-D-0001").Version == 1
	})

	// Cases at each station appear at the center under their station,
	// with personal data masked.
	for i, n := range []*daemon.Daemon{a, b} {
		for j := range 3 {
			if code := call(t, n, "POST", "/v1/cases", newCase(fmt.Sprintf("case-%d-%d", i, j), "XC-D-0001"), nil); code != 201 {
				t.Fatalf("create case: %d", code)
			}
		}
	}
	call(t, a, "POST", "/v1/cases/case-0-0/events", map[string]any{"type": "accepted", "actor": "clerk-07"}, nil)
	call(t, a, "POST", "/v1/cases/case-0-0/evaluations", map[string]any{"level": "不满意", "channel": 4, "text": "等候时间太长"}, nil)
	eventually(t, "the center caught up with both stations", func() bool {
		return caughtUp(t, c, a, "XC-A") && caughtUp(t, c, b, "XC-B")
	})
	if ids := caseIDs(t, c, "/v1/cases?station=XC-B"); strings.Join(ids, ",") != "case-1-0,case-1-1,case-1-2" {
		t.Fatalf("center's cases of XC-B: %v", ids)
	}
	var shown daemon.CaseView
	call(t, c, "GET", "/v1/cases/case-0-0?station=XC-A", nil, &shown)
	if shown.State != "accepted" || len(shown.Evaluations) != 1 || strings.Contains(shown.Applicant.IDNumber, "19900101") {
		t.Fatalf("case at the center: state %s, %d evaluations, id number %q", shown.State, len(shown.Evaluations), shown.Applicant.IDNumber)
	}
	var wos struct {
		WorkOrders []daemon.WorkOrderView `json:"workorders"`
	}
	call(t, c, "GET", "/v1/workorders?status=open", nil, &wos)
	if len(wos.WorkOrders) != 1 || wos.WorkOrders[0].Station != "XC-A" || wos.WorkOrders[0].DueDays != 10 {
		t.Fatalf("open work orders at the center: %+v", wos.WorkOrders)
	}
	if code := call(t, c, "GET", "/v1/cases?station=XC-Z", nil, nil); code != 400 {
		t.Fatalf("unknown station: %d", code)
	}

	// A changed district item reaches every station; the local item stays.
	item["name"] = "企业开办一窗通办"
	call(t, c, "PUT", "/v1/catalogue/items/XC-D-0001", item, nil)
	eventually(t, "version 2 of the district item is at both stations", func() bool {
		return itemAt(a, "XC-D-0001").Version == 2 && itemAt(b, "XC-D-0001").Name == "企业开办一窗通办"
	})
	if it := itemAt(a, "XC-L-0001"); it.Origin != records.OriginLocal || it.Name != "本站事项" {
		t.Fatalf("the local item after the catalogue update: %+v", it)
	}

	// The XLSX report's district totals equal /v1/stats/monthly.
	checkReport(t, c)

	// A bad review taken at the center by a phone call-back reaches the
	// station, which opens a work order; the station rectifies it; the
	// center sees it replied.
	if code := call(t, c, "POST", "/v1/cases/case-1-0/evaluations?station=XC-B", map[string]any{"level": "非常不满意", "channel": 6, "text": "电话回访：材料退回两次"}, nil); code != 202 {
		t.Fatalf("center evaluation: %d", code)
	}
	if code := call(t, c, "POST", "/v1/cases/case-1-0/evaluations?station=XC-B", map[string]any{"level": "满意", "channel": 6}, nil); code != 409 {
		t.Fatalf("a second first evaluation at the center: %d, want 409", code)
	}
	eventually(t, "the work order is open at station XC-B", func() bool {
		var wo daemon.WorkOrderView
		return call(t, b, "GET", "/v1/workorders/WO-case-1-0", nil, &wo) == 200 && wo.State == "open"
	})
	for _, typ := range []string{"verifying", "rectifying", "replied"} {
		if code := call(t, b, "POST", "/v1/workorders/WO-case-1-0/events", map[string]any{"type": typ, "actor": "chief-b", "note": "已整改"}, nil); code != 201 {
			t.Fatalf("work order %s at the station: %d", typ, code)
		}
	}
	eventually(t, "the center sees the work order replied", func() bool {
		var wos struct {
			WorkOrders []daemon.WorkOrderView `json:"workorders"`
		}
		call(t, c, "GET", "/v1/workorders?station=XC-B", nil, &wos)
		return len(wos.WorkOrders) == 1 && wos.WorkOrders[0].State == "replied" && wos.WorkOrders[0].Level == "非常不满意"
	})

	// The center stops; the stations go on; the center catches up with
	// no gap and no duplicate.
	d.stop("center")
	for j := 3; j < 6; j++ {
		call(t, a, "POST", "/v1/cases", newCase(fmt.Sprintf("case-0-%d", j), "XC-L-0001"), nil)
	}
	// Meanwhile one event is lost from the center's store (a disk fault, a
	// bad restore): the digest check finds it and a re-read repairs it.
	loseEvent(t, filepath.Join(d.dir, "center"), "s/XC-A/case/case-0-0")
	c = d.startCenterWith(extra, "XC-A", "XC-B")
	eventually(t, "the center caught up and repaired the lost event", func() bool {
		if !caughtUp(t, c, a, "XC-A") {
			return false
		}
		var got daemon.CaseView
		call(t, c, "GET", "/v1/cases/case-0-0?station=XC-A", nil, &got)
		return got.State == "accepted"
	})
	if ids := caseIDs(t, c, "/v1/cases?station=XC-A"); len(ids) != 6 {
		t.Fatalf("center holds %d cases of XC-A, want 6: %v", len(ids), ids)
	}
	var sa stationsAnswer
	call(t, c, "GET", "/v1/stations", nil, &sa)
	if sa.Stations[0].Rereads < 1 {
		t.Fatalf("no re-read after the lost event: %+v", sa.Stations[0])
	}
}

// loseEvent deletes the last event of a case in a stopped center's store.
func loseEvent(t *testing.T, dir, key string) {
	t.Helper()
	k, err := sealed.LoadOrCreateKey(filepath.Join(dir, "data.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	db, err := badger.Open(logstore.WithKey(logstore.Options(filepath.Join(dir, "data", "state"), true, slog.New(slog.DiscardHandler)), k))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A case's events have their own keys after its head (records/casestore.go).
	err = db.Update(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(key + "\x00")
		it := txn.NewIterator(opts)
		var last []byte
		for it.Rewind(); it.Valid(); it.Next() {
			last = it.Item().KeyCopy(nil)
		}
		it.Close()
		if last == nil {
			return fmt.Errorf("no event keys under %q", key)
		}
		return txn.Delete(last)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkReport opens the XLSX report with excelize and compares its
// district total row with /v1/stats/monthly.
func checkReport(t *testing.T, c *daemon.Daemon) {
	t.Helper()
	resp, err := http.Get(c.APIURL() + "/v1/reports/monthly.xlsx")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	f, err := excelize.OpenReader(resp.Body)
	if err != nil {
		t.Fatalf("open report: %v", err)
	}
	rows, err := f.GetRows("月报")
	if err != nil {
		t.Fatal(err)
	}
	var stats center.DistrictStats
	call(t, c, "GET", "/v1/stats/monthly", nil, &stats)
	last := rows[len(rows)-1]
	if last[1] != "全区" {
		t.Fatalf("last row is not the district total: %v", last)
	}
	want := []int{stats.Total.Received, stats.Total.Instant, stats.Total.Completed, stats.Total.CompletedOnTime, stats.Total.Overdue, stats.Total.Evaluated}
	for i, w := range want {
		if last[4+i] != fmt.Sprint(w) {
			t.Fatalf("report total column %s = %s, stats say %d (row %v)", rows[1][4+i], last[4+i], w, last)
		}
	}
	if stats.Total.Received != 6 {
		t.Fatalf("district total received = %d, want 6", stats.Total.Received)
	}
}
