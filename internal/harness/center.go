package harness

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stationsync/stationsync/internal/netns"
)

// A district: stations and a district center that share one CA. Make the
// stations with NewStation, give all but the first the first one's CA with
// UseCA, and make the center with NewCenter from the same CA:
//
//	a := harness.NewStation(t, "XC-A", 3)
//	b := harness.NewStation(t, "XC-B", 1)
//	b.UseCA(a.CADir)
//	c := harness.NewCenter(t, a.CADir, 1, []harness.CenterStation{a.CenterRef(""), b.CenterRef("")})
//	for _, st := range []*harness.Station{a, b} {
//		for i, n := range st.Nodes() {
//			n.Config["center"] = c.CenterAddress()
//			st.WriteConfig(i)
//		}
//	}
//	c.StartAll(); a.StartAll(); b.StartAll()
//
// The center is a Station whose nodes (center-1 ...) run with role center:
// Start, Kill, Stop, WaitLeader and DumpLogs work as for a station.

// CenterStation is one entry of a center's `stations:` list.
type CenterStation struct {
	ID        string
	Name      string   // optional
	Addresses []string // QUIC host:port of the station's nodes
}

// CenterRef returns the station as a center lists it: its id, name (may
// be empty) and every node's QUIC address.
func (s *Station) CenterRef(name string) CenterStation {
	ref := CenterStation{ID: s.ID, Name: name}
	for _, n := range s.nodes {
		ref.Addresses = append(ref.Addresses, n.QUIC)
	}
	return ref
}

// UseCA issues every node of the station a new certificate from the CA in
// caDir (`stationsync ca issue`, overwriting ca.crt, node.crt and
// node.key) and makes caDir the station's CADir: stations and a center of
// one district must share one CA. Call it before the nodes first start.
func (s *Station) UseCA(caDir string) {
	s.t.Helper()
	for _, n := range s.nodes {
		if n.Running() {
			s.t.Fatalf("harness: UseCA: %s is running", n.ID)
		}
		MustRunCLI(s.t, "ca", "issue", "--ca", caDir, "--station", s.ID, "--node", n.ID, "--out", n.Dir)
	}
	s.CADir = caDir
}

// CenterAddress returns the QUIC address stations name in their `center:`
// key for a center made by NewCenter: its first node's.
func (s *Station) CenterAddress() string { return s.nodes[0].QUIC }

// NewCenter prepares (does not start) a district center of n nodes named
// center-1 ... center-n, each with a certificate of role center issued
// from the district CA in caDir, and a config with role center, expect n,
// every node as a static peer, no mDNS and the given stations. As with
// NewStation each node's QUIC listener and API share one free loopback
// port, WithConfig edits each config before it is written (e.g.
// pull_interval, or listen/api to fix the address in advance), and
// t.Cleanup kills the nodes and prints their logs if the test failed.
// With WithNetwork the center's nodes run in hosts c0, c1 ... (or
// WithHostPrefix's) of that network, with the addresses a station node
// gets there (QUIC on <host IP>:4610, API on the namespace's loopback).
func NewCenter(t testing.TB, caDir string, n int, stations []CenterStation, opts ...Option) *Station {
	t.Helper()
	if n < 1 {
		t.Fatalf("harness: NewCenter: n = %d", n)
	}
	o := options{host: "127.0.0.1"}
	for _, opt := range opts {
		opt(&o)
	}
	root := t.TempDir()
	s := &Station{t: t, ID: "center", Dir: root, CADir: caDir}
	t.Cleanup(func() {
		s.killAll()
		s.closeIdle()
		if t.Failed() {
			s.DumpLogs()
		}
	})
	var quic, api []string
	var hosts []*netns.Host
	if o.network != nil {
		if o.hostPrefix == "" {
			o.hostPrefix = "c"
		}
		hosts = networkHosts(t, o.network, o.hostPrefix, n)
		for _, h := range hosts {
			quic = append(quic, net.JoinHostPort(h.IP(), strconv.Itoa(NetworkQUICPort)))
			api = append(api, net.JoinHostPort("127.0.0.1", strconv.Itoa(NetworkAPIPort)))
		}
	} else {
		ports, err := FreePorts(o.host, n)
		if err != nil {
			t.Fatalf("harness: %v", err)
		}
		for i := range n {
			quic = append(quic, net.JoinHostPort(o.host, strconv.Itoa(ports[i])))
		}
		api = quic
	}
	var refs []any
	for _, st := range stations {
		ref := map[string]any{"id": st.ID, "addresses": append([]string(nil), st.Addresses...)}
		if st.Name != "" {
			ref["name"] = st.Name
		}
		refs = append(refs, ref)
	}
	for i := range n {
		nodeID := fmt.Sprintf("center-%d", i+1)
		dir := filepath.Join(root, nodeID)
		MustRunCLI(t, "ca", "issue", "--ca", caDir, "--role", "center", "--node", nodeID, "--out", dir)
		nd := &Node{
			Index:      i,
			ID:         nodeID,
			Dir:        dir,
			ConfigPath: filepath.Join(dir, "center.yaml"),
			DataDir:    filepath.Join(dir, "data"),
			LogPath:    filepath.Join(dir, "node.log"),
			QUIC:       quic[i],
			APIAddr:    api[i],
			URL:        "http://" + api[i],
			Config: map[string]any{
				"role":     "center",
				"node_id":  nodeID,
				"data_dir": "data",
				"listen":   quic[i],
				"api":      api[i],
				"expect":   n,
				"peers":    append([]string(nil), quic...),
				"mdns":     false,
				"tls":      map[string]any{"ca": "ca.crt", "cert": "node.crt", "key": "node.key"},
				"stations": refs,
			},
			client: &http.Client{Timeout: HTTPTimeout},
		}
		if hosts != nil {
			nd.host = hosts[i]
			nd.client = namespaceClient(hosts[i])
		}
		for _, fn := range o.config {
			fn(i, nd.Config)
		}
		// listen/api may have been set by WithConfig: keep the fields true.
		if l, ok := nd.Config["listen"].(string); ok && l != "" {
			nd.QUIC = l
		}
		if a, ok := nd.Config["api"].(string); ok && a != "" {
			nd.APIAddr, nd.URL = a, "http://"+a
		}
		s.nodes = append(s.nodes, nd)
		s.WriteConfig(i)
	}
	return s
}
