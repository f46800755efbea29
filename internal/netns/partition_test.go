//go:build linux

package netns

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestPartition checks that Cut and Partition stop unicast between the
// pairs they cut, in both directions, leave every other pair and a
// bridge host alone, and that Heal restores everything; and that
// multicast filters (SetMulticast) and partition filters do not undo
// each other.
func TestPartition(t *testing.T) {
	t.Parallel()
	n := New(t, "10.236.0.0/24")
	a, b, c := n.AddHost("a"), n.AddHost("b"), n.AddHost("c")
	for _, h := range []*Host{a, b, c} {
		startHelper(t, h, "udpecho", h.IP()+":7000")
	}
	reach := func(from, to *Host, want bool) {
		t.Helper()
		wait := 5 * time.Second
		if !want {
			wait = time.Second
		}
		if got := udpExchange(t, from, to.IP()+":7000", wait); got != want {
			t.Fatalf("%s -> %s: reached %v, want %v (cut from %v)", from.Name(), to.Name(), got, want, from.CutFrom())
		}
	}
	reach(a, b, true) // baseline
	reach(a, c, true)

	// {a} | {b, c}, and c's multicast off on the same qdisc.
	if err := c.SetMulticast(false); err != nil {
		t.Fatal(err)
	}
	if err := n.Partition([]*Host{a}, []*Host{b, c}); err != nil {
		t.Fatal(err)
	}
	if got := a.CutFrom(); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("a is cut from %v, want [b c]", got)
	}
	reach(a, b, false)
	reach(b, a, false)
	reach(c, a, false)
	reach(b, c, true)
	// SetMulticast(true) must not remove the partition filter.
	if err := c.SetMulticast(true); err != nil {
		t.Fatal(err)
	}
	reach(c, a, false)

	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	reach(a, b, true)
	reach(c, a, true)

	// A bridge: {a, b} and {b, c}: a and c are cut, b reaches both.
	if err := n.Partition([]*Host{a, b}, []*Host{b, c}); err != nil {
		t.Fatal(err)
	}
	reach(a, c, false)
	reach(c, a, false)
	reach(a, b, true)
	reach(b, c, true)
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	reach(a, c, true)
	if got := a.CutFrom(); len(got) != 0 {
		t.Fatalf("after Heal a is cut from %v", got)
	}
}

func TestDropToBPF(t *testing.T) {
	got := dropToBPF([]netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")})
	want := "7,40 0 0 12,21 0 3 2048,32 0 0 30,21 2 0 167772162,21 1 0 167772163,6 0 0 0,6 0 0 2"
	if got != want {
		t.Fatalf("dropToBPF:\n got %s\nwant %s", got, want)
	}
}
