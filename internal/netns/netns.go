// Package netns simulates a station's LAN on one Linux machine for tests:
// each PC is a network namespace, and all of them hang off one bridge.
//
// A [Network] is a hub namespace holding a bridge (br0, STP and multicast
// snooping off: a dumb switch that floods multicast), and hosts. A [Host]
// is a namespace whose only link, eth0, is one end of a veth pair; the
// other end (p0, p1, ...) is a port of the hub's bridge. Every host gets
// the next free address of the network's subnet on eth0, lo up, and a
// route for 224.0.0.0/4 on eth0 (what a PC's default route gives mDNS); it
// has no default route. Processes started with [Host.Command] run inside
// the host, and [Host.Do] and [Host.DialContext] let the test process
// itself open sockets there.
//
// Nothing is created in the root namespace: veth pairs are created inside
// the hub namespace and one end is moved straight into the host, addresses
// exist only inside the hosts, and the host's real interfaces are never
// touched. The root namespace has no route into the network; reach a host
// with [Host.DialContext] (or a process started with [Host.Command]).
//
// Namespaces are named Prefix + "<pid>-<seq>-<role>" (e.g.
// "ssnt-4242-1-hub", "ssnt-4242-1-h0"): unique per test process and per
// Network, so parallel test processes never collide, and [CleanupStale]
// can tell leftovers of a crashed run (whose pid is gone) from those of a
// run still going. Interface names never depend on those names (eth0 in
// a host, br0 and p<i> in the hub), so IFNAMSIZ (15) is never a concern.
//
// [New] skips the test when it cannot work (not root, no `ip`, namespaces
// not allowed), except when the CI environment variable is set: there it
// fails the test, because CI runs as root and must run these tests.
//
// Needs: Linux, root (CAP_SYS_ADMIN and CAP_NET_ADMIN), iproute2 (`ip` and
// `tc`) and a kernel with veth, bridge, clsact and cls_bpf (any distribution
// kernel). No iptables or nftables.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Prefix starts the name of every namespace this package makes.
const Prefix = "ssnt-"

// HostIfName is the name of a host's link (its end of the veth pair).
const HostIfName = "eth0"

// runDir is where `ip netns` keeps its named namespaces (iproute2's
// NETNS_RUN_DIR).
const runDir = "/var/run/netns"

// cmdTimeout bounds every `ip` or `tc` command.
const cmdTimeout = 30 * time.Second

// multicastDropBPF is a classic BPF program, run by the tc cls_bpf
// classifier in direct-action mode, that drops every frame whose
// destination MAC has the group bit set (IPv4 multicast 01:00:5e:..., IPv6
// 33:33:..., mDNS's 01:00:5e:00:00:fb among them), except broadcast
// (ARP must keep working). In tc's "len,code jt jf k,..." form:
//
//	ldb [0]                    ; first byte of the destination MAC
//	jset #1, 0, 3              ; group bit clear: unicast, go to ret OK
//	ld [0]                     ; first 4 bytes of the destination MAC
//	jeq #0xffffffff, 1, 0      ; ff:ff:ff:ff: broadcast, go to ret OK
//	ret #2                     ; TC_ACT_SHOT: drop
//	ret #0                     ; TC_ACT_OK: pass
const multicastDropBPF = "6,48 0 0 0,69 0 3 1,32 0 0 0,21 1 0 4294967295,6 0 0 2,6 0 0 0"

// seq numbers the networks of this process.
var seq struct {
	sync.Mutex
	n int
}

// addMu serializes `ip netns add` within the process: the first one sets
// up the /var/run/netns mount, which does not like to race with itself.
var addMu sync.Mutex

var staleOnce sync.Once

// Network is a simulated LAN: a hub namespace holding a bridge, and hosts,
// each a namespace with a veth pair whose other end is in the hub's
// bridge. Its methods are safe for concurrent use, except that New and
// AddHost fail the test and so must be called from the test's goroutine.
type Network struct {
	t      testing.TB
	prefix string // Prefix + "<pid>-<seq>-"
	hub    string // hub namespace
	subnet netip.Prefix

	mu      sync.Mutex
	hosts   []*Host
	used    map[netip.Addr]*Host
	made    []string // namespaces created, in order (possibly half made)
	closed  bool
	closeMu sync.Mutex // held by Close
	cutMu   sync.Mutex // held by Cut, Partition and Heal (partition.go)
}

// Host is one simulated PC of a Network.
type Host struct {
	net  *Network
	name string
	ns   string // namespace name
	port string // its bridge port in the hub namespace: p<index>

	mu           sync.Mutex
	ip           netip.Addr
	bits         int
	multicastOff bool
	cut          map[*Host]bool // hosts this one is cut from; guarded by net.cutMu
}

