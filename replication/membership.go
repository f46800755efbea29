package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// maxVoters is the number of voters a station keeps; more nodes (kiosks)
// join as non-voters.
const maxVoters = 5

// membershipChange is what the leader does to admit a node.
type membershipChange struct {
	Suffrage raft.ServerSuffrage // of the new node
	Promote  []raft.ServerID     // non-voters to make voters first
}

// planAdmission decides how a new node joins a configuration:
//
//   - a voter while there are fewer than five voters;
//   - but never as the second voter of a two-node station: a cluster of
//     exactly two voters stops when either PC stops, so the second node is
//     a non-voter until a third arrives, and then both become voters;
//   - a non-voter once there are five voters.
func planAdmission(servers []raft.Server, id raft.ServerID) membershipChange {
	var voters int
	var nonvoters []raft.ServerID
	for _, s := range servers {
		if s.ID == id {
			continue
		}
		if s.Suffrage == raft.Voter {
			voters++
		} else {
			nonvoters = append(nonvoters, s.ID)
		}
	}
	switch {
	case voters >= maxVoters:
		return membershipChange{Suffrage: raft.Nonvoter}
	case voters == 1 && len(nonvoters) == 0:
		return membershipChange{Suffrage: raft.Nonvoter} // two nodes: one voter
	case voters == 1:
		// The third node: the waiting non-voter and the new node both vote.
		return membershipChange{Suffrage: raft.Voter, Promote: nonvoters[:1]}
	default:
		return membershipChange{Suffrage: raft.Voter}
	}
}

// RemoveMember removes a node from the cluster (an admin's decision: the
// PC is gone for good). It must run on the leader; it refuses to remove the
// leader itself (transfer leadership first by stopping that PC) and, unless
// force, a voter whose removal leaves fewer reachable voters than a quorum.
func (n *Node) RemoveMember(ctx context.Context, id string, force bool) error {
	if n.r().State() != raft.Leader {
		addr, _ := n.r().LeaderWithID()
		if addr == "" {
			return ErrNoLeader
		}
		resp, err := n.roundTrip(string(addr), rpcRequest{Method: rpcRemove, Node: id, Force: force}, n.cfg.ApplyTimeout)
		switch {
		case resp.Code == "not_found":
			return fmt.Errorf("%w %q", ErrUnknownMember, id)
		case resp.Code == "not_leader":
			return ErrNoLeader // leadership moved meanwhile; the caller retries
		case err != nil:
			return err
		}
		return nil
	}
	return n.removeMember(id, force)
}

// ErrUnknownMember: no member has that id.
var ErrUnknownMember = errors.New("no such member")

func (n *Node) removeMember(id string, force bool) error {
	f := n.r().GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	var target *raft.Server
	servers := f.Configuration().Servers
	for i := range servers {
		if string(servers[i].ID) == id {
			target = &servers[i]
		}
	}
	if target == nil {
		return fmt.Errorf("%w %q", ErrUnknownMember, id)
	}
	if id == n.cfg.NodeID {
		return errors.New("a leader cannot remove itself: stop that PC (another node takes over) and remove it from there")
	}
	if target.Suffrage == raft.Voter && !force && !n.quorumSafeWithout(servers, target.ID) {
		return fmt.Errorf("removing voter %s would leave fewer reachable voters than a quorum", id)
	}
	rr := n.run()
	if err := rr.wait(rr.RemoveServer(target.ID, 0, n.cfg.ApplyTimeout)); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	n.logger.Info("member removed", "member", id)
	return nil
}

// quorumSafeWithout reports whether the voters left after removing id can
// still form a quorum with the ones reachable now.
func (n *Node) quorumSafeWithout(servers []raft.Server, id raft.ServerID) bool {
	voters, reachable := 0, 0
	n.reachMu.Lock()
	defer n.reachMu.Unlock()
	for _, s := range servers {
		if s.ID == id || s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if string(s.ID) == n.cfg.NodeID || time.Since(n.reachable[string(s.ID)]) < reachableFor {
			reachable++
		}
	}
	return voters > 0 && reachable >= voters/2+1
}

// reachableFor: a member answered a probe this recently.
const reachableFor = 6 * time.Second

// admitDiscovered (leader only) probes every discovered address that is
// not a member's address, admits this station's nodes and re-adds members
// seen at a new address. The identity comes from the peer's certificate (the QUIC
// handshake admits only this station's nodes); the mDNS hint is not trusted.
func (n *Node) admitDiscovered() {
	f := n.r().GetConfiguration()
	if f.Error() != nil {
		return
	}
	known := map[string]string{} // address -> id
	for _, s := range f.Configuration().Servers {
		known[string(s.Address)] = string(s.ID)
	}
	all, hints := n.peerAddrs()
	var addrs []string
	for _, addr := range all {
		if _, ok := known[addr]; !ok {
			addrs = append(addrs, addr)
		}
	}
	found := n.verified(n.probe(addrs, 2*time.Second), hints, true)
	for _, in := range found {
		if err := n.addMember(in.Node, in.Address); err != nil {
			n.logger.Warn("admit discovered node", "node", in.Node, "address", in.Address, "error", err)
		}
	}
}

