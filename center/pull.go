package center

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication"
)

const (
	pageLimit    = 500      // changes asked per feed read
	chunkBytes   = 48 << 10 // one consolidate op stays inside a write's limit
	chunkChanges = 64       // and rewrites few enough consolidated cases for one store transaction
	maxBackoff   = 2 * time.Minute
	callTimeout  = 15 * time.Second
	verifyMonths = 2 // this month and the one before are compared
)

// pullState is what the center knows of one station's sync, besides the
// cursor in the store. Guarded by Center.mu.
type pullState struct {
	station   string
	addresses []string
	preferred int // index of the address that answered last

	lastContact time.Time
	lastAddr    string
	lastError   string
	lastErrorAt time.Time
	behindSince time.Time // when the center last fell behind the station's head; zero when caught up
	head        uint64    // the station's feed head at the last pull
	catalogueAt time.Time // the station's leader last fetched the catalogue

	verifiedAt time.Time
	digests    map[string]digestState    // by month
	rereadFor  map[string]records.Digest // the station's digest a re-read was started for, by month
}

// digestState is the last comparison of a month's digests.
type digestState struct {
	Month   string         `json:"month"`
	Match   bool           `json:"match"`
	Station records.Digest `json:"station"`
	Center  records.Digest `json:"center"`
	At      time.Time      `json:"at"`
	// Persistent: a re-read did not make them equal (the station lost
	// records the center keeps, e.g. it was rebuilt from scratch); no
	// more re-reads until the station's records change.
	Persistent bool `json:"persistent,omitempty"`
}

// runPull pulls one station until Close: at once, then every pull
// interval, at once again while pages come back full (leaderLoop). Once
// caught up it checks the digests.
func (c *Center) runPull(ps *pullState) {
	defer c.wg.Done()
	c.leaderLoop(c.interval, func() (bool, error) {
		more, err := c.pullOnce(ps)
		switch {
		case err != nil:
			c.failed(ps, err)
		case !more:
			c.verify(ps)
		}
		return more, err
	})
}

// leaderLoop calls step while this node is the center's raft leader: at
// once, then every idle, at once again while step says more is waiting,
// and after a failure with exponential backoff (1 s, capped at
// maxBackoff); until Close. A node that is not the leader waits for its
// raft state to change (replication.Node.StateChanged), so a center just
// elected pulls at once; it also looks every notLeaderPoll.
const notLeaderPoll = 500 * time.Millisecond

func (c *Center) leaderLoop(idle time.Duration, step func() (more bool, err error)) {
	var backoff time.Duration
	timer := time.NewTimer(0)
	defer timer.Stop()
	var changed <-chan struct{} // nil (never ready) while the leader
	for {
		select {
		case <-c.stop:
			return
		case <-timer.C:
		case <-changed:
		}
		changed = c.node.StateChanged() // before IsLeader: no change is missed
		wait := min(idle, notLeaderPoll)
		if c.node.IsLeader() {
			changed = nil
			started := time.Now()
			more, err := step()
			switch {
			case err != nil:
				backoff = min(max(2*backoff, time.Second), maxBackoff)
				wait = backoff
			case more:
				backoff, wait = 0, 0
			default:
				// The next step an interval after this one started: a slow
				// step (a digest check) does not stretch the interval.
				backoff, wait = 0, max(0, idle-time.Since(started))
			}
		}
		timer.Reset(wait)
	}
}

// ctx is a context for one call that ends at Close.
func (c *Center) ctx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.base, d)
}

// submit writes one op through the center's node; a refusal of the op
// comes back as the error (a *records.Error).
func (c *Center) submit(ctx context.Context, op records.Op) (replication.Result, error) {
	results, err := c.node.Submit(ctx, []records.Op{op})
	if err != nil {
		return replication.Result{}, err
	}
	if e := results[0].Error; e != nil {
		return results[0], e
	}
	return results[0], nil
}

