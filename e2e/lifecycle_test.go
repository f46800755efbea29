package e2e

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/stationsync/stationsync/internal/harness"
)

// TestCaseLifecycleAcrossNodes: a case created on one PC, accepted on a
// second and evaluated 不满意 on the third ends in the same state on every
// PC, with exactly one work order; a repeated event id changes nothing; an
// impossible step answers 409 naming the state.
func TestCaseLifecycleAcrossNodes(t *testing.T) {
	t.Parallel()
	st := harness.NewStation(t, "XC-E2E-LC", 3)
	st.StartAll()
	st.WaitLeader(leaderTimeout)
	if err := st.Node(0).PutItem(itemCode, "企业开办"); err != nil {
		t.Fatal(err)
	}
	id, status, err := st.Node(0).CreateCase(harness.CaseRequest{ItemCode: itemCode, Channel: "window", Actor: "clerk-01",
		Applicant: harness.Applicant{Kind: "person", Name: "李四"}})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, err)
	}
	post := func(node int, path string, body map[string]any) (int, map[string]any) {
		var out map[string]any
		code, err := st.Node(node).Post(path, body, &out)
		if err != nil {
			if ae, ok := err.(*harness.APIError); ok {
				return ae.Status, map[string]any{"error": ae.Message}
			}
			t.Fatal(err)
		}
		return code, out
	}
	if code, out := post(1, "/v1/cases/"+id+"/events", map[string]any{"id": "acc-1", "type": "accepted", "actor": "clerk-02"}); code != 201 {
		t.Fatalf("accept on pc-2: %d %v", code, out)
	}
	if code, out := post(2, "/v1/cases/"+id+"/events", map[string]any{"id": "acc-1", "type": "accepted", "actor": "clerk-02"}); code != 201 || out["repeat"] != true {
		t.Fatalf("repeated event id on pc-3: %d %v", code, out)
	}
	if code, out := post(2, "/v1/cases/"+id+"/events", map[string]any{"type": "resumed", "actor": "clerk-03"}); code != http.StatusConflict {
		t.Fatalf("resumed while accepted: %d %v, want 409", code, out)
	} else if msg, _ := out["error"].(string); msg == "" || !contains(msg, "accepted") || !contains(msg, "resumed") {
		t.Fatalf("409 does not name the state and the event: %q", msg)
	}
	if code, out := post(2, "/v1/cases/"+id+"/evaluations", map[string]any{"level": "不满意", "channel": 4, "text": "等候太久"}); code != 201 {
		t.Fatalf("evaluate on pc-3: %d %v", code, out)
	}
	st.WaitSync(syncTimeout)

	var first map[string]any
	for i := 0; i < 3; i++ {
		var c map[string]any
		if _, err := st.Node(i).Get("/v1/cases/"+id, &c); err != nil {
			t.Fatal(err)
		}
		if c["state"] != "accepted" {
			t.Fatalf("pc-%d: state %v", i+1, c["state"])
		}
		if first == nil {
			first = c
		} else if !reflect.DeepEqual(first["events"], c["events"]) || !reflect.DeepEqual(first["evaluations"], c["evaluations"]) {
			t.Fatalf("pc-%d holds another history:\n%v\n%v", i+1, first, c)
		}
		var wos struct {
			WorkOrders []map[string]any `json:"workorders"`
		}
		if _, err := st.Node(i).Get("/v1/workorders", &wos); err != nil {
			t.Fatal(err)
		}
		if len(wos.WorkOrders) != 1 || wos.WorkOrders[0]["case_id"] != id || wos.WorkOrders[0]["state"] != "open" {
			t.Fatalf("pc-%d work orders: %v", i+1, wos.WorkOrders)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
