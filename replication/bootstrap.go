package replication

import (
	"cmp"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// runFormation makes this node part of a cluster, unless it already is.
//
// With no raft state yet, it probes its peers (static and discovered)
// every second and follows decideFormation: join an existing cluster
// through its leader, or, once Expect nodes (itself included) answer, let
// the one with the lowest node id bootstrap with all of them while the
// others wait to be contacted. After BootstrapWindow a majority of Expect
// is enough, so a station whose PC is off on the first day still starts,
// while a PC cut off alone never bootstraps a cluster of its own (unless
// Expect is 1). The same config serves a first start, a restart and a node
// added later.
func (n *Node) runFormation() {
	defer n.wg.Done()
	start := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if n.inCluster() {
			return
		}
		if done := n.formOnce(time.Since(start) >= n.cfg.BootstrapWindow); done {
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
	f := n.r().GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

type formationAction int

const (
	formationWait formationAction = iota
	formationJoin
	formationBootstrap
)

type formationDecision struct {
	Action  formationAction
	Via     string        // join: the leader's address
	Servers []raft.Server // bootstrap: the first configuration
}

// decideFormation is the formation rule, pure so it can be tested with any
// order of peers: the same set of answers gives the same decision.
func decideFormation(self peerInfo, infos []peerInfo, expect int, windowOver bool) formationDecision {
	slices.SortFunc(infos, func(a, b peerInfo) int { return cmp.Compare(a.Node, b.Node) })
	for _, in := range infos {
		if in.InCluster && in.LeaderAddress != "" {
			return formationDecision{Action: formationJoin, Via: in.LeaderAddress}
		}
	}
	for _, in := range infos {
		if in.InCluster {
			return formationDecision{} // a cluster exists but has no leader right now
		}
	}
	servers := []raft.Server{{ID: raft.ServerID(self.Node), Address: raft.ServerAddress(self.Address), Suffrage: raft.Voter}}
	for _, in := range infos {
		if in.Station != self.Station || in.Node == self.Node || slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == in.Node }) {
			continue
		}
		servers = append(servers, raft.Server{ID: raft.ServerID(in.Node), Address: raft.ServerAddress(in.Address), Suffrage: raft.Voter})
	}
	need := max(expect, 1)
	if windowOver {
		need = need/2 + 1
	}
	if len(servers) < need {
		return formationDecision{}
	}
	slices.SortFunc(servers, func(a, b raft.Server) int { return cmp.Compare(a.ID, b.ID) })
	if string(servers[0].ID) != self.Node {
		return formationDecision{} // the lowest id bootstraps; it will contact us
	}
	for i := range servers {
		if i >= maxVoters {
			servers[i].Suffrage = raft.Nonvoter
		}
	}
	if len(servers) == 2 {
		servers[1].Suffrage = raft.Nonvoter // never exactly two voters
	}
	return formationDecision{Action: formationBootstrap, Servers: servers}
}

// formOnce does one round of probing; it reports whether formation is
// settled (bootstrapped or joined).
func (n *Node) formOnce(windowOver bool) bool {
	infos := n.probePeers()
	self := peerInfo{Node: n.cfg.NodeID, Station: n.cfg.Station, Address: n.tr.AdvertiseAddr()}
	d := decideFormation(self, infos, n.cfg.Expect, windowOver)
	switch d.Action {
	case formationJoin:
		resp, err := n.roundTrip(d.Via, rpcRequest{Method: rpcJoin, Address: n.tr.AdvertiseAddr()}, 5*time.Second)
		if err != nil || resp.Code != "" {
			n.logger.Info("join cluster: not yet", "via", d.Via, "error", err, "answer", resp.Error)
			return false
		}
		n.logger.Info("joined cluster", "via", d.Via)
		return true
	case formationBootstrap:
		rr := n.run()
		if err := rr.wait(rr.BootstrapCluster(raft.Configuration{Servers: d.Servers})); err != nil {
			n.logger.Warn("bootstrap", "error", err)
			return false
		}
		n.logger.Info("bootstrapped cluster", "servers", len(d.Servers), "expect", n.cfg.Expect, "window_over", windowOver)
		n.bootstraps.Add(1)
		return true
	default:
		n.logger.Info("waiting for peers before the first bootstrap", "seen", len(infos)+1, "expect", n.cfg.Expect)
		return false
	}
}

// probePeers asks every known peer address for its info. The address a
// peer answered at is the one used for it.
func (n *Node) probePeers() []peerInfo {
	addrs, hints := n.peerAddrs()
	return n.verified(n.probe(addrs, 2*time.Second), hints, false)
}