// call sends req to the station, trying its addresses from the one that
// answered last.
func (c *Center) call(ps *pullState, req replication.FeedRequest) (replication.FeedResponse, string, error) {
	c.mu.Lock()
	addrs, first := ps.addresses, ps.preferred
	c.mu.Unlock()
	var errs []error
	for i := range addrs {
		j := (first + i) % len(addrs)
		ctx, cancel := c.ctx(callTimeout)
		resp, err := replication.CallFeed(ctx, c.tr, addrs[j], req)
		cancel()
		if err == nil {
			c.mu.Lock()
			ps.preferred = j
			c.mu.Unlock()
			return resp, addrs[j], nil
		}
		errs = append(errs, err)
		select {
		case <-c.stop:
			return resp, "", errors.Join(errs...)
		default:
		}
	}
	return replication.FeedResponse{}, "", errors.Join(errs...)
}

// cursor reads a station's cursor from the consolidated store.
func (c *Center) cursor(station string) (records.Cursor, error) {
	var cur records.Cursor
	err := c.node.View(func(r records.Reader) (err error) {
		cur, err = records.GetCursor(r, station)
		return err
	})
	return cur, err
}

// pullOnce reads one page of the station's feed after the cursor and
// consolidates it. more says the page was full (more is waiting).
func (c *Center) pullOnce(ps *pullState) (more bool, err error) {
	cur, err := c.cursor(ps.station)
	if err != nil {
		return false, err
	}
	resp, addr, err := c.call(ps, replication.FeedRequest{Method: replication.FeedMethodFeed, Since: cur.Seq, Limit: pageLimit})
	if err != nil {
		return false, err
	}
	page := resp.Page
	if err := checkPage(page, cur.Seq, pageLimit); err != nil {
		return false, fmt.Errorf("feed from %s: %w", addr, err)
	}
	from := cur.Seq
	if page.ClusterID != "" && page.ClusterID != cur.ClusterID && cur.Seq != 0 {
		// A new cluster id: the station was rebuilt (or recovered from
		// scratch). Read it all again; merging doubles nothing.
		c.logger.Warn("station has a new cluster id: reading its feed again from the start", "station", ps.station, "old", cur.ClusterID, "new", page.ClusterID)
		if resp, addr, err = c.call(ps, replication.FeedRequest{Method: replication.FeedMethodFeed, Since: 0, Limit: pageLimit}); err != nil {
			return false, err
		}
		page = resp.Page
		if err := checkPage(page, 0, pageLimit); err != nil {
			return false, fmt.Errorf("feed from %s: %w", addr, err)
		}
		from = 0
	}
	if page.ClusterID == "" {
		c.contact(ps, addr, page.Head, cur.Seq)
		return false, nil // the station has no cluster yet
	}
	changes := make([]records.PulledChange, len(page.Changes))
	for i, fc := range page.Changes {
		changes[i] = records.PulledChange{Seq: fc.Seq, Change: fc.Change}
	}
	next := from
	for len(changes) > 0 || next == from {
		n, size := 0, 0
		for n < len(changes) && n < chunkChanges && (n == 0 || size+len(changes[n].Data) < chunkBytes) {
			size += len(changes[n].Data) + 64
			n++
		}
		pg := records.PulledPage{Station: ps.station, ClusterID: page.ClusterID, From: next, Changes: changes[:n], Head: page.Head}
		if err := c.consolidate(pg); err != nil {
			return false, err
		}
		if n > 0 {
			next = changes[n-1].Seq
		}
		changes = changes[n:]
		if n == 0 {
			break
		}
	}
	c.contact(ps, addr, page.Head, next)
	return len(page.Changes) == pageLimit, nil
}

// checkPage checks a page of a station's feed, the answer to a request
// for at most limit changes after since, before it is consolidated: a
// page that is not one is refused, naming what is wrong. (What a change
// holds is checked by the consolidate op, against the center's state.)
func checkPage(page *replication.FeedPage, since uint64, limit int) error {
	switch {
	case page == nil:
		return errors.New("empty answer: no page")
	case page.ClusterID == "" && len(page.Changes) > 0:
		return fmt.Errorf("page without a cluster id carries %d changes", len(page.Changes))
	case len(page.Changes) > limit:
		return fmt.Errorf("page of %d changes: at most %d were asked for", len(page.Changes), limit)
	}
	last := since
	for i, ch := range page.Changes {
		switch {
		case ch.Seq <= last:
			return fmt.Errorf("change %d: seq %d does not follow %d", i, ch.Seq, last)
		case ch.Kind == "" || ch.Key == "":
			return fmt.Errorf("change %d (seq %d): kind %q and key %q are required", i, ch.Seq, ch.Kind, ch.Key)
		case len(ch.Data) == 0:
			return fmt.Errorf("change %d (seq %d, %s %s): no data", i, ch.Seq, ch.Kind, ch.Key)
		}
		last = ch.Seq
	}
	if page.Head < last {
		return fmt.Errorf("head %d is before the page's last change %d", page.Head, last)
	}
	return nil
}

