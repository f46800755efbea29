package discovery

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/grandcat/zeroconf"
	"github.com/miekg/dns"
	"github.com/stationsync/stationsync/pki"
)

// helperEnv makes the test binary run one Discovery (helperMain) instead of
// the tests: the namespace test starts it with `ip netns exec`.
const helperEnv = "STATIONSYNC_DISCOVERY_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}

// ---- unit tests ----

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func drain(ch <-chan Event) []Event {
	var out []Event
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, ev)
		default:
			return out
		}
	}
}

func TestStaticPeers(t *testing.T) {
	d := New(Config{
		Station: "XC-IP-01", Node: "pc-1", Port: 4610,
		Static: []string{"192.0.2.12:4610", "pc-3.lan:4610", "192.0.2.12:4610", "192.0.2.11:4610"},
		Logger: testLogger(t),
	})
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := d.Peers()
	want := []string{"192.0.2.11:4610", "192.0.2.12:4610", "pc-3.lan:4610"}
	if len(got) != len(want) {
		t.Fatalf("Peers = %+v, want addrs %v", got, want)
	}
	for i, p := range got {
		if p.Addr != want[i] || p.Source != SourceStatic || p.Station != "" || p.Node != "" || p.Fingerprint != "" || !p.LastSeen.IsZero() {
			t.Errorf("peer %d = %+v, want static %s with no identity", i, p, want[i])
		}
	}
	evs := drain(d.Events())
	if len(evs) != 3 {
		t.Fatalf("events = %+v, want 3 PeerAdded", evs)
	}
	for _, ev := range evs {
		if ev.Type != PeerAdded || ev.Peer.Source != SourceStatic {
			t.Errorf("event %+v, want static PeerAdded", ev)
		}
	}
	if ps := d.PeersOf("XC-IP-01"); len(ps) != 0 {
		t.Errorf("PeersOf returned static peers: %+v", ps)
	}
}

func TestStaticSelfExcluded(t *testing.T) {
	// The same peers: list goes to every PC of a station, so it names this
	// node too: a local IP with our port is us.
	d := New(Config{
		Station: "XC-IP-01", Node: "pc-1", Port: 4610,
		Static: []string{"127.0.0.1:4610", "localhost:4610", "127.0.0.1:4611", "192.0.2.11:4610"},
	})
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var addrs []string
	for _, p := range d.Peers() {
		addrs = append(addrs, p.Addr)
	}
	if fmt.Sprint(addrs) != "[127.0.0.1:4611 192.0.2.11:4610]" {
		t.Fatalf("Peers = %v, want [127.0.0.1:4611 192.0.2.11:4610]", addrs)
	}
}

func entry(instance, station, node string, port int, ips ...string) *zeroconf.ServiceEntry {
	e := zeroconf.NewServiceEntry(instance, Service, Domain)
	e.Port = port
	e.TTL = 3200
	e.Text = []string{"station=" + station, "node=" + node, "v=1", "fp=" + pki.Fingerprint([]byte(node))}
	for _, ip := range ips {
		e.AddrIPv4 = append(e.AddrIPv4, net.ParseIP(ip))
	}
	return e
}

