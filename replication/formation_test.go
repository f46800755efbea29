package replication

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"
)

func info(node string, inCluster bool, leader string) peerInfo {
	return peerInfo{Node: node, Station: "S", Address: node + ":4610", InCluster: inCluster, LeaderAddress: leader}
}

func TestDecideFormation(t *testing.T) {
	cases := []struct {
		name       string
		self       string
		peers      []peerInfo
		expect     int
		windowOver bool
		want       formationAction
		servers    int
	}{
		{"alone, expect 1", "a", nil, 1, false, formationBootstrap, 1},
		{"lowest with all", "a", []peerInfo{info("b", false, ""), info("c", false, "")}, 3, false, formationBootstrap, 3},
		{"not lowest", "b", []peerInfo{info("a", false, ""), info("c", false, "")}, 3, false, formationWait, 0},
		{"too few", "a", []peerInfo{info("b", false, "")}, 3, false, formationWait, 0},
		{"too few, window over, majority", "a", []peerInfo{info("b", false, "")}, 3, true, formationBootstrap, 2},
		{"alone, window over, no majority", "a", nil, 3, true, formationWait, 0},
		{"cluster exists", "a", []peerInfo{info("b", true, "b:4610"), info("c", false, "")}, 3, false, formationJoin, 0},
		{"cluster without leader", "a", []peerInfo{info("b", true, ""), info("c", false, "")}, 3, false, formationWait, 0},
		{"other station ignored", "a", []peerInfo{info("b", false, ""), {Node: "0", Station: "T", Address: "x:1"}}, 2, false, formationBootstrap, 2},
		{"seven nodes", "a", []peerInfo{info("b", false, ""), info("c", false, ""), info("d", false, ""), info("e", false, ""), info("f", false, ""), info("g", false, "")}, 7, false, formationBootstrap, 7},
	}
	for _, tc := range cases {
		self := peerInfo{Node: tc.self, Station: "S", Address: tc.self + ":4610"}
		d := decideFormation(self, append([]peerInfo(nil), tc.peers...), tc.expect, tc.windowOver)
		if d.Action != tc.want || len(d.Servers) != tc.servers {
			t.Errorf("%s: action %d with %d servers, want %d with %d", tc.name, d.Action, len(d.Servers), tc.want, tc.servers)
			continue
		}
		if d.Action != formationBootstrap {
			continue
		}
		voters := 0
		for _, s := range d.Servers {
			if s.Suffrage == raft.Voter {
				voters++
			}
		}
		if wantVoters := min(tc.servers, maxVoters); voters != wantVoters && !(tc.servers == 2 && voters == 1) {
			t.Errorf("%s: %d voters of %d", tc.name, voters, tc.servers)
		}
		if tc.servers == 2 && voters != 1 {
			t.Errorf("%s: two nodes bootstrapped with %d voters, want 1", tc.name, voters)
		}
	}
}

// Whatever order the answers arrive in, exactly one node of a station
// bootstraps, with the same configuration.
func TestExactlyOneBootstrapInAnyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	nodes := []string{"pc-3", "pc-1", "pc-5", "pc-2", "pc-4"}
	for round := 0; round < 200; round++ {
		var bootstraps []formationDecision
		for _, self := range nodes {
			var peers []peerInfo
			for _, other := range nodes {
				if other != self {
					peers = append(peers, info(other, false, ""))
				}
			}
			rng.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
			d := decideFormation(peerInfo{Node: self, Station: "S", Address: self + ":4610"}, peers, len(nodes), rng.IntN(2) == 0)
			if d.Action == formationBootstrap {
				if self != "pc-1" {
					t.Fatalf("%s bootstrapped; pc-1 has the lowest id", self)
				}
				bootstraps = append(bootstraps, d)
			}
		}
		if len(bootstraps) != 1 {
			t.Fatalf("round %d: %d bootstraps", round, len(bootstraps))
		}
		if got := fmt.Sprint(bootstraps[0].Servers); got != fmt.Sprint(sortedServers(nodes)) {
			t.Fatalf("configuration %s", got)
		}
	}
}

func sortedServers(nodes []string) []raft.Server {
	out := []raft.Server{}
	for _, n := range []string{"pc-1", "pc-2", "pc-3", "pc-4", "pc-5"} {
		out = append(out, raft.Server{ID: raft.ServerID(n), Address: raft.ServerAddress(n + ":4610"), Suffrage: raft.Voter})
	}
	return out
}

func TestPlanAdmission(t *testing.T) {
	v := func(id string) raft.Server { return raft.Server{ID: raft.ServerID(id), Suffrage: raft.Voter} }
	nv := func(id string) raft.Server { return raft.Server{ID: raft.ServerID(id), Suffrage: raft.Nonvoter} }
	cases := []struct {
		name    string
		servers []raft.Server
		want    raft.ServerSuffrage
		promote int
	}{
		{"second node", []raft.Server{v("a")}, raft.Nonvoter, 0},
		{"third node promotes the second", []raft.Server{v("a"), nv("b")}, raft.Voter, 1},
		{"fourth", []raft.Server{v("a"), v("b"), v("c")}, raft.Voter, 0},
		{"sixth", []raft.Server{v("a"), v("b"), v("c"), v("d"), v("e")}, raft.Nonvoter, 0},
		{"re-adding an existing id does not count it", []raft.Server{v("a"), v("x")}, raft.Nonvoter, 0},
	}
	for _, tc := range cases {
		got := planAdmission(tc.servers, "x")
		if got.Suffrage != tc.want || len(got.Promote) != tc.promote {
			t.Errorf("%s: %+v", tc.name, got)
		}
	}
}