// New makes an empty network (hub namespace with bridge br0) for subnet,
// an IPv4 prefix such as "10.231.0.0/24", and registers Close with
// t.Cleanup. It first removes leftovers of crashed runs (CleanupStale),
// once per process. It skips the test, with the reason, when not root,
// when `ip` is missing or when namespaces cannot be made; with CI set in
// the environment it fails the test instead.
func New(t testing.TB, subnet string) *Network {
	t.Helper()
	if runtime.GOOS != "linux" {
		skipOrFatal(t, "network namespaces need Linux, this is %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		skipOrFatal(t, "network namespaces need root (euid is %d)", os.Geteuid())
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFatal(t, "%s (iproute2) is not installed: %v", tool, err)
		}
	}
	pfx, err := netip.ParsePrefix(subnet)
	if err != nil || !pfx.Addr().Is4() || pfx.Bits() > 30 || pfx.Bits() < 8 {
		t.Fatalf("netns: subnet %q: want an IPv4 prefix between /8 and /30 (%v)", subnet, err)
	}
	staleOnce.Do(func() { CleanupStale(Prefix) })

	seq.Lock()
	seq.n++
	id := seq.n
	seq.Unlock()
	n := &Network{
		t:      t,
		prefix: fmt.Sprintf("%s%d-%d-", Prefix, os.Getpid(), id),
		subnet: pfx.Masked(),
		used:   map[netip.Addr]*Host{},
	}
	n.hub = n.prefix + "hub"
	t.Cleanup(n.Close)

	if err := n.addNamespace(n.hub); err != nil {
		n.Close()
		skipOrFatal(t, "cannot make a network namespace: %v", err)
	}
	err = runAll(
		[]string{"ip", "-n", n.hub, "link", "set", "lo", "up"},
		[]string{"ip", "-n", n.hub, "link", "add", "br0", "type", "bridge", "stp_state", "0", "mcast_snooping", "0"},
		[]string{"ip", "-n", n.hub, "link", "set", "br0", "up"},
	)
	if err != nil {
		n.Close()
		t.Fatalf("netns: hub: %v", err)
	}
	return n
}

func skipOrFatal(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := "netns: " + fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set: these tests must run there, so this is a failure, not a skip)")
	}
	t.Skip(msg)
}

// Hub is the name of the hub namespace (bridge br0, ports p0, p1 ...).
func (n *Network) Hub() string { return n.hub }

// Subnet is the network's subnet, e.g. "10.231.0.0/24".
func (n *Network) Subnet() string { return n.subnet.String() }

// Prefix is what every namespace name of this network starts with.
func (n *Network) Prefix() string { return n.prefix }

// Host returns the host named name, or nil.
func (n *Network) Host(name string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range n.hosts {
		if h.name == name {
			return h
		}
	}
	return nil
}

// Hosts returns the hosts in the order they were added.
func (n *Network) Hosts() []*Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Host(nil), n.hosts...)
}