func TestPeersExcludesSelf(t *testing.T) {
	d := New(Config{Station: "XC-IP-01", Node: "pc-1", Port: 4610, Static: []string{"10.0.0.9:4610"}})
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	now := time.Now()
	d.handleEntry(entry("XC-IP-01-pc-1", "XC-IP-01", "pc-1", 4610, "10.0.0.1"), now) // ourselves
	d.handleEntry(entry("XC-IP-01-pc-2", "XC-IP-01", "pc-2", 4610, "10.0.0.2"), now)
	d.handleEntry(entry("XC-IP-02-pc-1", "XC-IP-02", "pc-1", 4610, "10.0.0.3"), now) // other station, same node id
	d.handleEntry(entry("XC-IP-01-pc-3", "XC-IP-01", "pc-3", 4610, "10.0.0.9"), now) // also a static address

	ps := d.Peers()
	var got []string
	for _, p := range ps {
		got = append(got, fmt.Sprintf("%s/%s@%s(%s)", p.Station, p.Node, p.Addr, p.Source))
		if p.Station == "XC-IP-01" && p.Node == "pc-1" {
			t.Errorf("Peers includes this node: %+v", p)
		}
	}
	want := "[XC-IP-01/pc-2@10.0.0.2:4610(mdns) XC-IP-02/pc-1@10.0.0.3:4610(mdns) XC-IP-01/pc-3@10.0.0.9:4610(mdns)]"
	if fmt.Sprint(got) != want {
		t.Fatalf("Peers = %v\nwant     %v", got, want)
	}
	if p := ps[0]; p.Fingerprint != pki.Fingerprint([]byte("pc-2")) || p.Version != "1" || !p.LastSeen.Equal(now) {
		t.Errorf("peer fields = %+v", p)
	}
	of := d.PeersOf("XC-IP-01")
	if len(of) != 2 || of[0].Node != "pc-2" || of[1].Node != "pc-3" {
		t.Errorf("PeersOf(XC-IP-01) = %+v", of)
	}
}

func TestConfigValidation(t *testing.T) {
	base := Config{Station: "XC-IP-01", Node: "pc-1", Port: 4610, MDNS: true}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"unknown interface", func(c *Config) { c.Interfaces = []string{"nosuchif0"} }, `interface "nosuchif0"`},
		{"missing station", func(c *Config) { c.Station = "" }, "station and node are required"},
		{"bad port", func(c *Config) { c.Port = 0 }, "port 0"},
		{"bad static", func(c *Config) { c.Static = []string{"192.0.2.1"} }, `static peer "192.0.2.1"`},
		{"bad static port", func(c *Config) { c.Static = []string{"192.0.2.1:99999"} }, `static peer "192.0.2.1:99999"`},
		{"expiry too short", func(c *Config) { c.BrowseInterval = time.Second; c.Expiry = time.Second }, "expiry"},
		{"bad fingerprint", func(c *Config) { c.Fingerprint = "xyz" }, "fingerprint"},
		{"bad advertise", func(c *Config) { c.AdvertiseIP = "::1" }, "advertise IP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mod(&cfg)
			d := New(cfg)
			err := d.Open()
			defer d.Close()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("loopback is not multicast", func(t *testing.T) {
		lo := loopbackName()
		if lo == "" {
			t.Skip("no loopback interface")
		}
		cfg := base
		cfg.Interfaces = []string{lo}
		d := New(cfg)
		defer d.Close()
		if err := d.Open(); err == nil || !strings.Contains(err.Error(), strconv.Quote(lo)) {
			t.Fatalf("Open() = %v, want an error naming %q", err, lo)
		}
	})
}

func loopbackName() string {
	ifs, _ := net.Interfaces()
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 && ifi.Flags&net.FlagMulticast == 0 {
			return ifi.Name
		}
	}
	return ""
}

func TestOpenCloseLifecycle(t *testing.T) {
	d := New(Config{Station: "s", Node: "n", Port: 1})
	if err := d.Close(); err != nil { // never opened
		t.Fatal(err)
	}
	if err := d.Close(); err != nil { // twice
		t.Fatal(err)
	}
	if err := d.Open(); err == nil {
		t.Fatal("Open after Close succeeded")
	}
	if _, ok := <-d.Events(); ok {
		t.Fatal("Events not closed by Close")
	}

	d = New(Config{Station: "s", Node: "n", Port: 1})
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	if err := d.Open(); err == nil {
		t.Fatal("second Open succeeded")
	}
	d.Close()
	d.handleEntry(entry("s-m", "s", "m", 1, "10.0.0.1"), time.Now()) // late entry: no panic
}

