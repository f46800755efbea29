package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stationsync/stationsync/internal/harness"
)

// TestEnrollWithTheCLI: `stationsync token` at the center, `stationsync
// enroll` on a new PC, and the PC, started with the config enroll wrote,
// joins its station; the same token again and a token of another
// district are refused with a clear message.
func TestEnrollWithTheCLI(t *testing.T) {
	t.Parallel()
	st := harness.NewStation(t, "XC-E2E-EN", 1)
	c := harness.NewCenter(t, st.CADir, 1, []harness.CenterStation{st.CenterRef("")}, harness.WithConfig(func(_ int, cfg map[string]any) {
		cfg["ca_dir"] = st.CADir
	}))
	st.StartAll()
	st.WaitLeader(leaderTimeout)
	c.StartAll()
	c.WaitLeader(leaderTimeout)

	r := harness.RunCLI(t, "token", "--station", "XC-E2E-EN", "--api", c.Node(0).URL)
	if r.ExitCode != 0 || !strings.HasPrefix(r.Stdout, "ssd1.") {
		t.Fatalf("token: exit %d %q %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	token := strings.TrimSpace(r.Stdout)
	dir := filepath.Join(t.TempDir(), "pc-2")
	r = harness.RunCLI(t, "enroll", "--center", c.CenterAddress(), "--token", token, "--node", "pc-2", "--out", dir)
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "enrolled: node pc-2 of station XC-E2E-EN") {
		t.Fatalf("enroll: exit %d %q %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	r = harness.RunCLI(t, "enroll", "--center", c.CenterAddress(), "--token", token, "--node", "pc-3", "--out", t.TempDir())
	if r.ExitCode == 0 || !strings.Contains(r.Stderr, "already used by node pc-2") {
		t.Fatalf("reused token: exit %d %q", r.ExitCode, r.Stderr)
	}
	r = harness.RunCLI(t, "token", "--station", "XC-NOWHERE", "--api", c.Node(0).URL)
	if r.ExitCode == 0 || !strings.Contains(r.Stderr, "XC-NOWHERE") {
		t.Fatalf("token for an unknown station: exit %d %q", r.ExitCode, r.Stderr)
	}

	// Start the enrolled PC with the config enroll wrote (on loopback).
	ports, err := harness.FreePorts("127.0.0.1", 1)
	if err != nil {
		t.Fatal(err)
	}
	api := fmt.Sprintf("127.0.0.1:%d", ports[0])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Binary(t), "run", "--config", filepath.Join(dir, "station.yaml"),
		"--set", "listen="+fmt.Sprintf("127.0.0.1:%d", ports[0]), "--set", "api="+api, "--set", "mdns=false",
		"--set", "peers="+st.Node(0).QUIC, "--set", "data_dir="+filepath.Join(dir, "data"))
	cmd.Env = harness.Environ()
	logf, err := os.Create(filepath.Join(dir, "node.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "node.log"))
			t.Logf("pc-2 log:\n%s", b)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		var s struct {
			Members []struct {
				ID string `json:"id"`
			} `json:"members"`
			Raft struct {
				Leader string `json:"leader"`
			} `json:"raft"`
		}
		resp, err := http.Get("http://" + api + "/v1/status")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&s)
			resp.Body.Close()
			if len(s.Members) == 2 && s.Raft.Leader == "pc-1" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the enrolled PC did not join its station within 30 s: %+v %v", s, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