// consolidate writes one page and the new cursor as one replicated op.
func (c *Center) consolidate(pg records.PulledPage) error {
	ctx, cancel := c.ctx(30 * time.Second)
	defer cancel()
	if _, err := c.submit(ctx, records.Op{Kind: records.OpConsolidate, Pull: &pg}); err != nil {
		return fmt.Errorf("store page of %s: %w", pg.Station, err)
	}
	return nil
}

// contact records a successful pull.
func (c *Center) contact(ps *pullState, addr string, head, cursor uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	ps.lastContact, ps.lastAddr, ps.lastError, ps.head = now, addr, "", head
	switch {
	case cursor >= head:
		ps.behindSince = time.Time{}
	case ps.behindSince.IsZero():
		ps.behindSince = now
	}
}

// failed records a failed pull.
func (c *Center) failed(ps *pullState, err error) {
	c.mu.Lock()
	first := ps.lastError == ""
	ps.lastError, ps.lastErrorAt = err.Error(), time.Now()
	c.mu.Unlock()
	if first {
		c.logger.Warn("cannot pull station; retrying with backoff", "station", ps.station, "error", err)
	}
}

// verify compares, once the center has read a station up to its head,
// the digests of this month and the one before with the station's own. A
// mismatch (a record lost at the center, say) sets the cursor back to the
// start: the re-read merges what is missing and doubles nothing. It runs
// at most every 5 pull intervals per station, and at every pull while a
// mismatch is unresolved.
func (c *Center) verify(ps *pullState) {
	c.mu.Lock()
	due := time.Since(ps.verifiedAt) >= 5*c.interval || !allMatch(ps.digests)
	c.mu.Unlock()
	if !due {
		return
	}
	// One station at a time, center-wide: a digest decodes every case of
	// the station's month at the center, and right after a district's
	// consolidation all stations are due at once. Checked together they
	// took 81 % of the center's CPU (perf, bench center section) and held
	// back every pull's commit by seconds. A station waits for its turn
	// at most half a pull interval (its next pull is due an interval after
	// this one started, so that does not delay it), else checks at a
	// later pull (verifiedAt stays).
	wait := time.NewTimer(c.interval / 2)
	defer wait.Stop()
	select {
	case c.digestSlot <- struct{}{}:
		defer func() { <-c.digestSlot }()
	case <-wait.C:
		return
	case <-c.stop:
		return
	}
	now := time.Now().In(c.loc)
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, c.loc)
	for i := range verifyMonths {
		month := first.AddDate(0, -i, 0).Format("2006-01")
		if err := c.verifyMonth(ps, month); err != nil {
			c.logger.Debug("digest check", "station", ps.station, "month", month, "error", err)
			return
		}
	}
	c.mu.Lock()
	ps.verifiedAt = time.Now()
	c.mu.Unlock()
}

func allMatch(ds map[string]digestState) bool {
	for _, d := range ds {
		if !d.Match && !d.Persistent {
			return false
		}
	}
	return true
}

// errNotComparable: the station moved on since the center's last pull.
var errNotComparable = errors.New("the station's feed moved on since the last pull")

