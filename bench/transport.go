package main

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication"
	"github.com/stationsync/stationsync/replication/transport"
)

// Section "transport": raft over our QUIC stream layer against raft over
// hashicorp's TCP transport, on the same in-process 3-node cluster and the
// same workload as the Go-API rows.

func init() {
	addSection(section{name: "transport", run: runTransportSection, markdown: transportMarkdown})
}

// transportResults: one loadResult per concurrency, for each transport.
type transportResults struct {
	clients   []int
	quic, tcp []loadResult
}

func runTransportSection(rep *report, root string, smoke bool) {
	res := &rep.sec.transport
	res.clients = []int{1, 64}
	for _, tcp := range []bool{false, true} {
		name := "QUIC"
		if tcp {
			name = "TCP"
		}
		c, err := newSectionCluster(filepath.Join(root, strings.ToLower(name)), 3, tcp)
		if err != nil {
			rep.fail("transport %s: %v", name, err)
			continue
		}
		var creates atomic.Int64
		for _, n := range res.clients {
			first := 0
			if n == 1 { // one client writes through the leader on both sides
				if first, err = c.leaderIndex(); err != nil {
					rep.fail("transport %s: %v", name, err)
					break
				}
			}
			prep, op := c.workload(n, first, &creates)
			r := runLoad("stationsync raft/"+name, n, rep.Warmup, rep.Dur, prep, op)
			fmt.Println("bench:", r)
			if r.OK == 0 {
				rep.fail("transport: raft over %s with %d clients: no successful op (first error: %s)", name, n, r.FirstErr)
			}
			if tcp {
				res.tcp = append(res.tcp, r)
			} else {
				res.quic = append(res.quic, r)
			}
		}
		c.Close()
	}
}

func transportMarkdown(rep *report) string {
	res := rep.sec.transport
	var b strings.Builder
	b.WriteString("## Raft transport: QUIC stream layer vs hashicorp TCP (stationsync Go API, in-process)\n\n")
	fmt.Fprintf(&b, "Case-event writes through replication.Node.Submit on 3 in-process nodes (loopback, fsync on, ~1 KiB), the Go-API workload, %v warm-up then %v measured per row; the only difference is raft's transport (forwarding, probes, feeds stay on QUIC). TCP: raft.NewTCPTransport, plain TCP, no TLS.\n\n", rep.Warmup, rep.Dur)
	b.WriteString("| metric | stationsync QUIC | hashicorp TCP | QUIC / TCP | target | met |\n|---|---|---|---|---|---|\n")
	for _, c := range res.clients {
		q, okq := find(res.quic, c, "")
		t, okt := find(res.tcp, c, "")
		if !okq || !okt {
			fmt.Fprintf(&b, "| %d clients | not measured (failed) | | | | |\n", c)
			continue
		}
		fmt.Fprintf(&b, "| %d clients: p50 | %s | %s | %s | - | |\n", c, ms(q.P50), ms(t.P50), ratio(float64(q.P50), float64(t.P50)))
		fmt.Fprintf(&b, "| %d clients: p99 | %s | %s | %s | - | |\n", c, ms(q.P99), ms(t.P99), ratio(float64(q.P99), float64(t.P99)))
		fmt.Fprintf(&b, "| %d clients: ops/s | %.0f | %.0f | %s | - | |\n", c, q.OpsPerSec(), t.OpsPerSec(), ratio(q.OpsPerSec(), t.OpsPerSec()))
		fmt.Fprintf(&b, "| %d clients: ok / errors | %d / %d | %d / %d | | | |\n", c, q.OK, q.Errors, t.OK, t.Errors)
	}
	for _, set := range [][]loadResult{res.quic, res.tcp} {
		for _, r := range set {
			if r.FirstErr != "" {
				fmt.Fprintf(&b, "\nFirst error of %s with %d clients (%d errors): `%s`\n", r.Name, r.Clients, r.Errors, r.FirstErr)
			}
		}
	}
	return b.String()
}

// sectionCluster is the in-process cluster of the Go-API rows (goapi.go
// newGoCluster builds it without TCP), built so that a node can be
// reopened on the same data, key and address (catchup.go), and optionally
// with raft over hashicorp's TCP transport. Both transports of the
// transport section use it, so they differ in nothing else.
type sectionCluster struct {
	*goCluster
	tcp  bool
	cfgs []replication.Config
	tls  []*pki.TLS
}

func newSectionCluster(root string, n int, tcp bool) (*sectionCluster, error) {
	caDir := filepath.Join(root, "ca")
	if err := pki.InitCA(caDir); err != nil {
		return nil, err
	}
	var addrs []string
	for range n {
		p, err := freePort() // free for both TCP and UDP
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	c := &sectionCluster{goCluster: &goCluster{}, tcp: tcp}
	logger := slog.New(slog.DiscardHandler)
	for i := range n {
		id := fmt.Sprintf("pc-%d", i+1)
		dir := filepath.Join(root, id)
		if err := pki.Issue(caDir, pki.Identity{Role: pki.RoleStation, Station: "BENCH-01", Node: id}, dir, 24*time.Hour); err != nil {
			c.Close()
			return nil, err
		}
		tl, err := pki.LoadTLS(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key"))
		if err != nil {
			c.Close()
			return nil, err
		}
		key := make([]byte, 32)
		crand.Read(key)
		c.cfgs = append(c.cfgs, replication.Config{NodeID: id, Station: "BENCH-01", DataDir: filepath.Join(dir, "data"), Peers: addrs, Expect: n, EncryptionKey: key, Logger: logger})
		c.tls = append(c.tls, tl)
		c.nodes = append(c.nodes, nil)
		c.trs = append(c.trs, nil)
		c.clocks = append(c.clocks, records.NewClock(nil))
		c.ids = append(c.ids, id)
		if err := c.openNode(i); err != nil {
			c.Close()
			return nil, err
		}
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

// openNode starts node i (its QUIC transport, and with tcp its raft TCP
// transport) from its config: a first start, or a restart on the same
// data dir, key and address after stopNode.
func (c *sectionCluster) openNode(i int) error {
	cfg := c.cfgs[i]
	dir := filepath.Dir(cfg.DataDir)
	addr := cfg.Peers[i]
	tr, err := transport.New(transport.Config{Listen: addr, TLS: c.tls[i], Station: cfg.Station, StatelessResetKeyFile: filepath.Join(dir, "reset.key"), Logger: cfg.Logger})
	if err != nil {
		return err
	}
	if c.tcp {
		// Raft's TCP listener takes the QUIC node's host:port (TCP and UDP
		// ports are separate), so the raft server addresses stay the QUIC
		// addresses the node forwards and probes at (replication.Config
		// RaftTransport).
		// MaxRPCsInFlight 1 as the node's own transport (no pipelining,
		// see replication.raftRPCsInFlight): only the wire differs.
		rt, err := raft.NewTCPTransportWithConfig(addr, nil, &raft.NetworkTransportConfig{
			MaxPool: 3, Timeout: 5 * time.Second, MaxRPCsInFlight: 1,
			Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard}),
		})
		if err != nil {
			return fmt.Errorf("raft TCP transport: %w", err)
		}
		cfg.RaftTransport = rt // the node closes it
	}
	node := replication.New(cfg, tr)
	if err := tr.Open(); err != nil {
		if cfg.RaftTransport != nil {
			cfg.RaftTransport.(raft.WithClose).Close()
		}
		return err
	}
	c.nodes[i], c.trs[i] = node, tr
	return node.Open()
}
