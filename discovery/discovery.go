// Package discovery finds the other stationsync nodes on the LAN.
//
// Each node announces the DNS-SD service _stationsync._udp.local. over mDNS
// (github.com/grandcat/zeroconf) with the TXT keys station=, node=, v=
// (protocol version) and fp= (hex SHA-256 of its certificate), and browses
// for the others continuously. Static peers from the configuration are
// merged in for networks where multicast is blocked.
//
// Everything this package reports is a HINT. Anyone on the LAN can announce
// any station, node and fingerprint, or send a goodbye for someone else. A
// peer's identity comes only from its mTLS certificate, which the caller
// checks when it connects; discovery never admits anyone.
//
// Announcements of other stations are kept (with their Station): filtering
// is the caller's job (see PeersOf).
//
// # How zeroconf v1.0.0 is used, and what is worked around
//
//   - Browse reports an instance only once per resolver and never reports
//     changes or goodbyes, and its probing stops after the first answer. So
//     browsing runs in rounds: every BrowseInterval a fresh resolver with
//     its own context sends a fresh query; the entries channel is drained
//     until zeroconf closes it (its main loop blocks on an unread channel
//     and would leak with its sockets otherwise). A peer not seen for
//     Expiry is removed.
//   - Browse drops records with TTL 0 (goodbyes) silently. A small passive
//     listener on the mDNS group catches goodbyes for _stationsync._udp and
//     removes the peer at once.
//   - The resolver listens on IPv4 only: with zeroconf's default
//     (IPv4+IPv6) NewResolver fails outright on hosts with IPv6 disabled,
//     and peers are dialled by IPv4 anyway.
//   - The service is registered with RegisterProxy under a host name unique
//     to the node (not the PC's host name, which a system responder such as
//     avahi already owns, and which is the same for every network namespace
//     of a test) and with the explicit IPv4 addresses of the chosen
//     interfaces (with no explicit addresses zeroconf answers with the
//     addresses of the interface a query came in on, which is unknown on
//     Windows: the answer would carry no address at all). Registration is
//     redone when the interfaces or their addresses change (DHCP, cable).
//   - A peer may announce several IPv4 addresses; the one on the same
//     subnet as one of our interfaces is preferred, then a routable one,
//     then link-local, loopback last.
//   - Without Config.Interfaces, loopback, point-to-point (VPN) and
//     well-known virtual interfaces (docker, bridges of VMs and containers)
//     are left out: their addresses exist on many PCs and would be picked as
//     "same subnet". Name the LAN interface in Config.Interfaces to override.
//   - Server.Shutdown sends the goodbye and closes the sockets; Close bounds
//     the whole shutdown in time even if the network is gone. The server's
//     receive goroutines register in its WaitGroup only once running, so a
//     Shutdown right after RegisterProxy races them (the race detector
//     flags it): a registration lives at least 300ms before Shutdown.
//   - The RegisterProxy host is given without the domain (zeroconf appends
//     it: "x.local." would become "x.local.local."), and the instance label
//     has '.' replaced by '_' and is kept within 63 bytes (station and node
//     ids may contain dots and be 64 bytes each).
//
// zeroconf logs a line with the standard library logger when it cannot join
// the IPv6 group on an interface; that is harmless.
package discovery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grandcat/zeroconf"
)

// Service is the DNS-SD service type announced and browsed.
const Service = "_stationsync._udp"

// Domain is the mDNS domain.
const Domain = "local."

// ProtocolVersion is announced in the TXT key v.
const ProtocolVersion = "1"

// Source says where a peer was learned from.
type Source string

// Sources of peers.
const (
	SourceMDNS   Source = "mdns"
	SourceStatic Source = "static"
)

// Peer is a node found on the LAN or listed in the configuration. All
// fields but Addr and Source are hints from an unauthenticated announcement.
type Peer struct {
	// Station and Node come from the TXT record (mDNS); they are empty for
	// static peers (unknown until contacted).
	Station, Node string
	// Addr is host:port of the peer's QUIC listener. For mDNS: one IPv4
	// address of the announcement (same subnet as one of our interfaces
	// preferred) and the SRV port.
	Addr string
	// Fingerprint is the TXT fp: hex SHA-256 of the peer's certificate
	// (DER); "" for static peers.
	Fingerprint string
	// Version is the TXT v (protocol version); "" for static peers.
	Version string
	Source  Source
	// LastSeen is when the peer was last heard of by mDNS; zero for static
	// peers.
	LastSeen time.Time
}

