package main

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication"
	"github.com/stationsync/stationsync/replication/transport"
)

// goCluster is a station of three in-process nodes (real QUIC on loopback,
// real badger stores with SyncWrites), built as replication/cluster_test.go
// builds its test cluster.
type goCluster struct {
	nodes  []*replication.Node
	trs    []*transport.Transport
	clocks []*records.Clock
	ids    []string
}

func newGoCluster(root string, n int) (*goCluster, error) {
	caDir := filepath.Join(root, "ca")
	if err := pki.InitCA(caDir); err != nil {
		return nil, err
	}
	var addrs []string
	for range n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	c := &goCluster{}
	logger := slog.New(slog.DiscardHandler)
	for i := range n {
		id := fmt.Sprintf("pc-%d", i+1)
		dir := filepath.Join(root, id)
		if err := pki.Issue(caDir, pki.Identity{Role: pki.RoleStation, Station: "BENCH-01", Node: id}, dir, 24*time.Hour); err != nil {
			return nil, err
		}
		tl, err := pki.LoadTLS(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key"))
		if err != nil {
			return nil, err
		}
		tr, err := transport.New(transport.Config{Listen: addrs[i], TLS: tl, Station: "BENCH-01", StatelessResetKeyFile: filepath.Join(dir, "reset.key"), Logger: logger})
		if err != nil {
			return nil, err
		}
		key := make([]byte, 32)
		crand.Read(key)
		node := replication.New(replication.Config{NodeID: id, Station: "BENCH-01", DataDir: filepath.Join(dir, "data"), Peers: addrs, Expect: n, EncryptionKey: key, Logger: logger}, tr)
		if err := tr.Open(); err != nil {
			return nil, err
		}
		if err := node.Open(); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, node)
		c.trs = append(c.trs, tr)
		c.clocks = append(c.clocks, records.NewClock(nil))
		c.ids = append(c.ids, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, node := range c.nodes {
		if _, err := node.WaitLeader(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("in-process cluster: no leader: %w", err)
		}
	}
	it := records.Item{Code: "BENCH-0001", Name: "bench item", Type: records.ItemType{Code: "20"}, Origin: records.OriginLocal}
	if err := c.submit(ctx, 0, records.Op{Kind: records.OpPutItem, Item: &it}); err != nil {
		c.Close()
		return nil, fmt.Errorf("put item: %w", err)
	}
	return c, nil
}

func (c *goCluster) Close() {
	for i := len(c.nodes) - 1; i >= 0; i-- {
		c.nodes[i].Close()
		c.trs[i].Close()
	}
}

func (c *goCluster) submit(ctx context.Context, i int, op records.Op) error {
	res, err := c.nodes[i].Submit(ctx, []records.Op{op})
	if err != nil {
		return err
	}
	if len(res) != 1 {
		return fmt.Errorf("submit: %d results", len(res))
	}
	if res[0].Error != nil {
		return res[0].Error
	}
	return nil
}

var notePayload = json.RawMessage(func() []byte {
	b, _ := json.Marshal(map[string]any{"note": payload})
	return b
}())

// workload: client w submits on node w%3 (a follower forwards to the
// leader), the same case-event sequence as the HTTP workload.
func (c *goCluster) workload(clients int, creates *atomic.Int64) (prepareFunc, opFunc) {
	st := make([]httpClientState, clients)
	run := time.Now().UnixNano()
	prepare := func(ctx context.Context, w int) error {
		i := w % len(c.nodes)
		cs := &st[w]
		if cs.caseID != "" && cs.n < eventsPerCase {
			return nil
		}
		cse := records.Case{ID: fmt.Sprintf("g%x-%d", run, caseSeq.Add(1)), ItemCode: "BENCH-0001", Channel: "window", Actor: "bench", Applicant: records.Applicant{Kind: "person", Name: "bench"}}
		if err := cse.Validate(); err != nil {
			return err
		}
		records.PrepareCase(&cse, "BENCH-01", c.ids[i], c.clocks[i].Now())
		if err := c.submit(ctx, i, records.Op{Kind: records.OpCreateCase, Case: &cse}); err != nil {
			return fmt.Errorf("create case: %w", err)
		}
		creates.Add(1)
		cs.caseID, cs.n = cse.ID, 0
		return nil
	}
	op := func(ctx context.Context, w int) (bool, error) {
		i := w % len(c.nodes)
		cs := &st[w]
		typ := records.EventAccepted
		if cs.n > 0 {
			typ = records.EventPaused
			if cs.n%2 == 0 {
				typ = records.EventResumed
			}
		}
		ev := records.Event{Type: typ, Actor: "bench", Data: notePayload}
		records.PrepareEvent(&ev, cs.caseID, c.ids[i], c.clocks[i].Now())
		if err := c.submit(ctx, i, records.Op{Kind: records.OpAppendEvent, Event: &ev}); err != nil {
			cs.n = eventsPerCase
			var de *records.Error
			if errors.As(err, &de) {
				return false, fmt.Errorf("event: %v", de)
			}
			return false, err
		}
		cs.n++
		return false, nil
	}
	return prepare, op
}
