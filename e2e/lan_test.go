package e2e

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stationsync/stationsync/internal/harness"
	"github.com/stationsync/stationsync/internal/netns"
)

// These tests run real `stationsync run` processes in Linux network
// namespaces joined by a bridge: one simulated PC each, on a LAN of their
// own (internal/netns). They need root; CI is root and runs them.

// lanStation makes a station of n PCs on net that find each other by
// mDNS only (no peers), expecting expect PCs for the first bootstrap.
func lanStation(t *testing.T, net *netns.Network, id string, n, expect int, opts ...harness.Option) *harness.Station {
	opts = append([]harness.Option{
		harness.WithNetwork(net),
		harness.WithConfig(func(i int, cfg map[string]any) {
			cfg["mdns"] = true
			cfg["expect"] = expect
			cfg["bootstrap_window"] = "10s"
		}),
	}, opts...)
	return harness.NewStation(t, id, n, opts...)
}

// members returns the leader's view: id -> suffrage.
func members(t *testing.T, st *harness.Station, leader int) map[string]string {
	t.Helper()
	s, err := st.Node(leader).Status()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range s.Members {
		out[m.ID] = m.Suffrage
	}
	return out
}

// waitMembers polls the leader until its members are want.
func waitMembers(t *testing.T, st *harness.Station, want map[string]string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got map[string]string
	for time.Now().Before(deadline) {
		leader := st.WaitLeader(leaderTimeout)
		got = members(t, st, leader)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("members %v, want %v", got, want)
}

// bootstraps counts "bootstrapped cluster" in the nodes' logs.
func bootstraps(t *testing.T, st *harness.Station) int {
	t.Helper()
	n := 0
	for _, node := range st.Nodes() {
		b, err := os.ReadFile(node.LogPath)
		if os.IsNotExist(err) {
			continue // not started yet
		}
		if err != nil {
			t.Fatal(err)
		}
		n += strings.Count(string(b), `msg="bootstrapped cluster"`)
	}
	return n
}

func TestLANFormsAndGrowsByMDNS(t *testing.T) {
	net := netns.New(t, "10.231.1.0/24")
	st := lanStation(t, net, "XC-LAN-01", 6, 3)
	start := time.Now()
	for i := 0; i < 3; i++ {
		st.Start(i)
	}
	waitMembers(t, st, map[string]string{"pc-1": "voter", "pc-2": "voter", "pc-3": "voter"}, 15*time.Second)
	t.Logf("three PCs formed a cluster in %v", time.Since(start).Round(time.Millisecond))
	if n := bootstraps(t, st); n != 1 {
		t.Fatalf("%d bootstraps, want exactly 1", n)
	}
	// The fourth and fifth join as voters, the sixth as a non-voter.
	st.Start(3)
	st.Start(4)
	waitMembers(t, st, map[string]string{"pc-1": "voter", "pc-2": "voter", "pc-3": "voter", "pc-4": "voter", "pc-5": "voter"}, 20*time.Second)
	st.Start(5)
	waitMembers(t, st, map[string]string{"pc-1": "voter", "pc-2": "voter", "pc-3": "voter", "pc-4": "voter", "pc-5": "voter", "pc-6": "nonvoter"}, 20*time.Second)
	if n := bootstraps(t, st); n != 1 {
		t.Fatalf("%d bootstraps after nodes joined, want 1", n)
	}
	// A write through the non-voter reaches everyone.
	if err := st.Node(5).PutItem(itemCode, "企业开办"); err != nil {
		t.Fatal(err)
	}
	st.WaitSync(syncTimeout)
}

func TestLANReaddressedHostRejoins(t *testing.T) {
	net := netns.New(t, "10.231.2.0/24")
	st := lanStation(t, net, "XC-LAN-02", 3, 3)
	st.StartAll()
	want := map[string]string{"pc-1": "voter", "pc-2": "voter", "pc-3": "voter"}
	waitMembers(t, st, want, 15*time.Second)
	// pc-3's PC gets another address (DHCP) and its service restarts.
	st.Stop(2)
	newIP := "10.231.2.200"
	if err := st.Host(2).Readdress(newIP); err != nil {
		t.Fatal(err)
	}
	st.Node(2).Config["listen"] = newIP + ":4610"
	st.WriteConfig(2)
	st.Start(2)
	deadline := time.Now().Add(30 * time.Second)
	for {
		leader := st.WaitLeader(leaderTimeout)
		s, err := st.Node(leader).Status()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range s.Members {
			if m.ID == "pc-3" && m.Address == newIP+":4610" && m.Reachable && len(s.Members) == 3 {
				if err := st.Node(2).PutItem(itemCode, "企业开办"); err != nil {
					t.Fatalf("write through the moved node: %v", err)
				}
				st.WaitSync(syncTimeout)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pc-3 not back at %s: %+v", newIP, s.Members)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestLANStrangersAreNeverMembers(t *testing.T) {
	net := netns.New(t, "10.231.3.0/24")
	st := lanStation(t, net, "XC-LAN-03", 3, 3)
	st.StartAll()
	want := map[string]string{"pc-1": "voter", "pc-2": "voter", "pc-3": "voter"}
	waitMembers(t, st, want, 15*time.Second)
	// A PC that claims this station with a certificate of another CA, and
	// a PC of another station, both announcing themselves by mDNS.
	// (Its node id pc-4 is new to the station: a copy of a member's id
	// would be taken for that member's own record.)
	forged := lanStation(t, net, "XC-LAN-03", 4, 1, harness.WithHostPrefix("x"))
	other := lanStation(t, net, "XC-LAN-99", 1, 1, harness.WithHostPrefix("y"))
	forged.Start(3)
	other.StartAll()
	// They must be seen (so the test tests something) and never admitted.
	deadline := time.Now().Add(12 * time.Second)
	seenAddr := map[string]bool{}
	var lastDiscovered []harness.Peer
	for time.Now().Before(deadline) {
		leader := st.WaitLeader(leaderTimeout)
		if got := members(t, st, leader); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("members changed to %v", got)
		}
		s, err := st.Node(leader).Status()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range s.Discovered {
			seenAddr[p.Address] = true
		}
		lastDiscovered = s.Discovered
		time.Sleep(300 * time.Millisecond)
	}
	if !seenAddr[forged.Host(3).IP()+":4610"] || !seenAddr[other.Host(0).IP()+":4610"] {
		t.Fatalf("the strangers' announcements were never discovered (last view %+v): the test proved nothing", lastDiscovered)
	}
}

func TestLANWithoutMulticastUsesStaticPeers(t *testing.T) {
	net := netns.New(t, "10.231.4.0/24")
	for i := 0; i < 3; i++ {
		h := net.AddHost(fmt.Sprintf("h%d", i))
		if err := h.SetMulticast(false); err != nil {
			t.Fatal(err)
		}
	}
	st := lanStation(t, net, "XC-LAN-04", 3, 3, harness.WithStaticPeers())
	st.StartAll()
	waitMembers(t, st, map[string]string{"pc-1": "voter", "pc-2": "voter", "pc-3": "voter"}, 20*time.Second)
	leader := st.WaitLeader(leaderTimeout)
	s, _ := st.Node(leader).Status()
	for _, p := range s.Discovered {
		if p.Source == "mdns" {
			t.Fatalf("an mDNS announcement got through with multicast dropped: %+v", p)
		}
	}
}

func TestLANTwoNodeStation(t *testing.T) {
	net := netns.New(t, "10.231.5.0/24")
	st := lanStation(t, net, "XC-LAN-05", 2, 2)
	st.StartAll()
	waitMembers(t, st, map[string]string{"pc-1": "voter", "pc-2": "nonvoter"}, 20*time.Second)
	// The non-voter goes away: the voter alone keeps committing.
	st.Kill(1)
	if err := st.Node(0).PutItem(itemCode, "企业开办"); err != nil {
		t.Fatalf("the voter alone cannot commit: %v", err)
	}
	id, code, err := st.Node(0).CreateCase(harness.CaseRequest{ItemCode: itemCode, Channel: "window", Actor: "clerk", Applicant: harness.Applicant{Kind: "person", Name: "王五"}})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("case with the non-voter gone: %d %v", code, err)
	}
	// It comes back and catches up.
	st.Start(1)
	st.WaitSync(syncTimeout)
	if _, err := st.Node(1).GetCase(id); err != nil {
		t.Fatal(err)
	}
}