// EventType is the kind of an Event.
type EventType int

// Event types.
const (
	PeerAdded   EventType = iota + 1 // a peer appeared
	PeerUpdated                      // its address, fingerprint or version changed
	PeerRemoved                      // goodbye received, or not seen for Expiry
)

func (t EventType) String() string {
	switch t {
	case PeerAdded:
		return "added"
	case PeerUpdated:
		return "updated"
	case PeerRemoved:
		return "removed"
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}

// Event is a change of the peer view. For PeerRemoved, Peer is the peer as
// it was last known.
type Event struct {
	Type EventType
	Peer Peer
}

// Defaults.
const (
	DefaultBrowseInterval = 5 * time.Second
	DefaultExpiry         = 30 * time.Second
	// EventBuffer is the capacity of the Events channel.
	EventBuffer = 64

	minBrowseInterval = 200 * time.Millisecond
	closeTimeout      = 5 * time.Second
	// goodbyeHold: after a goodbye, announcements of the same instance are
	// ignored this long, so a packet in flight from before the goodbye does
	// not bring the peer back until Expiry.
	goodbyeHold = time.Second
)

// Config configures a Discovery.
type Config struct {
	// Station and Node identify this node (TXT station= and node=); a peer
	// with both equal is this node and never reported.
	Station, Node string
	// Port is the QUIC port to announce.
	Port int
	// Fingerprint is this node's certificate fingerprint (TXT fp), see
	// pki.Fingerprint.
	Fingerprint string
	// MDNS enables announcing and browsing; false: static peers only.
	MDNS bool
	// Interfaces are the names of the interfaces to use; empty: every up,
	// multicast-capable interface with an IPv4 address, except loopback,
	// point-to-point and well-known virtual ones (docker0, br-*, veth*,
	// virbr*, vboxnet*, vmnet*, VirtualBox/VMware host-only adapters...).
	Interfaces []string
	// AdvertiseIP, when set, is the only IPv4 address announced (the
	// daemon's advertise host when it is an IPv4 address); empty: every
	// IPv4 address of the chosen interfaces.
	AdvertiseIP string
	// Static are host:port addresses from the configuration's peers.
	// An address that is one of this PC's own IPs with Port is this node
	// and left out.
	Static []string
	// BrowseInterval is how often a fresh browse query is sent (default
	// 5s, at least 200ms).
	BrowseInterval time.Duration
	// Expiry removes an mDNS peer not seen for this long (default 30s, at
	// least twice BrowseInterval). A goodbye removes it at once.
	Expiry time.Duration
	// Logger receives the logs, with component=discovery; nil: discarded.
	Logger *slog.Logger
}

// Discovery announces this node and tracks its peers. Create it with New,
// start it with Open, stop it with Close.
type Discovery struct {
	cfg    Config
	logger *slog.Logger
	events chan Event

	mu           sync.Mutex
	opened       bool
	closed       bool
	eventsClosed bool
	dropped      int                  // events dropped since the last warning
	static       []Peer               // static peers, self excluded
	local        map[string]bool      // every IP of this PC (for static self)
	nets         []*net.IPNet         // IPv4 nets of the chosen interfaces
	peers        map[string]*mdnsPeer // key: station \x00 node
	goodbyes     map[string]time.Time // instance (lower case) -> goodbye time
	named        []string             // Interfaces, resolved at Open
	cancel       context.CancelFunc

	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

type mdnsPeer struct {
	Peer
	instance string // lower-case DNS-SD instance name, for goodbyes
}

// New returns a Discovery for cfg. It does no I/O; Open validates cfg.
func New(cfg Config) *Discovery {
	cfg.Interfaces = slices.Clone(cfg.Interfaces)
	cfg.Static = slices.Clone(cfg.Static)
	if cfg.BrowseInterval == 0 {
		cfg.BrowseInterval = DefaultBrowseInterval
	}
	if cfg.Expiry == 0 {
		cfg.Expiry = DefaultExpiry
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Discovery{
		cfg:      cfg,
		logger:   logger.With("component", "discovery"),
		events:   make(chan Event, EventBuffer),
		peers:    map[string]*mdnsPeer{},
		goodbyes: map[string]time.Time{},
		local:    map[string]bool{},
	}
}

// validate checks cfg without I/O.
func (c *Config) validate() error {
	if c.BrowseInterval < minBrowseInterval {
		return fmt.Errorf("browse interval %v is below %v", c.BrowseInterval, minBrowseInterval)
	}
	if c.Expiry < 2*c.BrowseInterval {
		return fmt.Errorf("expiry %v must be at least twice the browse interval %v", c.Expiry, c.BrowseInterval)
	}
	for _, s := range c.Static {
		if _, err := splitHostPort(s); err != nil {
			return fmt.Errorf("static peer %q: %w", s, err)
		}
	}
	if c.Fingerprint != "" {
		if b, err := hex.DecodeString(c.Fingerprint); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("fingerprint %q is not a hex SHA-256", c.Fingerprint)
		}
	}
	if c.AdvertiseIP != "" {
		if ip := net.ParseIP(c.AdvertiseIP); ip == nil || ip.To4() == nil {
			return fmt.Errorf("advertise IP %q is not an IPv4 address", c.AdvertiseIP)
		}
	}
	if !c.MDNS {
		return nil
	}
	if c.Station == "" || c.Node == "" {
		return errors.New("station and node are required for mDNS")
	}
	for _, kv := range []struct{ k, v string }{{"station", c.Station}, {"node", c.Node}} {
		if len(kv.v) > 200 || strings.ContainsFunc(kv.v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("%s %q cannot go into a TXT record", kv.k, kv.v)
		}
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("port %d out of range 1-65535", c.Port)
	}
	return nil
}

func splitHostPort(s string) (int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return 0, err
	}
	if host == "" {
		return 0, errors.New("missing host")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %q out of range 1-65535", port)
	}
	return p, nil
}

// Open validates the configuration, resolves the named interfaces (an
// unknown name is an error naming it), and with MDNS starts a goroutine it
// owns that registers the service (instance station-node, TXT station=,
// node=, v=, fp=) and browses. A failure to open the mDNS sockets (network
// not up yet, no interface) is logged and retried every BrowseInterval, so
// a PC whose network comes up after the service still joins.
func (d *Discovery) Open() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("discovery: closed")
	}
	if d.opened {
		return errors.New("discovery: already open")
	}
	if err := d.cfg.validate(); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	if d.cfg.MDNS {
		for _, name := range d.cfg.Interfaces {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return fmt.Errorf("discovery: interface %q: %w", name, err)
			}
			if ifi.Flags&net.FlagMulticast == 0 {
				return fmt.Errorf("discovery: interface %q does not support multicast", name)
			}
			if ifi.Flags&net.FlagUp == 0 {
				d.logger.Warn("interface is down; it is used when it comes up", "interface", name)
			}
		}
		d.named = d.cfg.Interfaces
	}
	d.opened = true
	d.local = localIPs()

	seen := map[string]bool{}
	for _, s := range d.cfg.Static {
		if seen[s] {
			continue
		}
		seen[s] = true
		if d.isSelfAddrLocked(s) {
			d.logger.Debug("static peer is this node; left out", "addr", s)
			continue
		}
		p := Peer{Addr: s, Source: SourceStatic}
		d.static = append(d.static, p)
		d.emitLocked(Event{Type: PeerAdded, Peer: p})
	}

	if d.cfg.MDNS {
		ctx, cancel := context.WithCancel(context.Background())
		d.cancel = cancel
		d.wg.Add(1)
		go d.run(ctx)
	}
	d.logger.Info("discovery open", "mdns", d.cfg.MDNS, "static", len(d.static),
		"instance", instanceName(d.cfg.Station, d.cfg.Node), "port", d.cfg.Port)
	return nil
}

