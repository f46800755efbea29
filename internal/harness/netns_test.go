package harness

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stationsync/stationsync/internal/netns"
)

// TestNetworkStation runs a 3-node station in 3 namespaces with static
// peers (the hosts' addresses): it must form a cluster, and the harness
// must reach each node's API through the namespace dialer.
func TestNetworkStation(t *testing.T) {
	t.Parallel()
	nw := netns.New(t, "10.231.0.0/24")
	st := NewStation(t, "XC-NS-01", 3, WithNetwork(nw), WithStaticPeers())

	var peers []string
	for i := range st.Len() {
		h := st.Host(i)
		if h.Name() != "h"+strconv.Itoa(i) {
			t.Fatalf("node %d runs in host %q", i, h.Name())
		}
		peers = append(peers, net.JoinHostPort(h.IP(), "4610"))
	}
	for i, n := range st.Nodes() {
		if n.QUIC != peers[i] || n.APIAddr != "127.0.0.1:4680" {
			t.Fatalf("%s: QUIC %s API %s", n.ID, n.QUIC, n.APIAddr)
		}
		cfg, err := os.ReadFile(n.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range append([]string{"listen: " + peers[i], "api: 127.0.0.1:4680", `advertise: ""`}, peers...) {
			if !strings.Contains(string(cfg), want) {
				t.Errorf("%s config lacks %q:\n%s", n.ID, want, cfg)
			}
		}
	}

	st.StartAll()
	li := st.WaitLeader(30 * time.Second)
	leader := st.Node(li)
	for _, n := range st.Nodes() {
		s, err := n.Status()
		if err != nil {
			t.Fatal(err)
		}
		if s.Node != n.ID || s.Raft.Leader != leader.ID || s.Raft.LeaderAddress != leader.QUIC {
			t.Fatalf("%s status: node %q leader %q at %q, want leader %s at %s", n.ID, s.Node, s.Raft.Leader, s.Raft.LeaderAddress, leader.ID, leader.QUIC)
		}
	}
	// A write on the leader reaches every node.
	if err := leader.PutItem("XC-L-0001", "企业开办"); err != nil {
		t.Fatal(err)
	}
	st.WaitSync(20 * time.Second)
}

// TestNetworkHostsChosenByTest: hosts the test added before NewStation are
// the ones the nodes use, and without WithStaticPeers no peers are set.
func TestNetworkHostsChosenByTest(t *testing.T) {
	t.Parallel()
	nw := netns.New(t, "10.231.0.0/24")
	h1 := nw.AddHost("x") // takes .1
	h0 := nw.AddHost("h0")
	st := NewStation(t, "XC-NS-02", 2, WithNetwork(nw))
	if st.Host(0) != h0 || h0.IP() != "10.231.0.2" || st.Host(1).IP() != "10.231.0.3" || h1.IP() != "10.231.0.1" {
		t.Fatalf("hosts %s@%s %s@%s", st.Host(0).Name(), st.Host(0).IP(), st.Host(1).Name(), st.Host(1).IP())
	}
	cfg, err := os.ReadFile(st.Node(0).ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfg), "peers") {
		t.Fatalf("peers set without WithStaticPeers:\n%s", cfg)
	}
}
