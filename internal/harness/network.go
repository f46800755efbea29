package harness

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stationsync/stationsync/internal/netns"
)

// Ports of a node that runs in a network namespace ([WithNetwork]). Every
// node has its own namespace, so all use the same ones, like real PCs.
const (
	NetworkQUICPort = 4610 // QUIC (UDP) on the host's address
	NetworkAPIPort  = 4680 // HTTP API on 127.0.0.1 inside the namespace
)

// WithNetwork runs the station's nodes in network namespaces of net, one
// simulated PC each: node i runs in net's host named "h<i>" (h0, h1 ...),
// which NewStation adds with AddHost unless the test added it already
// (to pick the order of addresses, or to know them before NewStation).
//
// Each node's config then has listen <host IP>:4610 (NetworkQUICPort),
// advertise "" (the node detects its address), api 127.0.0.1:4680
// (NetworkAPIPort, the namespace's own loopback), no peers unless
// [WithStaticPeers] is given, and mdns false; WithConfig may change any of
// them (it runs after). Node.QUIC, APIAddr and URL say the same; QUIC is
// the address the host had at NewStation time.
//
// The test process stays in the root namespace, which has no address in
// the network and no route into it. The Node HTTP helpers (Do, Get,
// Status ...), and so Start, WaitLeader and WaitSync, reach the API
// anyway: each Node's http.Client dials with [netns.Host.DialContext],
// which opens the TCP connection from an OS thread that has entered the
// node's namespace with setns(2); the connection then works from any
// goroutine. Node.URL ("http://127.0.0.1:4680") is therefore only
// meaningful with [Node.HTTPClient]; `stationsync` CLI commands that talk
// to a node must run inside its host (Station.Host(i).Command).
func WithNetwork(net *netns.Network) Option {
	return func(o *options) { o.network = net }
}

// WithStaticPeers lists every node's QUIC address as a static peer in
// every node's config. That is the default without WithNetwork; with it,
// nodes otherwise have no peers (e.g. to find each other by mDNS).
func WithStaticPeers() Option {
	return func(o *options) { o.peers = true }
}

// Host returns the namespace node i runs in. It fails the test if the
// station was made without WithNetwork.
func (s *Station) Host(i int) *netns.Host {
	s.t.Helper()
	n := s.Node(i)
	if n.host == nil {
		s.t.Fatalf("harness: station %s was not made WithNetwork: %s has no host", s.ID, n.ID)
	}
	return n.host
}

// HTTPClient is the client the node's helpers use. With WithNetwork it
// dials inside the node's namespace; use it for requests to Node.URL that
// the helpers do not cover.
func (n *Node) HTTPClient() *http.Client { return n.client }

// WithHostPrefix names the station's hosts <prefix>0, <prefix>1 ... instead
// of h0, h1 ..., so two stations can share one network.
func WithHostPrefix(prefix string) Option {
	return func(o *options) { o.hostPrefix = prefix }
}

// networkHosts returns hosts <prefix>0 ... of net, adding those missing.
func networkHosts(t testing.TB, net *netns.Network, prefix string, n int) []*netns.Host {
	t.Helper()
	if prefix == "" {
		prefix = "h"
	}
	hosts := make([]*netns.Host, n)
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		if hosts[i] = net.Host(name); hosts[i] == nil {
			hosts[i] = net.AddHost(name)
		}
	}
	return hosts
}

// namespaceClient is an HTTP client whose connections are dialed inside
// h's namespace, so "127.0.0.1:port" is h's loopback.
func namespaceClient(h *netns.Host) *http.Client {
	tr := &http.Transport{
		Proxy:               nil, // never a proxy: the address is inside the namespace
		DialContext:         h.DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     HTTPTimeout,
	}
	return &http.Client{Timeout: HTTPTimeout, Transport: tr}
}

// closeIdle closes the idle keep-alive connections of the nodes' own
// transports (t.Cleanup); the shared default transport is left alone.
func (s *Station) closeIdle() {
	for _, n := range s.nodes {
		if n.host != nil {
			n.client.CloseIdleConnections()
		}
	}
}