// Close sends the goodbye, stops every goroutine and closes the Events
// channel. It is safe to call twice and returns within about 5 seconds even
// if the network is gone (an error says so if something did not stop).
func (d *Discovery) Close() error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		cancel := d.cancel
		d.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		done := make(chan struct{})
		go func() { d.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(closeTimeout):
			d.closeErr = fmt.Errorf("discovery: close: mDNS goroutines still running after %v", closeTimeout)
			d.logger.Warn("close timed out", "after", closeTimeout)
		}
		d.mu.Lock()
		d.eventsClosed = true
		close(d.events)
		opened := d.opened
		d.mu.Unlock()
		if opened {
			d.logger.Info("discovery closed")
		}
	})
	return d.closeErr
}

// Events returns the channel of peer changes (capacity EventBuffer). It is
// closed by Close. Sending never blocks discovery: when the buffer is full
// the OLDEST event is dropped to make room (a warning is logged), so a slow
// consumer loses history but sees the latest changes; Peers is always the
// authoritative current view.
func (d *Discovery) Events() <-chan Event { return d.events }

// Peers returns the current view, sorted by Addr: static peers and live
// mDNS peers (of every station), never this node. A static peer whose
// address an mDNS peer also has is reported once, as the mDNS peer.
func (d *Discovery) Peers() []Peer {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Peer, 0, len(d.peers)+len(d.static))
	have := map[string]bool{}
	for _, p := range d.peers {
		out = append(out, p.Peer)
		have[p.Addr] = true
	}
	for _, p := range d.static {
		if !have[p.Addr] {
			out = append(out, p)
		}
	}
	sortPeers(out)
	return out
}

