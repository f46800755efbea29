package daemon

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestPprofServedOnLoopbackAndStopped(t *testing.T) {
	d := newSingle(t, t.TempDir())
	d.cfg.Pprof = "127.0.0.1:0"
	openUntilLeader(t, d)
	if d.pprof == nil {
		t.Fatal("pprof configured but not served")
	}
	url := "http://" + d.pprof.Addr() + "/debug/pprof/heap?debug=1"
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "heap profile") {
		t.Fatalf("GET %s: %d %.200s", url, resp.StatusCode, body)
	}
	// Not on the API: the profiles stay off the API's address.
	resp, err = c.Get(d.APIURL() + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("the API serves /debug/pprof too")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(url); err == nil {
		t.Fatal("pprof still served after Close")
	}
}

func TestPprofOffByDefault(t *testing.T) {
	d := startSingle(t)
	if d.pprof != nil {
		t.Fatal("pprof served without the config asking")
	}
}
