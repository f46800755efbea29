package replication

import (
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// runFormation makes this node part of a cluster, unless it already is.
//
// With no raft state yet, it probes the static peers every second. If a
// peer is already in a cluster, it asks that cluster's leader to add it.
// Otherwise, once Expect nodes (itself included) answer, the one with the
// lowest node id bootstraps raft with all of them; the others wait to be
// contacted by the new leader. So the same config serves a first start, a
// restart and a node added later, and two nodes never bootstrap two
// clusters from the same view.
func (n *Node) runFormation() {
	defer n.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if n.inCluster() {
			return
		}
		if done := n.formOnce(); done {
			return
		}
		select {
		case <-n.closing:
			return
		case <-t.C:
		}
	}
}

func (n *Node) inCluster() bool {
	f := n.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// formOnce does one round of probing; it reports whether formation is
// settled (bootstrapped or joined).
func (n *Node) formOnce() bool {
	infos := n.probePeers()
	for _, in := range infos {
		if !in.InCluster || in.LeaderAddress == "" {
			continue
		}
		resp, err := n.roundTrip(in.LeaderAddress, rpcRequest{Method: rpcJoin, Address: n.tr.AdvertiseAddr()}, 5*time.Second)
		if err != nil || resp.Code != "" {
			n.logger.Info("join cluster: not yet", "via", in.LeaderAddress, "error", err, "answer", resp.Error)
			return false
		}
		n.logger.Info("joined cluster", "leader", in.Leader, "cluster_id", in.ClusterID)
		return true
	}
	for _, in := range infos {
		if in.InCluster {
			return false // a cluster exists but has no leader right now: wait
		}
	}
	servers := []raft.Server{{ID: raft.ServerID(n.cfg.NodeID), Address: raft.ServerAddress(n.tr.AdvertiseAddr()), Suffrage: raft.Voter}}
	for _, in := range infos {
		if in.Node == n.cfg.NodeID || slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == in.Node }) {
			continue
		}
		servers = append(servers, raft.Server{ID: raft.ServerID(in.Node), Address: raft.ServerAddress(in.Address), Suffrage: raft.Voter})
	}
	if len(servers) < n.cfg.Expect {
		n.logger.Info("waiting for peers before the first bootstrap", "seen", len(servers), "expect", n.cfg.Expect)
		return false
	}
	slices.SortFunc(servers, func(a, b raft.Server) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	if string(servers[0].ID) != n.cfg.NodeID {
		return false // the lowest id bootstraps; it will contact us
	}
	if len(servers) > 5 {
		for i := 5; i < len(servers); i++ {
			servers[i].Suffrage = raft.Nonvoter
		}
	}
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		n.logger.Warn("bootstrap", "error", err)
		return false
	}
	n.logger.Info("bootstrapped cluster", "servers", len(servers))
	return true
}

// probePeers asks every static peer for its info, concurrently.
func (n *Node) probePeers() []peerInfo {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var infos []peerInfo
	for _, addr := range n.cfg.Peers {
		if addr == n.tr.AdvertiseAddr() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			in, err := n.info(addr, 2*time.Second)
			if err != nil {
				n.logger.Debug("probe peer", "address", addr, "error", err)
				return
			}
			if in.Station != n.cfg.Station {
				return
			}
			mu.Lock()
			infos = append(infos, *in)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return infos
}