// noteUnverified logs, once per address, a discovered peer that could not
// prove it is a node of this station (another CA, another station, or
// nothing listening): it changes nothing.
func (n *Node) noteUnverified(addr string, err error) {
	n.noteOnce("unverified "+addr,
		"discovered peer not admitted: it did not prove to be a node of this station (logged once)",
		"address", addr, "error", err)
}

// reapUnreachable removes members unreachable for longer than the
// configured time, one at a time, never breaking quorum. Off by default.
func (n *Node) reapUnreachable() {
	after := n.cfg.RemoveUnreachableAfter
	if after <= 0 {
		return
	}
	f := n.r().GetConfiguration()
	if f.Error() != nil {
		return
	}
	servers := f.Configuration().Servers
	for _, s := range servers {
		id := string(s.ID)
		if id == n.cfg.NodeID {
			continue
		}
		n.reachMu.Lock()
		last, ok := n.reachable[id]
		if !ok {
			// Never reached since this leader took over: count from now.
			n.reachable[id] = time.Now().Add(-reachableFor)
			last = n.reachable[id]
		}
		n.reachMu.Unlock()
		if time.Since(last) < after {
			continue
		}
		if s.Suffrage == raft.Voter && !n.quorumSafeWithout(servers, s.ID) {
			continue
		}
		n.logger.Warn("removing a member unreachable for too long", "member", id, "unreachable_for", time.Since(last).Round(time.Second))
		if err := n.removeMember(id, false); err != nil {
			n.logger.Warn("remove unreachable member", "member", id, "error", err)
		}
		return
	}
}

// Hint is a peer as discovery (mDNS) announced it. It is only a hint:
// membership follows the identity the peer proves with its certificate.
type Hint struct {
	Addr    string // host:port of its QUIC listener
	Station string // TXT station
	Node    string // TXT node
	// Fingerprint is the TXT fp (pki.Fingerprint of the certificate the
	// node says it has); "" if it announced none.
	Fingerprint string
}

// peerAddrs is every address to probe but this node's own: static peers
// and what discovery announced for this station, with the announcements by
// address. Announcements of other stations are left out and logged once.
func (n *Node) peerAddrs() ([]string, map[string][]Hint) {
	self := n.tr.AdvertiseAddr()
	seen := map[string]bool{}
	var out []string
	add := func(a string) {
		if a != "" && a != self && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, a := range n.cfg.Peers {
		add(a)
	}
	hints := map[string][]Hint{}
	if n.cfg.Discover != nil {
		for _, h := range n.cfg.Discover() {
			if h.Station != n.cfg.Station {
				n.noteOnce("station "+h.Station+" "+h.Node+" "+h.Addr,
					"mDNS announcement of another station ignored (logged once)",
					"station", h.Station, "node", h.Node, "address", h.Addr)
				continue
			}
			hints[h.Addr] = append(hints[h.Addr], h)
			add(h.Addr)
		}
	}
	return out, hints
}

// verified keeps the probe answers that proved to come from another node
// of this station and agree with what was announced for their address.
// The identity comes from the certificate (the QUIC handshake admits only
// this station's nodes); an announcement whose node or fingerprint differs
// from it is false and logged once, and an address only false
// announcements point at is not used. Static peers need no announcement.
// Each kept answer carries the address it was reached at, not the one the
// peer believes it has. Failed probes are logged once per address when
// logFailures is set.
func (n *Node) verified(results []probeResult, hints map[string][]Hint, logFailures bool) []peerInfo {
	static := map[string]bool{}
	for _, a := range n.cfg.Peers {
		static[a] = true
	}
	var out []peerInfo
	for _, r := range results {
		if r.err != nil {
			if logFailures {
				n.noteUnverified(r.addr, r.err)
			} else {
				n.logger.Debug("probe peer", "address", r.addr, "error", r.err)
			}
			continue
		}
		if r.info.Station != n.cfg.Station || r.info.Node == n.cfg.NodeID {
			continue
		}
		matched := static[r.addr]
		for _, h := range hints[r.addr] {
			if (h.Fingerprint == "" || h.Fingerprint == r.info.fp) && (h.Node == "" || h.Node == r.info.Node) {
				matched = true
				continue
			}
			n.noteOnce("mismatch "+h.Node+" "+h.Fingerprint+" "+r.addr,
				"mDNS announcement does not match the certificate presented at its address: ignored (logged once)",
				"address", r.addr, "announced_node", h.Node, "announced_fp", h.Fingerprint,
				"certificate_node", r.info.Node, "certificate_fp", r.info.fp)
		}
		if !matched {
			continue
		}
		in := *r.info
		in.Address = r.addr
		out = append(out, in)
	}
	return out
}

// noteOnce logs msg at warning level the first time key is seen.
func (n *Node) noteOnce(key, msg string, args ...any) {
	n.reachMu.Lock()
	first := !n.noted[key]
	if len(n.noted) > 1024 {
		n.noted = map[string]bool{}
	}
	n.noted[key] = true
	n.reachMu.Unlock()
	if first {
		n.logger.Warn(msg, args...)
	}
}
