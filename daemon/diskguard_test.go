package daemon

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestDiskGuardTripsAndClears: with a fake statfs, the guard stops writes
// when the free space falls below the reserve, keeps them stopped until
// it is back above the reserve plus the hysteresis (no flapping around the
// threshold), and a failed reading changes nothing.
func TestDiskGuardTripsAndClears(t *testing.T) {
	const MiB = 1 << 20
	var free uint64
	var ferr error
	g := newDiskGuard("/data", 64, func(dir string) (uint64, error) {
		if dir != "/data" {
			t.Fatalf("statfs of %s", dir)
		}
		return free, ferr
	})
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	g.now = func() time.Time { return now }
	steps := []struct {
		free             uint64
		err              error
		low, trip, clear bool
	}{
		{free: 500 * MiB},
		{free: 64 * MiB},                          // at the reserve: fine
		{free: 64*MiB - 1, low: true, trip: true}, // below: stop
		{free: 10 * MiB, low: true},               // still low, no second trip
		{err: errors.New("statfs failed"), low: true},
		{free: 70 * MiB, low: true}, // above the reserve, not above the hysteresis
		{free: 80*MiB - 1, low: true},
		{free: 80 * MiB, clear: true},      // reserve + 16 MiB: resume
		{free: 70 * MiB},                   // between: stays fine
		{err: errors.New("statfs failed")}, // a failed reading does not stop writes
		{free: 1 * MiB, low: true, trip: true},
	}
	for i, s := range steps {
		free, ferr = s.free, s.err
		now = now.Add(time.Second)
		st, trip, clear := g.check()
		if st.Low != s.low || trip != s.trip || clear != s.clear || g.low() != s.low {
			t.Fatalf("step %d (free %d, err %v): low %v trip %v clear %v, want %v %v %v", i, s.free, s.err, st.Low, trip, clear, s.low, s.trip, s.clear)
		}
		if s.err != nil && st.Error == "" {
			t.Fatalf("step %d: the error is not reported", i)
		}
		if s.trip && !st.Since.Equal(now) {
			t.Fatalf("step %d: since %v", i, st.Since)
		}
	}
	var nilGuard *diskGuard
	if nilGuard.low() || nilGuard.state().Low {
		t.Fatal("a nil guard holds writes")
	}
}

// TestDiskGuardRefusesWrites: while the guard holds writes, every write
// (and a backup) gets 507 with the JSON error disk_full naming data_dir and
// the free space; reads go through.
func TestDiskGuardRefusesWrites(t *testing.T) {
	d := &Daemon{cfg: Config{DataDir: "/srv/stationsync"}}
	free := uint64(3 << 20)
	d.disk = newDiskGuard(d.cfg.DataDir, 64, func(string) (uint64, error) { return free, nil })
	d.disk.check()
	for _, tc := range []struct {
		method, path string
		refused      bool
	}{
		{"POST", "/v1/cases", true},
		{"PUT", "/v1/items/XC-L-0001", true},
		{"POST", "/v1/cases/X/events", true},
		{"DELETE", "/v1/members/pc-2", true},
		{"GET", "/v1/backup", true},
		{"GET", "/v1/cases", false},
		{"GET", "/v1/status", false},
	} {
		w := httptest.NewRecorder()
		refused := d.refuseWhenDiskLow(w, httptest.NewRequest(tc.method, tc.path, nil))
		if refused != tc.refused {
			t.Fatalf("%s %s: refused %v", tc.method, tc.path, refused)
		}
		if !refused {
			continue
		}
		if w.Code != http.StatusInsufficientStorage {
			t.Fatalf("%s %s: %d", tc.method, tc.path, w.Code)
		}
		var e apiError
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if e.Error.Code != "disk_full" || !strings.Contains(e.Error.Message, "/srv/stationsync") || !strings.Contains(e.Error.Message, "3.0 MiB free") {
			t.Fatalf("%s %s: %+v", tc.method, tc.path, e)
		}
	}
	free = 200 << 20
	d.disk.check()
	if d.refuseWhenDiskLow(httptest.NewRecorder(), httptest.NewRequest("POST", "/v1/cases", nil)) {
		t.Fatal("writes still refused after space came back")
	}
}
