package center

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stationsync/stationsync/records"
)

// The PostgreSQL mirror (optional: postgres_url in the center's config).
// City-level tools query the district's consolidated cases there. The
// center's leader follows the center's own change feed (what consolidating
// merged) and, per page, writes the touched cases, their events and
// evaluations, the touched work orders and the new feed position in one
// PostgreSQL transaction: a page is mirrored exactly once, and a restart
// resumes where the last committed transaction left off. Rows hold the
// record as the center has it (upserts), with the applicant's ID number
// and phone masked: the mirror leaves the district's machines' protection.

const mirrorSchema = `
CREATE TABLE IF NOT EXISTS stationsync_cases (
  station     text NOT NULL,
  id          text NOT NULL,
  item_code   text NOT NULL,
  item_name   text NOT NULL,
  channel     text NOT NULL,
  state       text NOT NULL,
  created_at  timestamptz NOT NULL,
  deadline    timestamptz,
  overdue     boolean NOT NULL,
  record      jsonb NOT NULL,
  PRIMARY KEY (station, id)
);
CREATE TABLE IF NOT EXISTS stationsync_events (
  station   text NOT NULL,
  id        text NOT NULL,
  case_id   text NOT NULL,
  kind      text NOT NULL,
  type      text NOT NULL,
  actor     text NOT NULL,
  at        timestamptz NOT NULL,
  hlc       text NOT NULL,
  conflict  boolean NOT NULL,
  PRIMARY KEY (station, id)
);
CREATE TABLE IF NOT EXISTS stationsync_workorders (
  station     text NOT NULL,
  id          text NOT NULL,
  case_id     text NOT NULL,
  item_code   text NOT NULL,
  level       text NOT NULL,
  state       text NOT NULL,
  opened_at   timestamptz NOT NULL,
  record      jsonb NOT NULL,
  PRIMARY KEY (station, id)
);
CREATE TABLE IF NOT EXISTS stationsync_mirror (
  name        text PRIMARY KEY,
  cluster_id  text NOT NULL,
  seq         bigint NOT NULL,
  updated_at  timestamptz NOT NULL
);`

// mirrorState is the mirror's progress, for /v1/mirror and the dashboard.
type mirrorState struct {
	mu        sync.Mutex
	enabled   bool
	seq, head uint64
	lastOK    time.Time
	lastError string
}

// MirrorView is GET /v1/mirror. Head is the center's feed head as the
// mirror last read it (it runs every second): Seq == Head says the mirror
// has written all it had seen then, not that nothing arrived since.
type MirrorView struct {
	Enabled   bool       `json:"enabled"`
	Seq       uint64     `json:"seq"`
	Head      uint64     `json:"head"`
	LastOK    *time.Time `json:"last_ok"`
	LastError string     `json:"last_error,omitempty"`
}

func (m *mirrorState) view() MirrorView {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := MirrorView{Enabled: m.enabled, Seq: m.seq, Head: m.head, LastError: m.lastError}
	if !m.lastOK.IsZero() {
		t := m.lastOK
		v.LastOK = &t
	}
	return v
}

// runMirror keeps PostgreSQL up to date while this node leads
// (leaderLoop: every second, at once while pages are full).
func (c *Center) runMirror(url string) {
	defer c.wg.Done()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	c.leaderLoop(time.Second, func() (bool, error) {
		more, err := func() (bool, error) {
			if conn == nil || conn.IsClosed() {
				ctx, cancel := c.ctx(15 * time.Second)
				defer cancel()
				cn, err := pgx.Connect(ctx, url)
				if err != nil {
					return false, fmt.Errorf("connect to PostgreSQL: %w", err)
				}
				if _, err := cn.Exec(ctx, mirrorSchema); err != nil {
					cn.Close(context.Background())
					return false, fmt.Errorf("create the mirror tables: %w", err)
				}
				conn = cn
			}
			return c.mirrorOnce(conn)
		}()
		c.mirror.mu.Lock()
		if err != nil {
			if c.mirror.lastError == "" {
				c.logger.Warn("PostgreSQL mirror failed; retrying with backoff", "error", err)
			}
			c.mirror.lastError = err.Error()
		} else {
			c.mirror.lastError, c.mirror.lastOK = "", time.Now()
		}
		c.mirror.mu.Unlock()
		if err != nil && conn != nil {
			conn.Close(context.Background())
			conn = nil
		}
		return more, err
	})
}

