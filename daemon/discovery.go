package daemon

import (
	"net"
	"strconv"
	"time"

	"github.com/stationsync/stationsync/discovery"
	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/replication"
)

// discoveredPeer is a peer as the status shows it: where it was seen and
// how. An mDNS record is a hint; membership is decided after the peer
// proved its identity with its certificate.
type discoveredPeer struct {
	Node     string    `json:"node,omitempty"`
	Station  string    `json:"station,omitempty"`
	Address  string    `json:"address"`
	Source   string    `json:"source"` // mdns | static
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// openDiscovery starts mDNS advertising and browsing (when mdns is on).
func (d *Daemon) openDiscovery() error {
	if d.isCenter() {
		return nil // center nodes list each other in peers:
	}
	_, portStr, _ := net.SplitHostPort(d.tr.Addr().String())
	port, _ := strconv.Atoi(portStr)
	d.disc = discovery.New(discovery.Config{
		Station:     d.cfg.StationID,
		Node:        d.cfg.NodeID,
		Port:        port,
		Fingerprint: pki.Fingerprint(d.tls.Leaf().Raw),
		MDNS:        d.cfg.MDNS,
		Interfaces:  d.cfg.MDNSInterfaces,
		Static:      d.cfg.Peers,
		Logger:      d.logger,
	})
	return d.disc.Open()
}

// discoveredHints are the mDNS announcements, for the replication node
// to verify and probe (static peers it has already).
func (d *Daemon) discoveredHints() []replication.Hint {
	if d.disc == nil {
		return nil
	}
	var out []replication.Hint
	for _, p := range d.disc.Peers() {
		if p.Source == discovery.SourceMDNS {
			out = append(out, replication.Hint{Addr: p.Addr, Station: p.Station, Node: p.Node, Fingerprint: p.Fingerprint})
		}
	}
	return out
}

func (d *Daemon) discovered() []discoveredPeer {
	out := []discoveredPeer{}
	if d.disc == nil {
		return out
	}
	for _, p := range d.disc.Peers() {
		out = append(out, discoveredPeer{Node: p.Node, Station: p.Station, Address: p.Addr, Source: string(p.Source), LastSeen: p.LastSeen})
	}
	return out
}