var hostName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$`)

// AddHost adds a host named name (letters, digits, '.', '_', '-'; at most
// 32) with the next free address of the subnet on eth0: link and lo up,
// multicast on, a route for 224.0.0.0/4 on eth0, no default route. It
// fails the test on error.
func (n *Network) AddHost(name string) *Host {
	n.t.Helper()
	h, err := n.addHost(name)
	if err != nil {
		n.t.Fatalf("netns: add host %q: %v", name, err)
	}
	return h
}

func (n *Network) addHost(name string) (*Host, error) {
	if !hostName.MatchString(name) || name == "hub" {
		return nil, errors.New("bad name: want 1 to 32 of letters, digits, '.', '_', '-' (and not \"hub\")")
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, errors.New("network is closed")
	}
	for _, o := range n.hosts {
		if o.name == name {
			n.mu.Unlock()
			return nil, errors.New("a host of that name exists")
		}
	}
	ip, ok := n.freeAddr()
	if !ok {
		n.mu.Unlock()
		return nil, fmt.Errorf("no free address left in %s", n.subnet)
	}
	h := &Host{net: n, name: name, ns: n.prefix + name, port: fmt.Sprintf("p%d", len(n.hosts)), ip: ip, bits: n.subnet.Bits()}
	n.hosts = append(n.hosts, h)
	n.used[ip] = h
	n.mu.Unlock()

	if err := n.addNamespace(h.ns); err != nil {
		return nil, err
	}
	addr := h.cidr()
	err := runAll(
		// Made in the hub; its peer goes straight into the host: nothing
		// ever exists in the root namespace.
		[]string{"ip", "-n", n.hub, "link", "add", h.port, "type", "veth", "peer", "name", HostIfName, "netns", h.ns},
		[]string{"ip", "-n", n.hub, "link", "set", h.port, "master", "br0"},
		[]string{"ip", "-n", n.hub, "link", "set", h.port, "up"},
		[]string{"ip", "-n", h.ns, "link", "set", "lo", "up"},
		[]string{"ip", "-n", h.ns, "addr", "add", addr, "dev", HostIfName},
		[]string{"ip", "-n", h.ns, "link", "set", HostIfName, "multicast", "on", "up"},
		[]string{"ip", "-n", h.ns, "route", "replace", "224.0.0.0/4", "dev", HostIfName},
	)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// freeAddr returns the lowest host address of the subnet no host has.
// Called with n.mu held.
func (n *Network) freeAddr() (netip.Addr, bool) {
	bcast := lastAddr(n.subnet)
	for a := n.subnet.Addr().Next(); a.IsValid() && a.Less(bcast); a = a.Next() {
		if n.used[a] == nil {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= 1<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// addNamespace makes a named namespace, remembering it for Close first so
// that even a half-made one is removed.
func (n *Network) addNamespace(name string) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return errors.New("network is closed")
	}
	n.made = append(n.made, name)
	n.mu.Unlock()
	addMu.Lock()
	defer addMu.Unlock()
	return run("ip", "netns", "add", name)
}

// Close removes every namespace the network made (hosts, then the hub);
// their veth pairs and the bridge go with them. Processes still running in
// a host keep its namespace alive, unnamed, until they exit: stop them
// first (the harness does). Close is idempotent and registered with
// t.Cleanup by New; it reports failures with t.Errorf.
func (n *Network) Close() {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	made := append([]string(nil), n.made...)
	n.mu.Unlock()
	var errs []string
	for i := len(made) - 1; i >= 0; i-- {
		if err := deleteNamespace(made[i]); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		n.t.Errorf("netns: close: %s", strings.Join(errs, "; "))
	}
}

// deleteNamespace removes a named namespace; one already gone is fine.
func deleteNamespace(name string) error {
	if _, err := os.Stat(runDir + "/" + name); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return run("ip", "netns", "del", name)
}

// CleanupStale removes the namespaces left by earlier runs that died
// before their cleanups ran: those named prefix + "<pid>-..." whose pid
// is not a running process (nor this one). Namespaces of test processes
// still running, and names not of that form, are left alone. New calls it
// with Prefix once per process.
func CleanupStale(prefix string) {
	entries, err := os.ReadDir(runDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		_ = deleteNamespace(name)
	}
}

// Name is the host's name as given to AddHost.
func (h *Host) Name() string { return h.name }

// Namespace is the name of the host's network namespace (for `ip netns
// exec` and `ip -n`).
func (h *Host) Namespace() string { return h.ns }

// Port is the name of the host's bridge port in the hub namespace.
func (h *Host) Port() string { return h.port }

// IP is the host's current IPv4 address on eth0, e.g. "10.231.0.1".
func (h *Host) IP() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ip.String()
}

func (h *Host) cidr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return netip.PrefixFrom(h.ip, h.bits).String()
}

// Command returns a command that runs name with args inside the host's
// namespace: `ip netns exec NS name args...`. ip execs the program in
// place, so cmd.Process is the program itself (signals reach it).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
}

// Readdress replaces the host's address by newIP, like a DHCP server
// handing out another lease: the old address is removed from eth0 (sockets
// bound to it stop working) and newIP added, with the subnet's prefix
// length unless newIP has its own ("10.231.0.77/24"). The 224.0.0.0/4
// route is restored. newIP must not be another host's.
func (h *Host) Readdress(newIP string) error {
	var addr netip.Addr
	bits := h.net.subnet.Bits()
	if p, err := netip.ParsePrefix(newIP); err == nil {
		addr, bits = p.Addr(), p.Bits()
	} else if a, err := netip.ParseAddr(newIP); err == nil {
		addr = a
	} else {
		return fmt.Errorf("netns: readdress %s: %q is not an IPv4 address", h.name, newIP)
	}
	if !addr.Is4() {
		return fmt.Errorf("netns: readdress %s: %q is not an IPv4 address", h.name, newIP)
	}
	n := h.net
	n.mu.Lock()
	if o := n.used[addr]; o != nil && o != h {
		n.mu.Unlock()
		return fmt.Errorf("netns: readdress %s: %s is host %s's", h.name, addr, o.name)
	}
	h.mu.Lock()
	old := h.ip
	h.ip, h.bits = addr, bits
	h.mu.Unlock()
	delete(n.used, old)
	n.used[addr] = h
	n.mu.Unlock()
	err := runAll(
		[]string{"ip", "-n", h.ns, "-4", "addr", "flush", "dev", HostIfName},
		[]string{"ip", "-n", h.ns, "addr", "add", h.cidr(), "dev", HostIfName},
		// Removing the last address flushed every IPv4 route of eth0.
		[]string{"ip", "-n", h.ns, "route", "replace", "224.0.0.0/4", "dev", HostIfName},
	)
	if err != nil {
		return fmt.Errorf("netns: readdress %s to %s: %w", h.name, addr, err)
	}
	return nil
}

