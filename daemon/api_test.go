package daemon

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

	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/records/itemfile"
)

// startSingle runs a one-node station in-process (real QUIC, real badger).
func startSingle(t *testing.T) *Daemon {
	t.Helper()
	return openUntilLeader(t, newSingle(t, t.TempDir()))
}

// openUntilLeader opens d until the test ends and waits for a leader.
func openUntilLeader(t *testing.T, d *Daemon) *Daemon {
	t.Helper()
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := d.Node().WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// newSingle configures (without opening) a one-node station in dir.
func newSingle(t *testing.T, dir string) *Daemon {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node.crt")); err != nil { // first use of dir
		if err := pki.InitCA(filepath.Join(dir, "ca")); err != nil {
			t.Fatal(err)
		}
		if err := pki.Issue(filepath.Join(dir, "ca"), pki.Identity{Role: pki.RoleStation, Station: "XC-IP-01", Node: "pc-1"}, dir, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	p := writeConfigIn(t, dir, fmt.Sprintf("station_id: XC-IP-01\nnode_id: pc-1\ndata_dir: %s\nlisten: 127.0.0.1:0\napi: 127.0.0.1:0\nmdns: false\ntls: {ca: %s, cert: %s, key: %s}\n",
		filepath.Join(dir, "data"), filepath.Join(dir, "ca.crt"), filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")))
	cfg, err := LoadConfig(p, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.EncryptionKeyFile = filepath.Join(dir, "data.key")
	return New(cfg, slog.New(slog.DiscardHandler))
}

func TestMissingOrWrongKeyRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	d := newSingle(t, dir)
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	keyFile := filepath.Join(dir, "data.key")
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file not created 0600: %v %v", fi, err)
	}
	key, _ := os.ReadFile(keyFile)

	os.Remove(keyFile)
	err := newSingle(t, dir).Open()
	if err == nil || !strings.Contains(err.Error(), "missing") || !strings.Contains(err.Error(), "data.key") {
		t.Fatalf("missing key: %v", err)
	}
	if _, statErr := os.Stat(keyFile); statErr == nil {
		t.Fatal("a new key was created for an encrypted store")
	}
	os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	err = newSingle(t, dir).Open()
	if err == nil || !strings.Contains(err.Error(), "another key") {
		t.Fatalf("wrong key: %v", err)
	}
	os.WriteFile(keyFile, key, 0o600)
	d = newSingle(t, dir)
	if err := d.Open(); err != nil {
		t.Fatalf("the right key again: %v", err)
	}
	d.Close()
}

func do(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	c := &http.Client{Timeout: 15 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestAPIRefusesBadInputAndWritesNothing(t *testing.T) {
	d := startSingle(t)
	u := d.APIURL()
	if code, m := do(t, "PUT", u+"/v1/items/XC-L-0001", `{"name":"企业开办","type":{"code":"20","name":"公共服务"}}`); code != 200 {
		t.Fatalf("put item: %d %v", code, m)
	}
	seq := d.Node().Status().Seq
	good := `"item_code":"XC-L-0001","channel":"window","actor":"clerk-07","applicant":{"kind":"person","name":"张三"}`
	cases := []struct {
		name, method, path, body string
		code                     int
		field                    string
	}{
		{"bad json", "POST", "/v1/cases", `{"item_code":`, 400, ""},
		{"unknown field", "POST", "/v1/cases", `{` + good + `,"colour":"red"}`, 400, "colour"},
		{"wrong type", "POST", "/v1/cases", `{"item_code":5}`, 400, "item_code"},
		{"missing item_code", "POST", "/v1/cases", `{"channel":"window","actor":"a","applicant":{"kind":"person","name":"n"}}`, 400, "item_code"},
		{"missing applicant name", "POST", "/v1/cases", `{"item_code":"XC-L-0001","channel":"window","actor":"a","applicant":{"kind":"person"}}`, 400, "applicant.name"},
		{"unknown item", "POST", "/v1/cases", `{"item_code":"NOPE","channel":"window","actor":"a","applicant":{"kind":"person","name":"n"}}`, 400, "item_code"},
		{"two objects", "POST", "/v1/cases", `{` + good + `}{}`, 400, ""},
		{"empty body", "POST", "/v1/cases", ``, 400, ""},
		{"oversized", "POST", "/v1/cases", `{"item_code":"` + strings.Repeat("x", 2<<20) + `"}`, 400, ""},
		{"bad item type", "PUT", "/v1/items/X2", `{"name":"n","type":{"code":"99x"}}`, 400, "type.code"},
		{"item code mismatch", "PUT", "/v1/items/X2", `{"code":"X3","name":"n","type":{"code":"20"}}`, 400, "code"},
		{"bad limit", "GET", "/v1/cases?limit=0", ``, 400, "limit"},
		{"bad month", "GET", "/v1/cases?month=2026-13", ``, 400, "month"},
		{"bad since", "GET", "/v1/feed?since=-1", ``, 400, "since"},
		{"unknown case", "GET", "/v1/cases/none", ``, 404, ""},
	}
	for _, tc := range cases {
		code, m := do(t, tc.method, u+tc.path, tc.body)
		e, _ := m["error"].(map[string]any)
		if code != tc.code || e == nil || e["message"] == "" {
			t.Errorf("%s: %d %v, want %d with an error message", tc.name, code, m, tc.code)
			continue
		}
		if tc.field != "" && e["field"] != tc.field {
			t.Errorf("%s: error names field %v, want %q (%v)", tc.name, e["field"], tc.field, e["message"])
		}
	}
	if got := d.Node().Status().Seq; got != seq {
		t.Fatalf("refused requests changed the feed: seq %d -> %d", seq, got)
	}

	// A good case, retried with the same client id, is one case.
	code, m := do(t, "POST", u+"/v1/cases", `{"id":"client-1",`+good+`,"applicant":{"kind":"person","name":"张三","id_number":"320507199001011234","phone":"13912345678"}}`)
	if code != 201 || m["replication"] != "committed" {
		t.Fatalf("create: %d %v", code, m)
	}
	if s := fmt.Sprint(m); strings.Contains(s, "199001011234") || strings.Contains(s, "12345678") {
		t.Fatalf("answer shows unmasked personal data: %s", s)
	}
	code, m = do(t, "POST", u+"/v1/cases", `{"id":"client-1",`+good+`}`)
	if code != 201 || m["repeat"] != true {
		t.Fatalf("retry: %d %v", code, m)
	}
	if got := d.Node().Status().Seq; got != seq+1 {
		t.Fatalf("feed seq %d after one case and a retry, want %d", got, seq+1)
	}
	code, m = do(t, "GET", u+"/v1/cases/client-1?full=1", "")
	if code != 200 || m["applicant"].(map[string]any)["id_number"] != "320507199001011234" {
		t.Fatalf("full case: %d %v", code, m)
	}
}

func TestStatusPageMetricsAndFeed(t *testing.T) {
	d := startSingle(t)
	u := d.APIURL()
	do(t, "PUT", u+"/v1/items/XC-L-0001", `{"name":"企业开办","type":{"code":"20"}}`)
	code, m := do(t, "GET", u+"/v1/status", "")
	r, _ := m["raft"].(map[string]any)
	if code != 200 || r["state"] != "leader" || r["leader"] != "pc-1" || m["station"] != "XC-IP-01" {
		t.Fatalf("status: %d %v", code, m)
	}
	code, m = do(t, "GET", u+"/v1/feed?since=0", "")
	ch, _ := m["changes"].([]any)
	if code != 200 || len(ch) != 1 || m["cluster_id"] == "" || m["next"] != float64(1) {
		t.Fatalf("feed: %d %v", code, m)
	}
	for path, want := range map[string]string{"/": "pc-1", "/metrics": "stationsync_raft_state"} {
		resp, err := http.Get(u + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("%s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
}

func TestItemImportAndExport(t *testing.T) {
	d := startSingle(t)
	u := d.APIURL()
	post := func(format string, body []byte) (int, map[string]any) {
		resp, err := http.Post(u+"/v1/items/import?format="+format, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	xlsx, err := os.ReadFile("../configs/samples/items-example.xlsx")
	if err != nil {
		t.Fatal(err)
	}
	code, m := post("xlsx", xlsx)
	if code != 200 || m["items"].(float64) < 5 || m["changed"] != m["items"] {
		t.Fatalf("import xlsx: %d %v", code, m)
	}
	n := m["items"].(float64)
	code, m = post("xlsx", xlsx)
	if code != 200 || m["changed"] != float64(0) {
		t.Fatalf("re-import of the same file changed items: %d %v", code, m)
	}
	seq := d.Node().Status().Seq

	// A bad row refuses the file: row and column named, nothing written.
	bad := "事项编码,事项名称,事项类型编码,承诺办结时限\nNEW-1,新事项,20,3\nNEW-2,另一个,20,-3\n"
	code, m = post("csv", []byte(bad))
	if code != 400 || m["row"] != float64(3) || m["column"] != "承诺办结时限" {
		t.Fatalf("bad row: %d %v", code, m)
	}
	// A district item cannot be overwritten by an import.
	district := records.Item{Code: "D-1", Name: "设立登记", Type: records.ItemType{Code: "01"}, Origin: records.OriginDistrict, Version: 1}
	if res, err := d.Node().Submit(context.Background(), []records.Op{{Kind: records.OpPutItem, Item: &district}}); err != nil || res[0].Error != nil {
		t.Fatal(err)
	}
	seq++
	code, m = post("csv", []byte("事项编码,事项名称,事项类型编码\nNEW-3,x,20\nD-1,改名,01\n"))
	if code != 409 || m["row"] != float64(3) {
		t.Fatalf("district item in an import: %d %v", code, m)
	}
	if got := d.Node().Status().Seq; got != seq {
		t.Fatalf("refused imports wrote %d changes", got-seq)
	}
	if code, m := post("pdf", []byte("x")); code != 400 {
		t.Fatalf("format pdf: %d %v", code, m)
	}

	// Export reads back as the same list.
	for _, f := range []itemfile.Format{itemfile.CSV, itemfile.XLSX} {
		resp, err := http.Get(u + "/v1/items?format=" + string(f))
		if err != nil {
			t.Fatal(err)
		}
		items, err := itemfile.Read(resp.Body, f, records.OriginLocal, 0)
		resp.Body.Close()
		if err != nil || float64(len(items)) != n+1 {
			t.Fatalf("export %s: %d items, %v", f, len(items), err)
		}
	}
}

// Conflicts: an empty list on a healthy station; resolving needs a person
// and a note, and an existing conflict.
func TestConflictsAPI(t *testing.T) {
	d := startSingle(t)
	u := d.APIURL()
	code, m := do(t, "GET", u+"/v1/conflicts", "")
	if list, ok := m["conflicts"].([]any); code != 200 || !ok || len(list) != 0 {
		t.Fatalf("GET /v1/conflicts = %d %v", code, m)
	}
	if code, m := do(t, "POST", u+"/v1/conflicts/x/resolve", `{"actor":"chief"}`); code != 400 || !strings.Contains(fmt.Sprint(m), "note") {
		t.Fatalf("resolve without note = %d %v", code, m)
	}
	if code, m := do(t, "POST", u+"/v1/conflicts/x/resolve", `{"actor":"chief","note":"called back"}`); code != 404 {
		t.Fatalf("resolve unknown conflict = %d %v", code, m)
	}
	code, m = do(t, "GET", u+"/v1/status", "")
	ob, _ := m["outbox"].(map[string]any)
	if code != 200 || ob == nil || ob["pending"] != 0.0 || ob["oldest"] != nil || m["conflicts"] != 0.0 {
		t.Fatalf("status outbox/conflicts = %d %v %v", code, m["outbox"], m["conflicts"])
	}
}
