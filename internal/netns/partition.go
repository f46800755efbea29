package netns

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Partitions: the hub's bridge silently drops IPv4 packets between pairs
// of hosts that are cut, like a switch misconfigured into VLANs or a
// broken cable between two switches: nothing is refused (no ICMP), the
// packets just never arrive, in both directions. Each host's bridge port
// gets a cls_bpf filter on its clsact ingress (frames the host sends) that
// drops frames whose IPv4 destination is a host it is cut from. Multicast
// and ARP are left alone; SetMulticast's filters (pref 10) and these
// (pref 20) live side by side on the same qdisc.

// cutPref is the tc filter priority of the partition filter.
const cutPref = "20"

// Cut cuts a and b apart (both directions). Other pairs are unchanged.
func (n *Network) Cut(a, b *Host) error {
	n.cutMu.Lock()
	defer n.cutMu.Unlock()
	return n.setCut(a, b, true)
}

// Partition cuts every host listed in one group from every host listed
// only in other groups. A host in two groups (a bridge) reaches both; a
// host in no group is untouched. Partition adds to cuts made before; Heal
// undoes them all. Examples: Partition([]*Host{h0, h1}, []*Host{h2, h3,
// h4}) splits a station in halves; Partition([]*Host{h0, h1, h2},
// []*Host{h2, h3, h4}) leaves h2 as the only bridge.
func (n *Network) Partition(groups ...[]*Host) error {
	n.cutMu.Lock()
	defer n.cutMu.Unlock()
	for i, g := range groups {
		for _, a := range g {
			for j, o := range groups {
				if j == i {
					continue
				}
				for _, b := range o {
					if a == b || shareGroup(groups, a, b) {
						continue
					}
					if err := n.setCut(a, b, true); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func shareGroup(groups [][]*Host, a, b *Host) bool {
	for _, g := range groups {
		if slices.Contains(g, a) && slices.Contains(g, b) {
			return true
		}
	}
	return false
}

// Heal undoes every Cut and Partition.
func (n *Network) Heal() error {
	n.cutMu.Lock()
	defer n.cutMu.Unlock()
	var errs []string
	for _, h := range n.Hosts() {
		if len(h.cut) == 0 {
			continue
		}
		h.cut = nil
		if err := h.applyCut(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("netns: heal: %s", strings.Join(errs, "; "))
	}
	return nil
}

// CutFrom returns the names of the hosts h is cut from, sorted.
func (h *Host) CutFrom() []string {
	h.net.cutMu.Lock()
	defer h.net.cutMu.Unlock()
	var names []string
	for o := range h.cut {
		names = append(names, o.name)
	}
	slices.Sort(names)
	return names
}

func (n *Network) setCut(a, b *Host, cut bool) error {
	if a == b {
		return fmt.Errorf("netns: cut %s from itself", a.name)
	}
	for _, p := range [][2]*Host{{a, b}, {b, a}} {
		h, o := p[0], p[1]
		if h.cut == nil {
			h.cut = map[*Host]bool{}
		}
		changed := h.cut[o] != cut
		if cut {
			h.cut[o] = true
		} else {
			delete(h.cut, o)
		}
		if changed {
			if err := h.applyCut(); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyCut installs (or removes) h's partition filter for h.cut. Called
// with h.net.cutMu held.
func (h *Host) applyCut() error {
	hub := h.net.hub
	if err := run("tc", "-n", hub, "qdisc", "replace", "dev", h.port, "clsact"); err != nil {
		return fmt.Errorf("netns: cut %s: %w", h.name, err)
	}
	// Deleting a filter that is not there fails; that is fine.
	_ = run("tc", "-n", hub, "filter", "del", "dev", h.port, "ingress", "pref", cutPref)
	if len(h.cut) == 0 {
		return nil
	}
	var dsts []netip.Addr
	for o := range h.cut {
		ip, err := netip.ParseAddr(o.IP())
		if err != nil {
			return fmt.Errorf("netns: cut %s from %s: %w", h.name, o.name, err)
		}
		dsts = append(dsts, ip)
	}
	slices.SortFunc(dsts, netip.Addr.Compare)
	if err := run("tc", "-n", hub, "filter", "add", "dev", h.port, "ingress", "pref", cutPref, "bpf", "da", "bytecode", dropToBPF(dsts)); err != nil {
		return fmt.Errorf("netns: cut %s: %w", h.name, err)
	}
	return nil
}

// dropToBPF returns a classic BPF program (tc's "len,code jt jf k,..."
// form, run by cls_bpf in direct-action mode on Ethernet frames) that
// drops IPv4 frames whose destination address is one of dsts and passes
// everything else:
//
//	0      ldh [12]              ; ethertype
//	1      jeq #0x800, 0, n+1    ; not IPv4: ret OK
//	2      ld [30]               ; IPv4 destination address
//	3..    jeq #dst_i, drop, 0   ; one per destination
//	n+3    ret #0                ; TC_ACT_OK
//	n+4    ret #2                ; TC_ACT_SHOT
func dropToBPF(dsts []netip.Addr) string {
	n := len(dsts)
	ins := []string{"40 0 0 12", fmt.Sprintf("21 0 %d 2048", n+1), "32 0 0 30"}
	for i, d := range dsts {
		b := d.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		idx := 3 + i
		ins = append(ins, fmt.Sprintf("21 %d 0 %d", n+4-idx-1, v))
	}
	ins = append(ins, "6 0 0 0", "6 0 0 2")
	return strconv.Itoa(len(ins)) + "," + strings.Join(ins, ",")
}
