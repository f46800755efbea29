package center_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stationsync/stationsync/daemon"
	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
)

// newToken asks the center's API for a token for station st.
func newToken(t *testing.T, c *daemon.Daemon, st string) string {
	t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	if code := call(t, c, "POST", "/v1/tokens", map[string]any{"station": st, "ttl": "1h"}, &out); code != 201 {
		t.Fatalf("POST /v1/tokens: %d", code)
	}
	return out.Token
}

// openEnrolled starts the node an enrollment wrote into dir, on loopback.
func (d *district) openEnrolled(name, dir string, flags map[string]string) (*daemon.Daemon, error) {
	base := map[string]string{"listen": "127.0.0.1:0", "api": "127.0.0.1:0", "mdns": "false", "data_dir": filepath.Join(dir, "data"), "catalogue_interval": "1s"}
	for k, v := range flags {
		base[k] = v
	}
	cfg, err := daemon.LoadConfig(filepath.Join(dir, "station.yaml"), nil, base)
	if err != nil {
		return nil, err
	}
	n := daemon.New(cfg, testLogger(name))
	if err := n.Open(); err != nil {
		return nil, err
	}
	d.nodes[name] = n
	return n, nil
}

// Enrollment end to end: a token from the center enrolls one PC, which
// joins its station; a reused, an expired or a damaged token is refused;
// a PC enrolled for station A cannot be a node of station B.
func TestEnrollment(t *testing.T) {
	d := newDistrict(t, "XC-A", "XC-B")
	a := d.startStation("XC-A")
	d.startStation("XC-B")
	c := d.startCenterWith("ca_dir: "+d.ca+"\n", "XC-A", "XC-B")

	tok := newToken(t, c, "XC-A")
	dir := filepath.Join(t.TempDir(), "pc-2")
	ctx := context.Background()
	if err := daemon.Enroll(ctx, daemon.EnrollOptions{Center: d.center, Token: tok, Node: "pc-2", OutDir: dir}); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	for _, f := range []string{"ca.crt", "node.crt", "node.key", "station.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("enrollment did not write %s: %v", f, err)
		}
	}
	// The same token again, for another PC: refused.
	err := daemon.Enroll(ctx, daemon.EnrollOptions{Center: d.center, Token: tok, Node: "pc-3", OutDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "already used by node pc-2") {
		t.Fatalf("reused token: %v", err)
	}
	// An expired token: refused.
	old, err := pki.NewToken(d.ca)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-2 * time.Hour)
	results, err := c.Node().Submit(ctx, []records.Op{{Kind: records.OpPutToken, Token: &records.EnrollToken{Hash: old.Hash(), Station: "XC-A", Created: past, Expires: past.Add(time.Hour)}}})
	if err != nil || results[0].Error != nil {
		t.Fatalf("put expired token: %v %v", err, results)
	}
	err = daemon.Enroll(ctx, daemon.EnrollOptions{Center: d.center, Token: old.String(), Node: "pc-4", OutDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
	// A token of another district (another CA): the center is not trusted.
	other := filepath.Join(t.TempDir(), "other-ca")
	if err := pki.InitCA(other); err != nil {
		t.Fatal(err)
	}
	foreign, _ := pki.NewToken(other)
	err = daemon.Enroll(ctx, daemon.EnrollOptions{Center: d.center, Token: foreign.String(), Node: "pc-5", OutDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "CA does not match the token") {
		t.Fatalf("token of another CA: %v", err)
	}
	if err := daemon.Enroll(ctx, daemon.EnrollOptions{Center: d.center, Token: "ssd1.nonsense", Node: "pc-6", OutDir: t.TempDir()}); err == nil {
		t.Fatal("a damaged token was accepted")
	}

	// The enrolled PC cannot run as a node of station B.
	if _, err := d.openEnrolled("pc-2-as-B", dir, map[string]string{"station_id": "XC-B", "peers": d.quic["XC-B"]}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a PC enrolled for XC-A started as a node of XC-B: %v", err)
	}
	// As a node of A it joins the station.
	n, err := d.openEnrolled("pc-2", dir, map[string]string{"peers": d.quic["XC-A"]})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "pc-2 is a member of XC-A and has its item list", func() bool {
		members := 0
		for _, m := range a.Node().Status().Members {
			if m.ID == "pc-2" {
				members++
			}
		}
		return members == 1 && n.Node().Status().Leader != ""
	})
}

// Renewal: with a short certificate lifetime a running node renews its
// certificate at the center and keeps working without a restart.
func TestCertificateRenewal(t *testing.T) {
	d := newDistrict(t, "XC-A")
	a := d.startStation("XC-A")
	c := d.startCenterWith("ca_dir: "+d.ca+"\ncert_validity: 15s\n", "XC-A")
	dir := filepath.Join(t.TempDir(), "pc-2")
	if err := daemon.Enroll(context.Background(), daemon.EnrollOptions{Center: d.center, Token: newToken(t, c, "XC-A"), Node: "pc-2", OutDir: dir}); err != nil {
		t.Fatal(err)
	}
	n, err := d.openEnrolled("pc-2", dir, map[string]string{"peers": d.quic["XC-A"]})
	if err != nil {
		t.Fatal(err)
	}
	first, err := pki.ParseCertPEM(mustRead(t, filepath.Join(dir, "node.crt")))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "pc-2 joined XC-A", func() bool { return n.Node().Status().Leader != "" })
	call(t, a, "PUT", "/v1/items/XC-L-0001", map[string]any{"name": "本站事项", "type": map[string]any{"code": "20"}}, nil)
	deadline := time.Now().Add(40 * time.Second)
	renewals := 0
	last := first
	for time.Now().Before(deadline) && renewals < 2 {
		cur, err := pki.ParseCertPEM(mustRead(t, filepath.Join(dir, "node.crt")))
		if err == nil && !cur.NotAfter.Equal(last.NotAfter) {
			renewals++
			last = cur
		}
		// Writes through pc-2 keep working across renewals.
		if code := call(t, n, "POST", "/v1/cases", newCase("", "XC-L-0001"), nil); code != 201 {
			t.Fatalf("write through pc-2 after %d renewals: %d", renewals, code)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if renewals < 2 {
		t.Fatalf("the certificate was renewed %d times in 40 s, want 2 (lifetime 15 s)", renewals)
	}
	if !last.NotAfter.After(first.NotAfter) || time.Until(last.NotAfter) <= 0 {
		t.Fatalf("renewed certificate expires %s, the first %s", last.NotAfter, first.NotAfter)
	}
	if id := n.Transport().Identity(); id.Node != "pc-2" || id.Station != "XC-A" {
		t.Fatalf("identity after renewal: %s", id)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
