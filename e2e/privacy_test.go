package e2e

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stationsync/stationsync/internal/harness"
)

// TestPersonalDataNeverInTheClear writes cases with ID numbers, phones and
// evaluators through a 3-node station that snapshots often, then looks for
// those values, unmasked, everywhere a person or a thief could: every
// response of the API without ?full=1, the status page, the metrics, the
// nodes' logs, and the raw bytes of every file in the data directories
// (raft log, state store, snapshots).
func TestPersonalDataNeverInTheClear(t *testing.T) {
	t.Parallel()
	st := harness.NewStation(t, "XC-E2E-PII", 3, harness.WithConfig(func(i int, cfg map[string]any) {
		cfg["raft"] = map[string]any{"snapshot_threshold": 16, "snapshot_interval": "1s", "trailing_logs": 8}
		cfg["log"] = map[string]any{"level": "debug", "format": "text"}
	}))
	st.StartAll()
	leader := st.WaitLeader(leaderTimeout)
	n := st.Node(leader)
	if err := n.PutItem(itemCode, "企业开办"); err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("3205071990%02d%02d%04d", 1+i%12, 1+i%28, 4321+i)
		phone := fmt.Sprintf("1391234%04d", 5678+i)
		evaluator := fmt.Sprintf("evaluator-secret-%03d", i)
		secrets = append(secrets, id, phone, evaluator)
		node := st.Node(i % 3)
		caseID, status, err := node.CreateCase(harness.CaseRequest{
			ItemCode: itemCode, Channel: "window", Actor: "clerk-07",
			Applicant: harness.Applicant{Kind: "person", Name: "张三", IDType: "111", IDNumber: id, Phone: phone},
		})
		if err != nil || status != http.StatusCreated {
			t.Fatalf("create case: %d %v", status, err)
		}
		for _, typ := range []string{"accepted", "completed"} {
			if code, err := node.Post("/v1/cases/"+caseID+"/events", map[string]any{"type": typ, "actor": "clerk-07"}, nil); err != nil || code != http.StatusCreated {
				t.Fatalf("%s: %d %v", typ, code, err)
			}
		}
		if code, err := node.Post("/v1/cases/"+caseID+"/evaluations", map[string]any{"level": "不满意", "channel": 4, "text": "太慢", "evaluator": evaluator}, nil); err != nil || code != http.StatusCreated {
			t.Fatalf("evaluate: %d %v", code, err)
		}
	}
	st.WaitSync(syncTimeout)
	// Snapshots are taken in the background; wait until each node has one.
	deadline := time.Now().Add(30 * time.Second)
	for _, node := range st.Nodes() {
		for !hasSnapshot(node.DataDir) {
			if time.Now().After(deadline) {
				t.Fatalf("%s took no snapshot", node.ID)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The full data is there for a caller who asks for it, so the search
	// below searches for something that exists.
	var full map[string]any
	if _, err := n.Get("/v1/cases?limit=1000&full=1", &full); err != nil || !strings.Contains(fmt.Sprint(full), secrets[0]) {
		t.Fatalf("?full=1 does not show the ID number: %v", err)
	}
	if strings.Contains(fmt.Sprint(full), "evaluator-secret") {
		t.Fatal("?full=1 shows an evaluator")
	}

	var places []string
	look := func(where string, b []byte) {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				places = append(places, fmt.Sprintf("%s contains %q", where, s))
				return
			}
		}
	}
	for _, node := range st.Nodes() {
		for _, path := range []string{"/", "/metrics", "/v1/status", "/v1/cases?limit=1000", "/v1/feed?since=0&limit=1000", "/v1/workorders", "/v1/stats/monthly"} {
			resp, err := http.Get(node.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s%s: %d %s", node.URL, path, resp.StatusCode, b)
			}
			look(node.ID+" GET "+path, b)
		}
	}
	// Stop the nodes so every file is complete, then read every byte.
	for i := range st.Nodes() {
		st.Stop(i)
	}
	files := 0
	for _, node := range st.Nodes() {
		b, err := os.ReadFile(node.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		look(node.ID+" log", b)
		err = filepath.WalkDir(node.DataDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files++
			look(p, b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 10 {
		t.Fatalf("only %d files in the data directories: the search looked at nothing", files)
	}
	if len(places) > 0 {
		t.Fatalf("personal data in the clear:\n%s", strings.Join(places, "\n"))
	}
}

func hasSnapshot(dataDir string) bool {
	entries, err := os.ReadDir(filepath.Join(dataDir, "snapshots"))
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") {
			return true
		}
	}
	return false
}