// SetMulticast(false) stops all multicast to and from the host while
// unicast and broadcast (ARP) keep working, like a switch port that
// filters multicast; SetMulticast(true) lets it through again.
//
// How: a clsact qdisc on the host's bridge port in the hub namespace with
// a cls_bpf filter (multicastDropBPF) on ingress (frames from the host)
// and egress (frames to the host) that drops frames with a multicast
// destination MAC. The host's own namespace is untouched, so the software
// under test still sees a normal multicast-capable eth0; it just never
// hears anyone. (`ip link set dev eth0 multicast off` inside the host is
// NOT enough: Linux still sends and receives 224.0.0.251 datagrams on
// such a link, which netns_test.go checks.)
func (h *Host) SetMulticast(on bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if on == !h.multicastOff {
		return nil
	}
	hub := h.net.hub
	var err error
	if on {
		// Only this method's filters: partition filters (partition.go)
		// share the qdisc.
		err = runAll(
			[]string{"tc", "-n", hub, "filter", "del", "dev", h.port, "ingress", "pref", "10"},
			[]string{"tc", "-n", hub, "filter", "del", "dev", h.port, "egress", "pref", "10"},
		)
	} else {
		err = runAll(
			[]string{"tc", "-n", hub, "qdisc", "replace", "dev", h.port, "clsact"},
			[]string{"tc", "-n", hub, "filter", "add", "dev", h.port, "ingress", "pref", "10", "bpf", "da", "bytecode", multicastDropBPF},
			[]string{"tc", "-n", hub, "filter", "add", "dev", h.port, "egress", "pref", "10", "bpf", "da", "bytecode", multicastDropBPF},
		)
	}
	if err != nil {
		return fmt.Errorf("netns: multicast %v on %s: %w", on, h.name, err)
	}
	h.multicastOff = !on
	return nil
}

// Disconnect cuts the host off the network, like pulling its cable: its
// bridge port in the hub is set down, so eth0 in the host loses carrier
// (NO-CARRIER) but keeps its address and routes. Reconnect plugs it back.
func (h *Host) Disconnect() error {
	if err := run("ip", "-n", h.net.hub, "link", "set", h.port, "down"); err != nil {
		return fmt.Errorf("netns: disconnect %s: %w", h.name, err)
	}
	return nil
}

// Reconnect undoes Disconnect. The bridge runs no STP, so the port
// forwards at once.
func (h *Host) Reconnect() error {
	if err := run("ip", "-n", h.net.hub, "link", "set", h.port, "up"); err != nil {
		return fmt.Errorf("netns: reconnect %s: %w", h.name, err)
	}
	return nil
}

// Do runs fn on an OS thread that is inside the host's network namespace,
// and returns its error. Sockets fn opens (net.Dial, net.Listen,
// net.ListenPacket ...) belong to the host's namespace for good and may be
// used from any goroutine afterwards. fn must not start goroutines that
// expect to be in the namespace, and must use IP literals (the resolver
// may work on other threads).
//
// How: a new goroutine locks itself to its OS thread
// (runtime.LockOSThread), switches that thread's network namespace with
// setns(2) to /var/run/netns/<ns>, runs fn, and switches back. If switching
// back fails, the goroutine exits still locked, and the Go runtime then
// ends the thread instead of reusing it, so no other goroutine ever runs
// in the wrong namespace.
func (h *Host) Do(fn func() error) error {
	return doIn(h.ns, fn)
}

// DialContext dials addr from inside the host's namespace (see Do), so
// "127.0.0.1:port" is the host's own loopback. addr's host must be an IP
// literal. The connection works from any goroutine. Its signature fits
// http.Transport.DialContext.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("netns: dial %s in %s: %w", addr, h.name, err)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return nil, fmt.Errorf("netns: dial %s in %s: the host must be an IP literal", addr, h.name)
	}
	var c net.Conn
	err = h.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// run runs one command and returns an error with its output on failure.
func run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func runAll(cmds ...[]string) error {
	for _, c := range cmds {
		if err := run(c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}
