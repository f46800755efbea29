package daemon

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/records/calendar"
	"github.com/stationsync/stationsync/replication"
)

// centerContact is when a station node last heard from the district
// center: a feed read by the center, or a catalogue fetched from it.
type centerContact struct {
	mu      sync.Mutex
	last    time.Time
	lastErr string
}

func (c *centerContact) ok() {
	c.mu.Lock()
	c.last, c.lastErr = time.Now(), ""
	c.mu.Unlock()
}

func (c *centerContact) failed(err error) {
	c.mu.Lock()
	c.lastErr = err.Error()
	c.mu.Unlock()
}

func (c *centerContact) get() (time.Time, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.lastErr
}

// serveFeed answers the center's feed reads (replication.Node.ServeFeed)
// and notes the contact.
func (d *Daemon) serveFeed(c net.Conn, peer pki.Identity) {
	if peer.Role == pki.RoleCenter {
		d.center.ok()
	}
	d.node.ServeFeed(c, peer)
}

// runCatalogue: on the station's leader, every catalogue_interval, fetch
// the district items newer than the station holds from the center and
// apply them through raft (the center's version wins; local items stay).
func (d *Daemon) runCatalogue() {
	defer d.wg.Done()
	interval := time.Duration(d.cfg.CatalogueInterval)
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		t.Reset(interval)
		d.useSettings() // followers learn the settings through raft
		if !d.node.IsLeader() {
			continue
		}
		if err := d.fetchCatalogue(); err != nil {
			d.center.failed(err)
			d.logger.Warn("catalogue fetch from the center failed; retrying", "center", d.cfg.Center, "error", err)
			continue
		}
		d.center.ok()
	}
}

// fetchCatalogue fetches and applies one catalogue delta.
func (d *Daemon) fetchCatalogue() error {
	have := map[string]uint64{}
	items, err := d.listItems()
	if err != nil {
		return err
	}
	for _, it := range items {
		if it.Origin == records.OriginDistrict {
			have[it.Code] = it.Version
		}
	}
	ctx, cancel := d.bounded(20 * time.Second)
	defer cancel()
	var after uint64
	if err := d.node.View(func(r records.Reader) (err error) { after, err = records.CenterCursor(r); return err }); err != nil {
		return err
	}
	req := replication.FeedRequest{Method: replication.FeedMethodCatalogue, Have: have, EventsAfter: after, SettingsVersion: d.setVer.Load().(string)}
	resp, err := replication.CallFeed(ctx, d.tr, d.cfg.Center, req)
	if err != nil {
		return err
	}
	if resp.Catalogue == nil {
		return nil
	}
	if s := resp.Catalogue.Settings; s != nil {
		if err := d.storeSettings(ctx, *s); err != nil {
			return err
		}
	}
	if err := d.applyCenterEvents(ctx, resp.Catalogue.Events); err != nil {
		return err
	}
	if len(resp.Catalogue.Items) == 0 {
		return nil
	}
	ops := make([]records.Op, 0, len(resp.Catalogue.Items))
	for i := range resp.Catalogue.Items {
		it := resp.Catalogue.Items[i]
		if it.Origin != records.OriginDistrict || it.Version == 0 {
			continue
		}
		ops = append(ops, records.Op{Kind: records.OpPutItem, Item: &it})
	}
	for len(ops) > 0 {
		n := min(len(ops), 32)
		results, err := d.node.Submit(ctx, ops[:n])
		if err != nil {
			return err
		}
		for i, r := range results {
			if r.Error != nil {
				d.logger.Warn("district item refused", "item", ops[i].Item.Code, "error", r.Error)
			}
		}
		ops = ops[n:]
	}
	d.logger.Info("district catalogue applied", "items", len(resp.Catalogue.Items))
	return nil
}

// applyCenterEvents applies center-side events (a call-back evaluation, a
// work-order approval) as offline writes, so one the station's history no
// longer allows is kept as a conflict; each batch carries the new cursor,
// so an event is taken once.
func (d *Daemon) applyCenterEvents(ctx context.Context, events []records.CenterEvent) error {
	for len(events) > 0 {
		n := min(len(events), 32)
		ops := make([]records.Op, 0, n+1)
		for _, e := range events[:n] {
			op := e.Op
			op.Offline = true
			ops = append(ops, op)
		}
		ops = append(ops, records.Op{Kind: records.OpCenterCursor, Seq: events[n-1].Seq})
		results, err := d.node.Submit(ctx, ops)
		if err != nil {
			return err
		}
		for i, r := range results {
			if r.Error != nil {
				d.logger.Warn("center-side event refused", "kind", ops[i].Kind, "case", records.CaseOf(ops[i]), "error", r.Error)
			}
		}
		d.logger.Info("center-side events applied", "events", n)
		events = events[n:]
	}
	return nil
}

// storeSettings stores the center's settings in the station's replicated
// state (every node of the station takes them from there).
func (d *Daemon) storeSettings(ctx context.Context, s records.Settings) error {
	if _, err := calendar.Parse(holidayFiles(s)); err != nil {
		return fmt.Errorf("the center's holiday calendar: %w", err)
	}
	results, err := d.node.Submit(ctx, []records.Op{{Kind: records.OpPutSettings, Settings: &s}})
	if err != nil {
		return err
	}
	if e := results[0].Error; e != nil {
		return e
	}
	d.useSettings()
	return nil
}

func holidayFiles(s records.Settings) map[string][]byte {
	files := make(map[string][]byte, len(s.Holidays))
	for n, b := range s.Holidays {
		files[n] = []byte(b)
	}
	return files
}

// useSettings switches to the center's settings stored in the station's
// state, if they are newer than the ones in use.
func (d *Daemon) useSettings() {
	var s *records.Settings
	if err := d.node.View(func(r records.Reader) (err error) { s, err = records.GetSettings(r); return err }); err != nil || s == nil {
		return
	}
	if s.Version == d.setVer.Load().(string) {
		return
	}
	cal, err := calendar.Parse(holidayFiles(*s))
	if err != nil {
		d.logger.Warn("the center's holiday calendar does not parse; keeping the current one", "error", err)
		return
	}
	d.cal.Store(cal)
	d.wod.Store(int64(s.WorkOrderDays))
	d.setVer.Store(s.Version)
	d.logger.Info("using the district center's settings", "version", s.Version, "work_order_days", s.WorkOrderDays, "calendar_years", len(s.Holidays))
}