// PeersOf returns the mDNS peers announcing station, sorted by Addr. Static
// peers are not included: their station is unknown until contacted.
func (d *Discovery) PeersOf(station string) []Peer {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Peer
	for _, p := range d.peers {
		if p.Station == station {
			out = append(out, p.Peer)
		}
	}
	sortPeers(out)
	return out
}

func sortPeers(ps []Peer) {
	slices.SortFunc(ps, func(a, b Peer) int {
		if c := strings.Compare(a.Addr, b.Addr); c != 0 {
			return c
		}
		if c := strings.Compare(a.Station, b.Station); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
}

// emitLocked queues ev without blocking, dropping the oldest queued event
// when the buffer is full. d.mu must be held (one sender at a time).
func (d *Discovery) emitLocked(ev Event) {
	if d.eventsClosed {
		return
	}
	select {
	case d.events <- ev:
		if d.dropped > 0 {
			d.logger.Warn("events were dropped: the consumer is slow", "dropped", d.dropped)
			d.dropped = 0
		}
		return
	default:
	}
	select {
	case <-d.events:
		d.dropped++
	default:
	}
	select {
	case d.events <- ev:
	default:
		d.dropped++
	}
}

// isSelfAddrLocked: a static address on one of this PC's IPs (or
// localhost) with our port is this node.
func (d *Discovery) isSelfAddrLocked(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || d.cfg.Port == 0 || port != strconv.Itoa(d.cfg.Port) {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && d.local[ip.String()]
}

// localIPs are all the IPs of this PC, loopback included.
func localIPs() map[string]bool {
	out := map[string]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			out[ipn.IP.String()] = true
		}
	}
	return out
}

// instanceName is the DNS-SD instance label: station-node, with '.' (a
// label separator) replaced by '_', and shortened with a hash suffix to the
// 63-byte DNS label limit.
func instanceName(station, node string) string {
	name := strings.ReplaceAll(station+"-"+node, ".", "_")
	name = strings.ReplaceAll(name, `\`, "_")
	if len(name) <= 63 {
		return name
	}
	return truncUTF8(name, 54) + "-" + shortHash(station, node)
}

// hostName is the host label the A records are announced under: unique per
// node, so it never clashes with the PC's own name or another node's.
// RegisterProxy appends the domain (given "x.local." it would announce
// "x.local.local.").
func hostName(station, node string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(station + "-" + node) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	label := strings.Trim(b.String(), "-")
	if len(label) > 40 {
		label = label[:40]
	}
	return "stationsync-" + label + "-" + shortHash(station, node)
}

func shortHash(station, node string) string {
	sum := sha256.Sum256([]byte(station + "\x00" + node))
	return hex.EncodeToString(sum[:4])
}

func truncUTF8(s string, n int) string {
	for len(s) > n {
		_, size := lastRune(s)
		s = s[:len(s)-size]
	}
	return s
}

func lastRune(s string) (rune, int) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i]&0xC0 != 0x80 {
			return rune(s[i]), len(s) - i
		}
	}
	return 0, 1
}

func (d *Discovery) txt() []string {
	return []string{
		"station=" + d.cfg.Station,
		"node=" + d.cfg.Node,
		"v=" + ProtocolVersion,
		"fp=" + d.cfg.Fingerprint,
	}
}

// parseTXT reads key=value strings; keys are case-insensitive and the
// first occurrence wins (RFC 6763 6.4).
func parseTXT(txt []string) map[string]string {
	out := map[string]string{}
	for _, s := range txt {
		k, v, _ := strings.Cut(s, "=")
		k = strings.ToLower(k)
		if _, dup := out[k]; k != "" && !dup {
			out[k] = v
		}
	}
	return out
}

// pickIPv4 chooses the address to dial among those a peer announced:
// same subnet as one of ours, then routable, then link-local (same subnet
// first), loopback last; ties keep the announced order. nil: no IPv4.
func pickIPv4(ips []net.IP, nets []*net.IPNet) net.IP {
	var best net.IP
	bestRank := 99
	for _, ip := range ips {
		v4 := ip.To4()
		if v4 == nil || v4.IsUnspecified() || v4.IsMulticast() || v4.Equal(net.IPv4bcast) {
			continue
		}
		same := false
		for _, n := range nets {
			if n.Contains(v4) {
				same = true
				break
			}
		}
		var rank int
		switch {
		case v4.IsLoopback():
			rank = 4
		case v4.IsLinkLocalUnicast() && same:
			rank = 2
		case v4.IsLinkLocalUnicast():
			rank = 3
		case same:
			rank = 0
		default:
			rank = 1
		}
		if rank < bestRank {
			best, bestRank = v4, rank
		}
	}
	return best
}

func peerKey(station, node string) string { return station + "\x00" + node }

// handleEntry merges one browse result.
func (d *Discovery) handleEntry(e *zeroconf.ServiceEntry, now time.Time) {
	if e == nil {
		return
	}
	txt := parseTXT(e.Text)
	station, node := txt["station"], txt["node"]
	if station == "" || node == "" {
		d.logger.Debug("announcement without station or node ignored", "instance", e.Instance)
		return
	}
	if station == d.cfg.Station && node == d.cfg.Node {
		return // ourselves
	}
	if e.Port < 1 || e.Port > 65535 {
		d.logger.Debug("announcement with a bad port ignored", "instance", e.Instance, "port", e.Port)
		return
	}
	instance := strings.ToLower(e.Instance)

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.eventsClosed {
		return
	}
	if t, ok := d.goodbyes[instance]; ok {
		if now.Sub(t) < goodbyeHold {
			return
		}
		delete(d.goodbyes, instance)
	}
	ip := pickIPv4(e.AddrIPv4, d.nets)
	if ip == nil {
		d.logger.Debug("announcement without an IPv4 address ignored", "instance", e.Instance)
		return
	}
	p := Peer{
		Station:     station,
		Node:        node,
		Addr:        net.JoinHostPort(ip.String(), strconv.Itoa(e.Port)),
		Fingerprint: txt["fp"],
		Version:     txt["v"],
		Source:      SourceMDNS,
		LastSeen:    now,
	}
	key := peerKey(station, node)
	old, ok := d.peers[key]
	if !ok {
		d.peers[key] = &mdnsPeer{Peer: p, instance: instance}
		d.logger.Info("peer found", "station", station, "node", node, "addr", p.Addr, "fp", p.Fingerprint)
		d.emitLocked(Event{Type: PeerAdded, Peer: p})
		return
	}
	changed := old.Addr != p.Addr || old.Fingerprint != p.Fingerprint || old.Version != p.Version
	old.Peer = p
	old.instance = instance
	if changed {
		d.logger.Info("peer changed", "station", station, "node", node, "addr", p.Addr, "fp", p.Fingerprint, "version", p.Version)
		d.emitLocked(Event{Type: PeerUpdated, Peer: p})
	}
}

// handleGoodbye removes the peers announced under instance.
func (d *Discovery) handleGoodbye(instance string, now time.Time) {
	instance = strings.ToLower(instance)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.eventsClosed {
		return
	}
	d.goodbyes[instance] = now
	for k, p := range d.peers {
		if p.instance == instance {
			delete(d.peers, k)
			d.logger.Info("peer said goodbye", "station", p.Station, "node", p.Node, "addr", p.Addr)
			d.emitLocked(Event{Type: PeerRemoved, Peer: p.Peer})
		}
	}
}

// expire removes the mDNS peers not seen for Expiry.
func (d *Discovery) expire(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.eventsClosed {
		return
	}
	for k, p := range d.peers {
		if now.Sub(p.LastSeen) >= d.cfg.Expiry {
			delete(d.peers, k)
			d.logger.Info("peer expired", "station", p.Station, "node", p.Node, "addr", p.Addr, "last_seen", p.LastSeen)
			d.emitLocked(Event{Type: PeerRemoved, Peer: p.Peer})
		}
	}
	for inst, t := range d.goodbyes {
		if now.Sub(t) >= goodbyeHold {
			delete(d.goodbyes, inst)
		}
	}
}