func TestPickIPv4(t *testing.T) {
	_, lan, _ := net.ParseCIDR("192.168.10.0/24")
	nets := []*net.IPNet{lan}
	ips := func(ss ...string) []net.IP {
		var out []net.IP
		for _, s := range ss {
			out = append(out, net.ParseIP(s))
		}
		return out
	}
	cases := []struct {
		in   []net.IP
		want string
	}{
		{ips("172.17.0.1", "192.168.10.7"), "192.168.10.7"},             // same subnet wins
		{ips("169.254.3.4", "10.1.2.3"), "10.1.2.3"},                    // routable over link-local
		{ips("127.0.0.1", "169.254.3.4"), "169.254.3.4"},                // loopback last
		{ips("10.1.2.3", "10.9.9.9"), "10.1.2.3"},                       // announced order
		{ips("fe80::1", "2001:db8::1"), "<nil>"},                        // no IPv4
		{ips("0.0.0.0", "224.0.0.251", "192.168.10.8"), "192.168.10.8"}, // unusable skipped
	}
	for _, tc := range cases {
		if got := pickIPv4(tc.in, nets).String(); got != tc.want {
			t.Errorf("pickIPv4(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestUpdateGoodbyeExpiry(t *testing.T) {
	d := New(Config{Station: "st", Node: "a", Port: 4610, Expiry: 10 * time.Second})
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	t0 := time.Now()
	d.handleEntry(entry("st-b", "st", "b", 4610, "10.0.0.2"), t0)
	d.handleEntry(entry("st-b", "st", "b", 4610, "10.0.0.2"), t0.Add(time.Second)) // refresh only
	d.handleEntry(entry("st-b", "st", "b", 4610, "10.0.0.5"), t0.Add(2*time.Second))
	e := entry("st-b", "st", "b", 4610, "10.0.0.5")
	e.Text[3] = "fp=" + pki.Fingerprint([]byte("new cert"))
	d.handleEntry(e, t0.Add(3*time.Second))
	evs := drain(d.Events())
	if len(evs) != 3 || evs[0].Type != PeerAdded || evs[1].Type != PeerUpdated || evs[1].Peer.Addr != "10.0.0.5:4610" ||
		evs[2].Type != PeerUpdated || evs[2].Peer.Fingerprint != pki.Fingerprint([]byte("new cert")) {
		t.Fatalf("events = %+v, want added, updated(addr), updated(fp)", evs)
	}

	// A goodbye as zeroconf's Server.Shutdown sends it.
	pkt := goodbyePacket(t, "st-b")
	insts := goodbyeInstances(pkt)
	if fmt.Sprint(insts) != "[st-b]" {
		t.Fatalf("goodbyeInstances = %v, want [st-b]", insts)
	}
	now := time.Now()
	d.handleGoodbye(insts[0], now)
	evs = drain(d.Events())
	if len(evs) != 1 || evs[0].Type != PeerRemoved || evs[0].Peer.Node != "b" || len(d.Peers()) != 0 {
		t.Fatalf("after goodbye: events %+v, peers %+v", evs, d.Peers())
	}
	// A packet in flight from before the goodbye does not bring it back...
	d.handleEntry(entry("st-b", "st", "b", 4610, "10.0.0.5"), now.Add(goodbyeHold/2))
	if len(d.Peers()) != 0 {
		t.Fatal("peer came back within the goodbye hold")
	}
	// ...a later announcement does.
	d.handleEntry(entry("st-b", "st", "b", 4610, "10.0.0.5"), now.Add(goodbyeHold+time.Millisecond))
	if len(d.Peers()) != 1 {
		t.Fatal("peer did not come back after the goodbye hold")
	}
	// Expiry.
	d.expire(now.Add(goodbyeHold + 9*time.Second))
	if len(d.Peers()) != 1 {
		t.Fatal("expired too early")
	}
	d.expire(now.Add(goodbyeHold + 11*time.Second))
	evs = drain(d.Events())
	if len(d.Peers()) != 0 || len(evs) != 2 || evs[1].Type != PeerRemoved {
		t.Fatalf("after expiry: events %+v, peers %+v", evs, d.Peers())
	}

	// Not goodbyes: a live announcement, another service, a query.
	live := goodbyePacket(t, "st-b")
	var m dns.Msg
	m.Unpack(live)
	for _, rr := range m.Answer {
		rr.Header().Ttl = 120
	}
	live, _ = m.Pack()
	if got := goodbyeInstances(live); len(got) != 0 {
		t.Errorf("live announcement read as goodbye: %v", got)
	}
	q := new(dns.Msg)
	q.SetQuestion(Service+"."+Domain, dns.TypePTR)
	qb, _ := q.Pack()
	if got := goodbyeInstances(qb); len(got) != 0 {
		t.Errorf("query read as goodbye: %v", got)
	}
}

func goodbyePacket(t *testing.T, instance string) []byte {
	t.Helper()
	svc := Service + "." + Domain
	inst := instance + "." + svc
	m := new(dns.Msg)
	m.Response = true
	m.Answer = []dns.RR{
		&dns.SRV{Hdr: dns.RR_Header{Name: inst, Rrtype: dns.TypeSRV, Class: dns.ClassINET | 1<<15}, Port: 4610, Target: "h.local."},
		&dns.TXT{Hdr: dns.RR_Header{Name: inst, Rrtype: dns.TypeTXT, Class: dns.ClassINET | 1<<15}, Txt: []string{"node=b"}},
		&dns.PTR{Hdr: dns.RR_Header{Name: svc, Rrtype: dns.TypePTR, Class: dns.ClassINET}, Ptr: inst},
		&dns.PTR{Hdr: dns.RR_Header{Name: "_other._tcp.local.", Rrtype: dns.TypePTR, Class: dns.ClassINET}, Ptr: "x._other._tcp.local."},
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEventsDropOldest(t *testing.T) {
	d := New(Config{Station: "st", Node: "a", Port: 4610})
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	n := EventBuffer + 10
	now := time.Now()
	for i := range n {
		d.handleEntry(entry(fmt.Sprintf("st-n%d", i), "st", fmt.Sprintf("n%d", i), 4610, fmt.Sprintf("10.0.%d.%d", i/200, i%200+1)), now)
	}
	evs := drain(d.Events())
	if len(evs) != EventBuffer {
		t.Fatalf("got %d events, want the buffer (%d)", len(evs), EventBuffer)
	}
	if evs[0].Peer.Node != "n10" || evs[len(evs)-1].Peer.Node != fmt.Sprintf("n%d", n-1) {
		t.Fatalf("kept %s..%s, want the newest n10..n%d", evs[0].Peer.Node, evs[len(evs)-1].Peer.Node, n-1)
	}
	if len(d.Peers()) != n {
		t.Fatalf("Peers has %d, want %d: dropping events must not lose peers", len(d.Peers()), n)
	}
}

func TestNames(t *testing.T) {
	if got := instanceName("XC.IP.01", "pc-1"); got != "XC_IP_01-pc-1" {
		t.Errorf("instanceName = %q", got)
	}
	long := strings.Repeat("s", 64)
	a, b := instanceName(long, "node-1"), instanceName(long, "node-2")
	if len(a) > 63 || a == b {
		t.Errorf("long instance names %q, %q: want distinct, <= 63 bytes", a, b)
	}
	h := hostName("XC.IP.01", "PC 1")
	if !strings.HasPrefix(h, "stationsync-xc-ip-01-pc-1-") || strings.Contains(h, ".") {
		t.Errorf("hostName = %q", h)
	}
	if l := hostName(long, long); len(l) > 63 {
		t.Errorf("hostName of long ids is longer than a DNS label: %q", l)
	}
	if isVirtual("eth0") || !isVirtual("docker0") || !isVirtual("VirtualBox Host-Only Network") {
		t.Error("isVirtual")
	}
}

// ---- real mDNS between two network namespaces ----

// helperMsg is one JSON line a helper prints.
type helperMsg struct {
	Type    string `json:"type"` // ready, event, closed, error
	Event   string `json:"event,omitempty"`
	Peer    Peer   `json:"peer"`
	Peers   []Peer `json:"peers,omitempty"`
	Err     string `json:"err,omitempty"`
	CloseMS int64  `json:"close_ms,omitempty"`
}

// helperMain runs one Discovery configured from the environment and prints
// its events as JSON lines until SIGTERM (Close, then exit) or SIGKILL.
func helperMain() int {
	enc := json.NewEncoder(os.Stdout)
	ms := func(k string) time.Duration {
		n, _ := strconv.Atoi(os.Getenv(k))
		return time.Duration(n) * time.Millisecond
	}
	port, _ := strconv.Atoi(os.Getenv("SSD_PORT"))
	cfg := Config{
		Station:        os.Getenv("SSD_STATION"),
		Node:           os.Getenv("SSD_NODE"),
		Port:           port,
		Fingerprint:    pki.Fingerprint([]byte("cert " + os.Getenv("SSD_NODE"))),
		MDNS:           true,
		BrowseInterval: ms("SSD_INTERVAL_MS"),
		Expiry:         ms("SSD_EXPIRY_MS"),
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if ifc := os.Getenv("SSD_IFACE"); ifc != "" {
		cfg.Interfaces = []string{ifc}
	}
	if n, _ := strconv.Atoi(os.Getenv("SSD_CHURN")); n > 0 {
		// Open and Close at once, repeatedly: Close racing zeroconf's
		// start-up goroutines must neither hang nor race.
		for i := range n {
			d := New(cfg)
			if err := d.Open(); err != nil {
				enc.Encode(helperMsg{Type: "error", Err: err.Error()})
				return 1
			}
			if i%2 == 1 {
				time.Sleep(time.Duration(i) * time.Millisecond)
			}
			start := time.Now()
			if err := d.Close(); err != nil {
				enc.Encode(helperMsg{Type: "error", Err: err.Error()})
				return 1
			}
			enc.Encode(helperMsg{Type: "closed", CloseMS: time.Since(start).Milliseconds()})
		}
		return 0
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	d := New(cfg)
	if err := d.Open(); err != nil {
		enc.Encode(helperMsg{Type: "error", Err: err.Error()})
		return 1
	}
	enc.Encode(helperMsg{Type: "ready"})
	watchdog := time.After(90 * time.Second) // never outlive a crashed test
	for {
		select {
		case ev := <-d.Events():
			enc.Encode(helperMsg{Type: "event", Event: ev.Type.String(), Peer: ev.Peer, Peers: d.Peers()})
		case <-sig:
			start := time.Now()
			err := d.Close()
			m := helperMsg{Type: "closed", CloseMS: time.Since(start).Milliseconds()}
			if err != nil {
				m.Err = err.Error()
			}
			enc.Encode(m)
			return 0
		case <-watchdog:
			d.Close()
			return 2
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type helper struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	msgs   chan helperMsg
	stderr *syncBuffer
	exited chan struct{}
	err    error
}

func startHelper(t *testing.T, ns, node string, port int, iface string, interval, expiry time.Duration, extraEnv ...string) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe)
	cmd.Env = append(os.Environ(),
		helperEnv+"=1",
		"SSD_STATION=XC-IP-01",
		"SSD_NODE="+node,
		"SSD_PORT="+strconv.Itoa(port),
		"SSD_IFACE="+iface,
		"SSD_INTERVAL_MS="+strconv.Itoa(int(interval.Milliseconds())),
		"SSD_EXPIRY_MS="+strconv.Itoa(int(expiry.Milliseconds())),
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	h := &helper{t: t, name: node, cmd: cmd, msgs: make(chan helperMsg, 1024), stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = h.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %s: %v", node, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m helperMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = helperMsg{Type: "garbage", Err: sc.Text()}
			}
			h.msgs <- m
		}
		h.err = cmd.Wait()
		close(h.msgs)
		close(h.exited)
	}()
	t.Cleanup(func() { // SSD_DEBUG=1 prints the helpers' logs even on success
		select {
		case <-h.exited:
		default:
			cmd.Process.Kill()
			<-h.exited
		}
		if t.Failed() || os.Getenv("SSD_DEBUG") != "" {
			t.Logf("---- stderr of helper %s ----\n%s", node, h.stderr.String())
		}
	})
	if len(extraEnv) == 0 {
		h.await("ready", 10*time.Second, func(m helperMsg) bool { return m.Type == "ready" })
	}
	return h
}

// await returns the first message matching ok, failing the test after
// timeout (or if the helper exits first).
func (h *helper) await(what string, timeout time.Duration, ok func(helperMsg) bool) helperMsg {
	h.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, open := <-h.msgs:
			if !open {
				h.t.Fatalf("helper %s exited (%v) while waiting for %s", h.name, h.err, what)
			}
			if m.Type == "error" || m.Type == "garbage" {
				h.t.Fatalf("helper %s: %s: %s", h.name, m.Type, m.Err)
			}
			if ok(m) {
				return m
			}
		case <-deadline:
			h.t.Fatalf("helper %s: no %s within %v", h.name, what, timeout)
		}
	}
}

func (h *helper) signal(s os.Signal) {
	h.t.Helper()
	if err := h.cmd.Process.Signal(s); err != nil {
		h.t.Fatalf("signal %s: %v", h.name, err)
	}
}

// stop sends SIGTERM and checks the helper closed cleanly and quickly.
func (h *helper) stop() {
	h.t.Helper()
	h.signal(syscall.SIGTERM)
	h.awaitClosed()
}

func (h *helper) awaitClosed() {
	h.t.Helper()
	m := h.await("closed", 10*time.Second, func(m helperMsg) bool { return m.Type == "closed" })
	if m.Err != "" || m.CloseMS > 5000 {
		h.t.Errorf("helper %s: Close took %dms, error %q", h.name, m.CloseMS, m.Err)
	}
	h.t.Logf("helper %s: Close took %dms", h.name, m.CloseMS)
	select {
	case <-h.exited:
	case <-time.After(5 * time.Second):
		h.t.Fatalf("helper %s did not exit after Close", h.name)
	}
	if h.err != nil {
		h.t.Errorf("helper %s exited with %v", h.name, h.err)
	}
	if strings.Contains(h.stderr.String(), "DATA RACE") {
		h.t.Errorf("helper %s: data race reported", h.name)
	}
}

func isEvent(typ, node string) func(helperMsg) bool {
	return func(m helperMsg) bool { return m.Type == "event" && m.Event == typ && m.Peer.Node == node }
}

func checkPeer(t *testing.T, who string, m helperMsg, node, addr string) {
	t.Helper()
	p := m.Peer
	if p.Station != "XC-IP-01" || p.Node != node || p.Addr != addr || p.Source != SourceMDNS ||
		p.Fingerprint != pki.Fingerprint([]byte("cert "+node)) || p.Version != ProtocolVersion || p.LastSeen.IsZero() {
		t.Errorf("%s saw %+v, want XC-IP-01/%s at %s with its fingerprint", who, p, node, addr)
	}
	for _, q := range m.Peers {
		if q.Node == who {
			t.Errorf("%s's Peers includes itself: %+v", who, m.Peers)
		}
	}
}

// netLab is a hub namespace with a bridge and two namespaces a and b, each
// with a veth "lan0" into the bridge: 10.213.0.1/24 in a, 10.213.0.2/24 in
// b. Nothing is added to the root namespace.
type netLab struct{ hub, a, b string }

const nsPrefix = "ssdisc-"

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func newNetLab(t *testing.T) *netLab {
	t.Helper()
	pid := os.Getpid()
	lab := &netLab{
		hub: fmt.Sprintf("%shub-%d", nsPrefix, pid),
		a:   fmt.Sprintf("%sa-%d", nsPrefix, pid),
		b:   fmt.Sprintf("%sb-%d", nsPrefix, pid),
	}
	removeStaleNamespaces(t, pid)
	t.Cleanup(lab.remove)
	steps := [][]string{
		{"netns", "add", lab.hub},
		{"netns", "add", lab.a},
		{"netns", "add", lab.b},
		{"-n", lab.hub, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "mcast_snooping", "0"},
		{"-n", lab.hub, "link", "set", "br0", "up"},
	}
	for _, side := range []struct{ ns, port, cidr string }{{lab.a, "pa", "10.213.0.1/24"}, {lab.b, "pb", "10.213.0.2/24"}} {
		steps = append(steps,
			[]string{"-n", side.ns, "link", "add", "lan0", "type", "veth", "peer", "name", side.port, "netns", lab.hub},
			[]string{"-n", lab.hub, "link", "set", side.port, "master", "br0"},
			[]string{"-n", lab.hub, "link", "set", side.port, "up"},
			[]string{"-n", side.ns, "addr", "add", side.cidr, "dev", "lan0"},
			[]string{"-n", side.ns, "link", "set", "lan0", "up"},
			[]string{"-n", side.ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Fatalf("setting up network namespaces (root with iproute2 is assumed): %v", err)
		}
	}
	return lab
}

func (l *netLab) remove() {
	for _, ns := range []string{l.a, l.b, l.hub} {
		ipCmd("netns", "del", ns) // deleting a namespace deletes its veths
	}
}

// removeStaleNamespaces deletes namespaces of this test left by runs whose
// process is gone (or that had our pid).
func removeStaleNamespaces(t *testing.T, pid int) {
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, nsPrefix) {
			continue
		}
		i := strings.LastIndexByte(name, '-')
		owner, err := strconv.Atoi(name[i+1:])
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(owner))); owner == pid || err != nil {
			t.Logf("removing stale namespace %s", name)
			ipCmd("netns", "del", name)
		}
	}
}

func TestMDNSBetweenNamespaces(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("network namespaces are Linux only")
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) not installed")
	}
	lab := newNetLab(t)
	const (
		addrA = "10.213.0.1:4610"
		addrB = "10.213.0.2:4611"
	)

	// Phase 0: Open+Close in a tight loop (zeroconf starts goroutines that
	// Shutdown must not race with or wait for forever).
	churn := startHelper(t, lab.a, "pc-9", 4619, "", time.Second, 30*time.Second, "SSD_CHURN=10")
	for range 10 {
		churn.awaitClosed()
	}
	select {
	case <-churn.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("churn helper did not exit")
	}
	if churn.err != nil || strings.Contains(churn.stderr.String(), "DATA RACE") {
		t.Fatalf("churn helper: %v\n%s", churn.err, churn.stderr.String())
	}

	// Phase 1: both see each other. a names its interface, b takes the
	// default selection. Expiry is long, so a quick removal below can only
	// come from the goodbye.
	start := time.Now()
	a := startHelper(t, lab.a, "pc-1", 4610, "lan0", time.Second, 30*time.Second)
	b := startHelper(t, lab.b, "pc-2", 4611, "", time.Second, 30*time.Second)
	checkPeer(t, "pc-1", a.await("pc-1 sees pc-2", 10*time.Second, isEvent("added", "pc-2")), "pc-2", addrB)
	checkPeer(t, "pc-2", b.await("pc-2 sees pc-1", 10*time.Second, isEvent("added", "pc-1")), "pc-1", addrA)
	t.Logf("peers found each other in %v", time.Since(start).Round(time.Millisecond))

	// Phase 2: SIGTERM -> Close -> goodbye -> removed at once.
	start = time.Now()
	b.signal(syscall.SIGTERM)
	a.await("goodbye of pc-2", 3*time.Second, isEvent("removed", "pc-2"))
	t.Logf("goodbye removed pc-2 in %v", time.Since(start).Round(time.Millisecond))
	b.awaitClosed()
	a.stop()

	// Phase 3: SIGKILL -> no goodbye -> removed after the short expiry.
	a = startHelper(t, lab.a, "pc-1", 4610, "lan0", 500*time.Millisecond, 2*time.Second)
	b = startHelper(t, lab.b, "pc-2", 4611, "", 500*time.Millisecond, 2*time.Second)
	checkPeer(t, "pc-1", a.await("pc-1 sees pc-2 again", 10*time.Second, isEvent("added", "pc-2")), "pc-2", addrB)
	start = time.Now()
	b.signal(syscall.SIGKILL)
	a.await("expiry of pc-2", 10*time.Second, isEvent("removed", "pc-2"))
	t.Logf("expiry removed pc-2 in %v", time.Since(start).Round(time.Millisecond))

	// Phase 4: the network goes away under a running node: Close must not
	// hang.
	if err := ipCmd("-n", lab.a, "link", "del", "lan0"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	a.stop()
}
