package center_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stationsync/stationsync/center"
)

// postgresURL is the PostgreSQL database the mirror test may use
// ($STATIONSYNC_TEST_POSTGRES, emptied by the test). Without one the test
// is skipped, unless STATIONSYNC_REQUIRE_POSTGRES is set (CI installs and
// starts PostgreSQL and sets both, so there the test always runs).
func postgresURL(t *testing.T) string {
	u := os.Getenv("STATIONSYNC_TEST_POSTGRES")
	if u == "" {
		if os.Getenv("STATIONSYNC_REQUIRE_POSTGRES") != "" {
			t.Fatal("STATIONSYNC_REQUIRE_POSTGRES is set but STATIONSYNC_TEST_POSTGRES names no database")
		}
		t.Skip("no PostgreSQL: set STATIONSYNC_TEST_POSTGRES=postgres://user:pw@host/db (CI does)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("PostgreSQL at STATIONSYNC_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS stationsync_cases, stationsync_events, stationsync_workorders, stationsync_mirror`); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestPostgresMirror(t *testing.T) {
	url := postgresURL(t)
	d := newDistrict(t, "XC-A")
	a := d.startStation("XC-A")
	c := d.startCenterWith(fmt.Sprintf("postgres_url: %q\n", url), "XC-A")
	call(t, a, "PUT", "/v1/items/XC-L-0001", map[string]any{"name": "本站事项", "type": map[string]any{"code": "20"}}, nil)
	for i := range 4 {
		if code := call(t, a, "POST", "/v1/cases", newCase(fmt.Sprintf("pg-%d", i), "XC-L-0001"), nil); code != 201 {
			t.Fatalf("create case: %d", code)
		}
	}
	call(t, a, "POST", "/v1/cases/pg-0/events", map[string]any{"type": "accepted", "actor": "clerk-07"}, nil)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	query := func(q string, args ...any) string {
		var out string
		if err := conn.QueryRow(ctx, q, args...).Scan(&out); err != nil {
			return "error: " + err.Error()
		}
		return out
	}
	// Mirrored means: the center has pulled all the station has, and the
	// mirror has written the center's feed up to a head at least as new as
	// the one read after that pull (the view read before the pull, or a
	// head from the mirror's pass before the pull, proves nothing: CI once
	// saw 5 of 6 events that way).
	mirrored := func() bool {
		if !caughtUp(t, c, a, "XC-A") {
			return false
		}
		centerHead := c.Node().Status().Seq
		var m center.MirrorView
		call(t, c, "GET", "/v1/mirror", nil, &m)
		return m.Enabled && m.Seq == m.Head && m.Head >= centerHead && m.Head > 0 && m.LastError == "" &&
			query(`SELECT count(*)::text FROM stationsync_cases WHERE station = 'XC-A'`) == "4"
	}
	eventually(t, "the cases are mirrored", mirrored)
	if got := query(`SELECT count(*)::text FROM stationsync_events WHERE station = 'XC-A'`); got != "5" { // 4 received, 1 accepted
		t.Fatalf("events in PostgreSQL: %s, want 5", got)
	}
	// The evaluation comes in a later pull than the cases it belongs to.
	call(t, a, "POST", "/v1/cases/pg-1/evaluations", map[string]any{"level": "不满意", "channel": 4}, nil)
	eventually(t, "the evaluation is mirrored", mirrored)
	if got := query(`SELECT state FROM stationsync_cases WHERE station = 'XC-A' AND id = 'pg-0'`); got != "accepted" {
		t.Fatalf("pg-0 state in PostgreSQL: %s", got)
	}
	if got := query(`SELECT count(*)::text FROM stationsync_events WHERE station = 'XC-A'`); got != "6" { // 4 received, 1 accepted, 1 evaluation
		t.Fatalf("events in PostgreSQL: %s, want 6", got)
	}
	if got := query(`SELECT state FROM stationsync_workorders WHERE station = 'XC-A' AND id = 'WO-pg-1'`); got != "open" {
		t.Fatalf("work order in PostgreSQL: %s", got)
	}
	if got := query(`SELECT record->'applicant'->>'id_number' FROM stationsync_cases WHERE id = 'pg-2'`); strings.Contains(got, "19900101") || got == "" {
		t.Fatalf("ID number in PostgreSQL is not masked: %q", got)
	}

	// The center restarts; more happens; every row is there once.
	d.stop("center")
	call(t, a, "POST", "/v1/cases/pg-0/events", map[string]any{"type": "completed", "actor": "clerk-07"}, nil)
	c = d.startCenterWith(fmt.Sprintf("postgres_url: %q\n", url), "XC-A")
	eventually(t, "the completion is mirrored", func() bool {
		return mirrored() && query(`SELECT state FROM stationsync_cases WHERE id = 'pg-0'`) == "completed"
	})
	if got := query(`SELECT count(*)::text FROM stationsync_events WHERE station = 'XC-A'`); got != "7" {
		t.Fatalf("events in PostgreSQL after the restart: %s, want 7", got)
	}
}
