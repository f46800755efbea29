package daemon

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/replication/transport"
)

// doctorEnv is a district CA and the certificates and configs of a test.
type doctorEnv struct {
	dir string
	ca  string
}

func newDoctorEnv(t *testing.T) *doctorEnv {
	t.Helper()
	e := &doctorEnv{dir: t.TempDir()}
	e.ca = filepath.Join(e.dir, "ca")
	if err := pki.InitCA(e.ca); err != nil {
		t.Fatal(err)
	}
	return e
}

// issue writes ca.crt, node.crt and node.key for station/node into a
// folder of its own and returns it.
func (e *doctorEnv) issue(t *testing.T, station, node string, validity time.Duration) string {
	t.Helper()
	out := filepath.Join(e.dir, "certs-"+station+"-"+node)
	if err := pki.Issue(e.ca, pki.Identity{Role: pki.RoleStation, Station: station, Node: node}, out, validity); err != nil {
		t.Fatal(err)
	}
	return out
}

// config writes a healthy one-node config for node of XC-IP-01 (its own
// certificate, data dir, free QUIC and API ports on loopback, mDNS off)
// with overrides (YAML values by key; "" removes a key) and returns its
// path.
func (e *doctorEnv) config(t *testing.T, node string, overrides map[string]string) string {
	t.Helper()
	certs := filepath.Join(e.dir, "certs-XC-IP-01-"+node)
	if _, err := os.Stat(certs); err != nil {
		certs = e.issue(t, "XC-IP-01", node, 0)
	}
	keys := map[string]string{
		"station_id": "XC-IP-01",
		"node_id":    node,
		"data_dir":   filepath.Join(e.dir, "data-"+node),
		"listen":     fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t)),
		"api":        fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)),
		"mdns":       "false",
		"tls":        fmt.Sprintf("{ca: %q, cert: %q, key: %q}", filepath.Join(certs, "ca.crt"), filepath.Join(certs, "node.crt"), filepath.Join(certs, "node.key")),
	}
	for k, v := range overrides {
		if v == "" {
			delete(keys, k)
		} else {
			keys[k] = v
		}
	}
	var b strings.Builder
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "%s: %s\n", k, keys[k])
	}
	p := filepath.Join(e.dir, fmt.Sprintf("%s-%d.yaml", node, time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var doctorLine = regexp.MustCompile(`^(OK  |WARN|FAIL)  (config|data dir|QUIC port|certificates|multicast|peers|(multicast|peer|center|station) \S.*?): \S.*$`)

// runDoctor runs Doctor on path and checks the output format: one line
// per finding, each `LEVEL  check: finding [— hint]`.
func runDoctor(t *testing.T, path string, opts DoctorOptions) (DoctorReport, string) {
	t.Helper()
	if opts.PeerTimeout == 0 {
		opts.PeerTimeout = 2 * time.Second
	}
	if opts.MulticastWait == 0 {
		opts.MulticastWait = 300 * time.Millisecond
	}
	var out bytes.Buffer
	rep, err := Doctor(context.Background(), path, &out, opts)
	if err != nil {
		t.Fatalf("Doctor: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(rep.Findings) {
		t.Fatalf("%d lines for %d findings:\n%s", len(lines), len(rep.Findings), out.String())
	}
	for i, l := range lines {
		if !doctorLine.MatchString(l) || l != rep.Findings[i].String() {
			t.Errorf("line %q is not `LEVEL  check: finding` (finding %+v)", l, rep.Findings[i])
		}
	}
	if rep.OK() != (rep.Err() == nil) {
		t.Errorf("OK %v but Err %v", rep.OK(), rep.Err())
	}
	t.Logf("doctor %s:\n%s", filepath.Base(path), out.String())
	return rep, out.String()
}

// one returns the single finding of check, failing the test if there is
// not exactly one.
func one(t *testing.T, rep DoctorReport, check string) DoctorFinding {
	t.Helper()
	fs := rep.Find(check)
	if len(fs) != 1 {
		t.Fatalf("%d findings for %q: %+v", len(fs), check, rep.Findings)
	}
	return fs[0]
}

func wantLevel(t *testing.T, f DoctorFinding, level DoctorLevel, contains ...string) {
	t.Helper()
	if f.Level != level {
		t.Errorf("%s: level %s, want %s: %s", f.Check, f.Level, level, f)
	}
	for _, s := range contains {
		if !strings.Contains(f.String(), s) {
			t.Errorf("%s: %q does not say %q", f.Check, f, s)
		}
	}
}

// checkOrder verifies the checks come in the documented order.
func checkOrder(t *testing.T, rep DoctorReport) {
	t.Helper()
	order := []string{"config", "data dir", "QUIC port", "certificates", "multicast", "peers", "peer", "center", "station"}
	rank := func(check string) int {
		for i, o := range order {
			if check == o || strings.HasPrefix(check, o+" ") {
				if i > 5 {
					return 5 // peers, peer, center, station: the last check
				}
				return i
			}
		}
		t.Fatalf("unknown check %q", check)
		return 0
	}
	last := -1
	for _, f := range rep.Findings {
		r := rank(f.Check)
		if r < last {
			t.Errorf("check %q after a later one: %+v", f.Check, rep.Findings)
		}
		last = r
	}
}

// startDoctorNode runs the node of config path in-process until the test
// ends.
func startDoctorNode(t *testing.T, path string) *Daemon {
	t.Helper()
	cfg, err := LoadConfig(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return openUntilLeader(t, New(cfg, slog.New(slog.DiscardHandler)))
}

// TestDoctorHealthy: a running node (pc-1) and a second PC (pc-2) that
// lists it and itself under peers, with mDNS on: every check OK or WARN,
// the port check recognizes the running node, the peer check measures the
// round trip and compares the clocks over the real info probe.
func TestDoctorHealthy(t *testing.T) {
	e := newDoctorEnv(t)
	pc1 := e.config(t, "pc-1", map[string]string{"mdns": "true"})
	d := startDoctorNode(t, pc1)
	pc1Addr := d.tr.AdvertiseAddr()

	// The node's own config while it runs.
	rep, _ := runDoctor(t, pc1, DoctorOptions{})
	if !rep.OK() {
		t.Fatalf("running node's config failed: %v", rep.Err())
	}
	checkOrder(t, rep)
	wantLevel(t, one(t, rep, "config"), DoctorOK, "station XC-IP-01, node pc-1")
	wantLevel(t, one(t, rep, "data dir"), DoctorOK, "writable", "free")
	wantLevel(t, one(t, rep, "QUIC port"), DoctorOK, "in use by the running node (pc-1, raft leader)")
	wantLevel(t, one(t, rep, "certificates"), DoctorOK, "station XC-IP-01 node pc-1, valid until", "days left")
	wantLevel(t, one(t, rep, "peers"), DoctorOK, "no static peers")

	// A second PC, not running yet: its own address in peers is skipped.
	pc2Listen := fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	pc2 := e.config(t, "pc-2", map[string]string{
		"listen": pc2Listen,
		"peers":  fmt.Sprintf("[%s, %s]", pc1Addr, pc2Listen),
		"expect": "2",
		"mdns":   "true",
	})
	rep, _ = runDoctor(t, pc2, DoctorOptions{})
	if !rep.OK() {
		t.Fatalf("healthy config failed: %v", rep.Err())
	}
	checkOrder(t, rep)
	wantLevel(t, one(t, rep, "data dir"), DoctorOK, "does not exist yet")
	wantLevel(t, one(t, rep, "QUIC port"), DoctorOK, "is free")
	wantLevel(t, one(t, rep, "peer "+pc2Listen), DoctorOK, "own address", "skipped")
	wantLevel(t, one(t, rep, "peer "+pc1Addr), DoctorOK, "pc-1 reachable", "round trip", "clock offset")
	// mDNS: where multicast works here (an interface got its probe
	// back), pc-1, running with mdns on, answers pc-2's probe. Where it
	// does not (no interface, a sandbox), that is a WARN, never a FAIL.
	for attempt := 1; ; attempt++ {
		ms := rep.Find("multicast")
		if len(ms) == 0 {
			t.Fatal("no multicast finding with mdns on")
		}
		echoed, answered := false, false
		for _, f := range ms {
			if f.Level == DoctorFail {
				t.Errorf("multicast FAILed without mdns_interfaces: %s", f)
			}
			if f.Level == DoctorOK {
				echoed = true
				answered = answered || strings.Contains(f.Message, "answered by pc-1")
			}
		}
		if !echoed {
			t.Logf("multicast does not work here: %+v", ms)
			break
		}
		if answered {
			break
		}
		if attempt == 3 {
			t.Errorf("pc-1 (mdns on) did not answer pc-2's mDNS probe: %+v", ms)
			break
		}
		time.Sleep(time.Second) // pc-1 may not have registered yet
		rep, _ = runDoctor(t, pc2, DoctorOptions{MulticastWait: time.Second})
	}
}

// WARNs do not fail the run: a certificate with under 30 days left, a
// world-writable data dir, mDNS off without peers for a multi-PC station.
func TestDoctorWarnings(t *testing.T) {
	e := newDoctorEnv(t)
	e.issue(t, "XC-IP-01", "pc-1", 10*24*time.Hour)
	data := filepath.Join(e.dir, "shared-data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(data, 0o777); err != nil {
		t.Fatal(err)
	}
	rep, _ := runDoctor(t, e.config(t, "pc-1", map[string]string{"data_dir": data, "expect": "3"}), DoctorOptions{})
	wantLevel(t, one(t, rep, "certificates"), DoctorWarn, "expires on", "days left", "renew")
	if runtime.GOOS != "windows" {
		wantLevel(t, one(t, rep, "data dir"), DoctorWarn, "writable, also by every user (mode 0777)", "chmod 700")
	}
	wantLevel(t, one(t, rep, "multicast"), DoctorWarn, "mdns is off and peers: is empty")
	if !rep.OK() {
		t.Fatal(rep.Err())
	}
}

// Each FAIL path once.
func TestDoctorFailures(t *testing.T) {
	e := newDoctorEnv(t)
	e.issue(t, "XC-IP-01", "pc-1", 0) // before the parallel subtests use it

	t.Run("config key", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			override map[string]string
			key      string
		}{
			{map[string]string{"expect": "three"}, `key "expect"`},
			{map[string]string{"exepct": "3"}, `key "exepct"`},
			{map[string]string{"outbox_after": "10s"}, `key "outbox_after"`},
		} {
			rep, _ := runDoctor(t, e.config(t, "pc-1", c.override), DoctorOptions{})
			if len(rep.Findings) != 1 {
				t.Errorf("checks ran after a config failure: %+v", rep.Findings)
			}
			wantLevel(t, one(t, rep, "config"), DoctorFail, c.key)
			if err := rep.Err(); err == nil || !strings.Contains(err.Error(), "config") {
				t.Errorf("Err %v", err)
			}
		}
		// A flag override is named as such.
		rep, _ := runDoctor(t, e.config(t, "pc-1", nil), DoctorOptions{Set: map[string]string{"expect": "x"}})
		wantLevel(t, one(t, rep, "config"), DoctorFail, `flag: key "expect"`)
	})

	t.Run("data dir", func(t *testing.T) {
		t.Parallel()
		// Root can write anywhere: a regular file where a parent folder
		// should be makes the data dir impossible for anyone.
		file := filepath.Join(e.dir, "not-a-folder")
		if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		rep, _ := runDoctor(t, e.config(t, "pc-1", map[string]string{"data_dir": filepath.Join(file, "data")}), DoctorOptions{})
		wantLevel(t, one(t, rep, "data dir"), DoctorFail, "cannot be created", "not-a-folder is a file")
		rep, _ = runDoctor(t, e.config(t, "pc-1", map[string]string{"data_dir": file}), DoctorOptions{})
		wantLevel(t, one(t, rep, "data dir"), DoctorFail, "is a file, not a folder")
		if got := rep.Failed(); !slices.Equal(got, []string{"data dir"}) {
			t.Errorf("failed %v, want only the data dir", got)
		}
	})

	t.Run("QUIC port taken", func(t *testing.T) {
		t.Parallel()
		other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		rep, _ := runDoctor(t, e.config(t, "pc-1", map[string]string{"listen": other.LocalAddr().String()}), DoctorOptions{})
		wantLevel(t, one(t, rep, "QUIC port"), DoctorFail, "taken by another program", "does not answer")
		if !strings.Contains(rep.Err().Error(), "QUIC port") {
			t.Errorf("Err %v", rep.Err())
		}
	})

	t.Run("certificate expired", func(t *testing.T) {
		t.Parallel()
		certs := e.issue(t, "XC-IP-01", "pc-7", time.Millisecond)
		leaf, err := doctorReadLeaf(filepath.Join(certs, "node.crt"))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(leaf.NotAfter) + 10*time.Millisecond)
		rep, _ := runDoctor(t, e.config(t, "pc-7", nil), DoctorOptions{})
		wantLevel(t, one(t, rep, "certificates"), DoctorFail, "expired on", "ago", "ca issue")
	})

	t.Run("certificate of another node", func(t *testing.T) {
		t.Parallel()
		p := e.config(t, "pc-1", map[string]string{"node_id": "pc-9"})
		rep, _ := runDoctor(t, p, DoctorOptions{})
		wantLevel(t, one(t, rep, "certificates"), DoctorFail, "names station XC-IP-01/pc-1", "node pc-9")
	})

	t.Run("mdns interface", func(t *testing.T) {
		t.Parallel()
		p := e.config(t, "pc-1", map[string]string{"mdns": "true", "mdns_interfaces": "[no-such-if0]"})
		rep, _ := runDoctor(t, p, DoctorOptions{})
		wantLevel(t, one(t, rep, "multicast no-such-if0"), DoctorFail, "no such interface")
	})

	t.Run("peer of another station", func(t *testing.T) {
		t.Parallel()
		tr := doctorFakePeer(t, e.issue(t, "XC-OTHER", "pc-1", 0), nil)
		addr := tr.AdvertiseAddr()
		rep, _ := runDoctor(t, e.config(t, "pc-1", map[string]string{"peers": "[" + addr + "]"}), DoctorOptions{})
		wantLevel(t, one(t, rep, "peer "+addr), DoctorFail, "handshake refused", `station "XC-OTHER"`)
	})

	t.Run("center that is not the center", func(t *testing.T) {
		t.Parallel()
		tr := doctorFakePeer(t, e.issue(t, "XC-IP-01", "pc-8", 0), nil)
		addr := tr.AdvertiseAddr()
		rep, _ := runDoctor(t, e.config(t, "pc-1", map[string]string{"center": addr}), DoctorOptions{})
		wantLevel(t, one(t, rep, "center "+addr), DoctorFail, "not as the center")
	})
}

// doctorFakePeer is a bare QUIC transport with the certificate in certs
// that answers rpc streams with answer (nil: no handler).
func doctorFakePeer(t *testing.T, certs string, answer func() any) *transport.Transport {
	t.Helper()
	tl, err := pki.LoadTLS(filepath.Join(certs, "ca.crt"), filepath.Join(certs, "node.crt"), filepath.Join(certs, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.New(transport.Config{Listen: "127.0.0.1:0", TLS: tl, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if answer != nil {
		tr.Handle(transport.KindRPC, func(c net.Conn, _ pki.Identity) {
			defer c.Close()
			var hdr [4]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return
			}
			req := make([]byte, binary.BigEndian.Uint32(hdr[:]))
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			b, _ := json.Marshal(answer())
			c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
		})
	}
	if err := tr.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// Clock skew against a peer is a WARN, and so is a peer that does not
// answer: neither fails the run.
func TestDoctorClockSkewAndUnreachable(t *testing.T) {
	e := newDoctorEnv(t)
	skewed := doctorFakePeer(t, e.issue(t, "XC-IP-01", "pc-3", 0), func() any {
		return map[string]any{"v": 1, "info": map[string]any{"node": "pc-3", "unix_milli": time.Now().Add(-time.Minute).UnixMilli()}}
	})
	starting := doctorFakePeer(t, e.issue(t, "XC-IP-01", "pc-4", 0), func() any {
		return map[string]any{"v": 1, "code": "starting", "error": "node is starting"}
	})
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	peers := []string{skewed.AdvertiseAddr(), starting.AdvertiseAddr(), silent.LocalAddr().String()}
	p := e.config(t, "pc-2", map[string]string{"peers": "[" + strings.Join(peers, ", ") + "]", "max_clock_skew": "2s"})
	start := time.Now()
	rep, _ := runDoctor(t, p, DoctorOptions{PeerTimeout: time.Second})
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("doctor took %s: peers are not probed in parallel within the timeout", el)
	}
	wantLevel(t, one(t, rep, "peer "+peers[0]), DoctorWarn, "pc-3 reachable", "60.0s behind", "max_clock_skew 2s")
	wantLevel(t, one(t, rep, "peer "+peers[1]), DoctorOK, "pc-4 reachable", "starting", "clock not compared")
	wantLevel(t, one(t, rep, "peer "+peers[2]), DoctorWarn, "no answer within 1s")
	if !rep.OK() {
		t.Fatalf("WARNs failed the run: %v", rep.Err())
	}
}

func TestDoctorSpaceLevelAndLine(t *testing.T) {
	for _, c := range []struct {
		free uint64
		want DoctorLevel
	}{
		{0, DoctorFail}, {100<<20 - 1, DoctorFail}, {100 << 20, DoctorWarn}, {1<<30 - 1, DoctorWarn}, {1 << 30, DoctorOK}, {500 << 30, DoctorOK},
	} {
		if got := doctorSpaceLevel(c.free); got != c.want {
			t.Errorf("%s free: %s, want %s", doctorBytes(c.free), got, c.want)
		}
	}
	f := DoctorFinding{Level: DoctorWarn, Check: "data dir", Message: "/x: 812 MiB free", Hint: "free disk space"}
	if got, want := f.String(), "WARN  data dir: /x: 812 MiB free — free disk space"; got != want {
		t.Errorf("line %q, want %q", got, want)
	}
	f = DoctorFinding{Level: DoctorOK, Check: "config", Message: "fine"}
	if got, want := f.String(), "OK    config: fine"; got != want {
		t.Errorf("line %q, want %q", got, want)
	}
}

// A center checks its certificate and dials the stations it pulls.
func TestDoctorCenter(t *testing.T) {
	e := newDoctorEnv(t)
	certs := filepath.Join(e.dir, "certs-center-c-1")
	if err := pki.Issue(e.ca, pki.Identity{Role: pki.RoleCenter, Node: "c-1"}, certs, 0); err != nil {
		t.Fatal(err)
	}
	pc := doctorFakePeer(t, e.issue(t, "XC-IP-01", "pc-1", 0), nil).AdvertiseAddr()
	other := doctorFakePeer(t, e.issue(t, "XC-OTHER", "pc-1", 0), nil).AdvertiseAddr()
	p := e.config(t, "c-1", map[string]string{
		"role":       "center",
		"station_id": "",
		"stations":   fmt.Sprintf("[{id: XC-IP-01, addresses: [%s]}, {id: XC-YCH-01, addresses: [%s]}]", pc, other),
		"tls":        fmt.Sprintf("{ca: %q, cert: %q, key: %q}", filepath.Join(certs, "ca.crt"), filepath.Join(certs, "node.crt"), filepath.Join(certs, "node.key")),
	})
	rep, _ := runDoctor(t, p, DoctorOptions{})
	checkOrder(t, rep)
	wantLevel(t, one(t, rep, "config"), DoctorOK, "center node c-1, 2 station(s)")
	wantLevel(t, one(t, rep, "certificates"), DoctorOK, "center node c-1")
	if len(rep.Find("multicast")) != 0 {
		t.Error("a center has no mDNS to check")
	}
	wantLevel(t, one(t, rep, "station XC-IP-01 "+pc), DoctorOK, "pc-1 reachable")
	wantLevel(t, one(t, rep, "station XC-YCH-01 "+other), DoctorFail, "not as a PC of XC-YCH-01")
}