// mirrorOnce mirrors one page of the center's feed.
func (c *Center) mirrorOnce(conn *pgx.Conn) (bool, error) {
	ctx, cancel := c.ctx(60 * time.Second)
	defer cancel()
	var clusterID string
	var seq int64
	err := conn.QueryRow(ctx, `SELECT cluster_id, seq FROM stationsync_mirror WHERE name = 'center'`).Scan(&clusterID, &seq)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("read the mirror position: %w", err)
	}
	page, err := c.node.Feed(uint64(seq), 500)
	if err != nil {
		return false, err
	}
	if page.ClusterID != clusterID && seq != 0 {
		// The center's store was rebuilt: mirror it all again (upserts).
		if page, err = c.node.Feed(0, 500); err != nil {
			return false, err
		}
	}
	c.mirror.mu.Lock()
	c.mirror.head = page.Head
	c.mirror.mu.Unlock()
	if len(page.Changes) == 0 {
		c.mirror.mu.Lock()
		c.mirror.seq = page.Next
		c.mirror.mu.Unlock()
		return false, nil
	}
	// The records touched by the page, as the center holds them now.
	type ref struct{ station, key string }
	cases, wos := map[ref]bool{}, map[ref]bool{}
	for _, ch := range page.Changes {
		st, key, ok := records.SplitCenterKey(ch.Key)
		if !ok {
			continue
		}
		switch ch.Kind {
		case "case", "event", "evaluation":
			cases[ref{st, key}] = true
		case "workorder", "workorder_event":
			wos[ref{st, key}] = true
		}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(context.Background())
	err = c.node.View(func(r records.Reader) error {
		for k := range cases {
			cs, err := records.GetCase(records.StationReader(r, k.station), k.key)
			if err != nil {
				return err
			}
			if err := c.mirrorCase(ctx, tx, k.station, cs); err != nil {
				return err
			}
		}
		for k := range wos {
			wo, err := records.GetWorkOrder(records.StationReader(r, k.station), k.key)
			if err != nil {
				return err
			}
			b, _ := json.Marshal(wo)
			if _, err := tx.Exec(ctx, `INSERT INTO stationsync_workorders (station, id, case_id, item_code, level, state, opened_at, record)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (station, id) DO UPDATE SET state = EXCLUDED.state, record = EXCLUDED.record`,
				k.station, wo.ID, wo.CaseID, wo.ItemCode, wo.Level, wo.State, wo.OpenedAt, b); err != nil {
				return fmt.Errorf("mirror work order %s/%s: %w", k.station, wo.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO stationsync_mirror (name, cluster_id, seq, updated_at) VALUES ('center', $1, $2, now())
ON CONFLICT (name) DO UPDATE SET cluster_id = EXCLUDED.cluster_id, seq = EXCLUDED.seq, updated_at = now()`, page.ClusterID, int64(page.Next)); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit the mirror page: %w", err)
	}
	c.mirror.mu.Lock()
	c.mirror.seq = page.Next
	c.mirror.mu.Unlock()
	return len(page.Changes) == 500, nil
}

// mirrorCase upserts a case (masked) and inserts its events and
// evaluations.
func (c *Center) mirrorCase(ctx context.Context, tx pgx.Tx, station string, cs records.Case) error {
	masked := cs.Masked()
	b, err := json.Marshal(masked)
	if err != nil {
		return err
	}
	var deadline *time.Time
	if dl, ok := cs.Deadline(c.cal, c.loc); ok {
		deadline = &dl
	}
	if _, err := tx.Exec(ctx, `INSERT INTO stationsync_cases (station, id, item_code, item_name, channel, state, created_at, deadline, overdue, record)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)
ON CONFLICT (station, id) DO UPDATE SET state = EXCLUDED.state, deadline = EXCLUDED.deadline, overdue = EXCLUDED.overdue, record = EXCLUDED.record`,
		station, cs.ID, cs.ItemCode, cs.ItemName, cs.Channel, cs.State, cs.CreatedAt, deadline, cs.Overdue(c.cal, c.loc, time.Now()), b); err != nil {
		return fmt.Errorf("mirror case %s/%s: %w", station, cs.ID, err)
	}
	const ev = `INSERT INTO stationsync_events (station, id, case_id, kind, type, actor, at, hlc, conflict)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (station, id) DO UPDATE SET conflict = EXCLUDED.conflict`
	for _, e := range cs.Events {
		if _, err := tx.Exec(ctx, ev, station, e.ID, cs.ID, "event", e.Type, e.Actor, e.At, string(e.HLC), e.Conflict); err != nil {
			return fmt.Errorf("mirror event %s/%s: %w", station, e.ID, err)
		}
	}
	for _, e := range cs.Evaluations {
		if _, err := tx.Exec(ctx, ev, station, e.ID, cs.ID, "evaluation", e.Level, "", e.At, string(e.HLC), false); err != nil {
			return fmt.Errorf("mirror evaluation %s/%s: %w", station, e.ID, err)
		}
	}
	return nil
}