func (c *Center) verifyMonth(ps *pullState, month string) error {
	resp, _, err := c.call(ps, replication.FeedRequest{Method: replication.FeedMethodDigest, Month: month})
	if err != nil {
		return err
	}
	sd := resp.Digest
	if sd == nil {
		return errors.New("empty digest answer")
	}
	cur, err := c.cursor(ps.station)
	if err != nil {
		return err
	}
	if sd.ClusterID != cur.ClusterID || sd.Head != cur.Seq {
		return errNotComparable
	}
	var cd records.Digest
	err = c.node.View(func(r records.Reader) (err error) {
		cd, err = records.MonthDigest(records.StationReader(r, ps.station), month, c.loc)
		return err
	})
	if err != nil {
		return err
	}
	ds := digestState{Month: month, Match: cd == sd.Digest, Station: sd.Digest, Center: cd, At: time.Now()}
	c.mu.Lock()
	if ps.digests == nil {
		ps.digests = map[string]digestState{}
	}
	was, seen := ps.digests[month]
	ps.digests[month] = ds
	c.mu.Unlock()
	if ds.Match {
		if seen && !was.Match {
			c.logger.Info("station records match again after the re-read", "station", ps.station, "month", month)
		}
		return nil
	}
	c.mu.Lock()
	if ps.rereadFor == nil {
		ps.rereadFor = map[string]records.Digest{}
	}
	again := ps.rereadFor[month] == sd.Digest
	ps.rereadFor[month] = sd.Digest
	if again {
		ds.Persistent = true
		ps.digests[month] = ds
	}
	c.mu.Unlock()
	if again {
		if !was.Persistent {
			c.logger.Warn("a station's month still differs from the center's copy after a re-read: the station no longer has records the center keeps (rebuilt from scratch?); the center keeps them",
				"station", ps.station, "month", month, "station_count", sd.Count, "center_count", cd.Count)
		}
		return nil
	}
	c.logger.Warn("the center's copy of a station's month differs from the station's: reading the station again",
		"station", ps.station, "month", month, "station_count", sd.Count, "center_count", cd.Count)
	ctx, cancel := c.ctx(30 * time.Second)
	defer cancel()
	_, err = c.submit(ctx, records.Op{Kind: records.OpRereadStation, Station: ps.station})
	return err
}

// stationView is one station's sync state as the API and the dashboard
// show it.
type stationView struct {
	ID          string        `json:"id"`
	Addresses   []string      `json:"addresses"`
	LastContact *time.Time    `json:"last_contact"`
	LastAddress string        `json:"last_address,omitempty"`
	Cursor      uint64        `json:"cursor"`
	Head        uint64        `json:"head"`
	ClusterID   string        `json:"cluster_id"`
	LagEvents   uint64        `json:"lag_events"`
	LagSeconds  float64       `json:"lag_seconds"`
	LastError   string        `json:"last_error,omitempty"`
	Rereads     int           `json:"rereads"`
	Digests     []digestState `json:"digests"`
	// Sync is green (caught up, contact within 3 pull intervals), amber
	// (behind or no contact for a while) or red (no contact for 10
	// minutes, or a digest mismatch).
	Sync string `json:"sync"`
}

// stations returns every station's sync state, in config order.
func (c *Center) stationsView() ([]stationView, error) {
	var cursors map[string]records.Cursor
	err := c.node.View(func(r records.Reader) (err error) {
		cursors, err = records.ListCursors(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]stationView, 0, len(c.stations))
	now := time.Now()
	for _, st := range c.stations {
		ps := c.state[st.ID]
		cur := cursors[st.ID]
		v := stationView{ID: st.ID, Addresses: st.Addresses, Cursor: cur.Seq, Head: max(cur.Head, ps.head), ClusterID: cur.ClusterID,
			LastAddress: ps.lastAddr, LastError: ps.lastError, Rereads: cur.Rereads, Digests: []digestState{}}
		if !ps.lastContact.IsZero() {
			t := ps.lastContact
			v.LastContact = &t
		}
		if v.Head > v.Cursor {
			v.LagEvents = v.Head - v.Cursor
		}
		if !ps.behindSince.IsZero() {
			v.LagSeconds = now.Sub(ps.behindSince).Seconds()
		}
		mismatch := false
		for _, d := range ps.digests {
			v.Digests = append(v.Digests, d)
			mismatch = mismatch || !d.Match
		}
		sortDigests(v.Digests)
		since := now.Sub(ps.lastContact)
		switch {
		case ps.lastContact.IsZero() || since > 10*time.Minute || mismatch:
			v.Sync = "red"
		case v.LagEvents > 0 || since > 3*c.interval || ps.lastError != "":
			v.Sync = "amber"
		default:
			v.Sync = "green"
		}
		out = append(out, v)
	}
	return out, nil
}

func sortDigests(ds []digestState) {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j].Month > ds[j-1].Month; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
}
