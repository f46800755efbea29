package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stationsync/stationsync/pki"
)

// logSink collects log lines so tests can assert on them.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.lines = append(s.lines, string(p))
	s.mu.Unlock()
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

func (s *logSink) count(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// pkiEnv is a district CA in a temporary directory.
type pkiEnv struct {
	t     *testing.T
	caDir string
}

func newPKI(t *testing.T) *pkiEnv {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := pki.InitCA(dir); err != nil {
		t.Fatal(err)
	}
	return &pkiEnv{t: t, caDir: dir}
}

func (e *pkiEnv) node(id pki.Identity) *pki.TLS {
	e.t.Helper()
	dir := filepath.Join(e.t.TempDir(), "node")
	if err := pki.Issue(e.caDir, id, dir, time.Hour); err != nil {
		e.t.Fatal(err)
	}
	tl, err := pki.LoadTLS(filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.NodeCertFile), filepath.Join(dir, pki.NodeKeyFile))
	if err != nil {
		e.t.Fatal(err)
	}
	return tl
}

func station(st, node string) pki.Identity {
	return pki.Identity{Role: pki.RoleStation, Station: st, Node: node}
}

// node is an open transport for tests.
type node struct {
	*Transport
	logs *logSink
}

type nodeOpt func(*Config)

func withListen(addr string) nodeOpt          { return func(c *Config) { c.Listen = addr } }
func withDialTimeout(d time.Duration) nodeOpt { return func(c *Config) { c.DialTimeout = d } }
func withResetKey(path string) nodeOpt        { return func(c *Config) { c.StatelessResetKeyFile = path } }

// start opens a transport on 127.0.0.1:0 with tl; handlers run before Open.
func start(t *testing.T, tl *pki.TLS, setup func(*Transport), opts ...nodeOpt) *node {
	t.Helper()
	logs := &logSink{}
	cfg := Config{
		Listen: "127.0.0.1:0",
		TLS:    tl,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&cfg)
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(tr)
	}
	if err := tr.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return &node{Transport: tr, logs: logs}
}

// echo returns a handler that echoes and reports the peer it saw.
func echo(peers chan<- pki.Identity) func(net.Conn, pki.Identity) {
	return func(c net.Conn, peer pki.Identity) {
		defer c.Close()
		if peers != nil {
			peers <- peer
		}
		_, _ = io.Copy(c, c)
	}
}

// roundTrip writes msg on c and expects it back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("got %q, want %q", buf, msg)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestEchoRPCWithIdentities(t *testing.T) {
	env := newPKI(t)
	idA, idB := station("s1", "a"), station("s1", "b")
	peers := make(chan pki.Identity, 1)
	a := start(t, env.node(idA), nil)
	b := start(t, env.node(idB), func(tr *Transport) { tr.Handle(KindRPC, echo(peers)) })

	c, peer, err := a.Dial(ctxT(t, 5*time.Second), b.AdvertiseAddr(), KindRPC)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if peer != idB {
		t.Errorf("dialer saw peer %+v, want %+v", peer, idB)
	}
	roundTrip(t, c, "hello over quic")
	if got := <-peers; got != idA {
		t.Errorf("handler saw peer %+v, want %+v", got, idA)
	}
	if c.LocalAddr() == nil || c.RemoteAddr().String() != b.Addr().String() {
		t.Errorf("addrs: local %v remote %v, want remote %v", c.LocalAddr(), c.RemoteAddr(), b.Addr())
	}

	// Closing ends the peer's read (the handler's io.Copy returns and it
	// closes its side), so our read sees EOF.
	c2, _, err := a.Dial(ctxT(t, 5*time.Second), b.AdvertiseAddr(), KindRPC)
	if err != nil {
		t.Fatal(err)
	}
	<-peers
	if err := c2.(*streamConn).s.Close(); err != nil { // half-close: FIN only
		t.Fatal(err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after half-close = %v, want EOF", err)
	}
	c2.Close()
}

func TestKindByteRequiredAndUnknownKindsReset(t *testing.T) {
	env := newPKI(t)
	a := start(t, env.node(station("s1", "a")), nil)
	b := start(t, env.node(station("s1", "b")), nil) // no handlers at all
	if _, _, err := a.Dial(ctxT(t, time.Second), b.AdvertiseAddr(), Kind('Z')); err == nil {
		t.Error("Dial with unknown kind succeeded")
	}
	c, _, err := a.Dial(ctxT(t, 5*time.Second), b.AdvertiseAddr(), KindFeed)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read on unhandled kind = %v, want a stream reset", err)
	}
}

func TestRaftLayerDialAccept(t *testing.T) {
	env := newPKI(t)
	a := start(t, env.node(station("s1", "a")), nil)
	b := start(t, env.node(station("s1", "b")), nil)
	la, lb := a.RaftLayer(), b.RaftLayer()
	if got := lb.Addr().String(); got != b.AdvertiseAddr() {
		t.Errorf("layer Addr = %q, want %q", got, b.AdvertiseAddr())
	}

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := lb.Accept()
		if err != nil {
			t.Errorf("Accept: %v", err)
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := la.Dial(raftAddr(b.AdvertiseAddr()), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	var sc net.Conn
	select {
	case sc = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return")
	}
	if sc == nil {
		t.FailNow()
	}
	defer sc.Close()
	_ = sc.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("accepted side read %q, %v", buf, err)
	}
	if _, err := sc.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("dialer read %q, %v", buf, err)
	}

	// Closing the layer ends Accept but not the transport; a new layer
	// takes over.
	if err := lb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
	if b.RaftLayer() == lb {
		t.Error("RaftLayer returned the closed layer")
	}
}

func TestConcurrentDialsShareOneConnection(t *testing.T) {
	env := newPKI(t)
	a := start(t, env.node(station("s1", "a")), nil)
	b := start(t, env.node(station("s1", "b")), func(tr *Transport) { tr.Handle(KindRPC, echo(nil)) })

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			c, _, err := a.Dial(ctxT(t, 5*time.Second), b.AdvertiseAddr(), KindRPC)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg := fmt.Sprintf("msg %d", i)
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte(msg)); err != nil {
				errs <- err
				return
			}
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
				errs <- fmt.Errorf("echo %d: %q, %v", i, buf, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := a.dialed.Load(); got != 1 {
		t.Errorf("%d QUIC connections dialed, want 1", got)
	}
}

func TestForeignCAEstablishesNothing(t *testing.T) {
	env, evilEnv := newPKI(t), newPKI(t)
	var calls atomic.Int32
	count := func(c net.Conn, _ pki.Identity) { calls.Add(1); c.Close() }
	b := start(t, env.node(station("s1", "b")), func(tr *Transport) { tr.Handle(KindRPC, count) })
	evil := start(t, evilEnv.node(station("s1", "b")), func(tr *Transport) { tr.Handle(KindRPC, count) })

	if c, _, err := evil.Dial(ctxT(t, 5*time.Second), b.AdvertiseAddr(), KindRPC); err == nil {
		c.Close()
		t.Error("foreign-CA node dialed in")
	} else {
		t.Logf("foreign CA dialing in: %v", err)
	}
	if c, _, err := b.Dial(ctxT(t, 5*time.Second), evil.AdvertiseAddr(), KindRPC); err == nil {
		c.Close()
		t.Error("dialed a foreign-CA node")
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handlers called %d times", n)
	}
	b.mu.Lock()
	nconns := len(b.conns)
	b.mu.Unlock()
	if nconns != 0 {
		t.Errorf("%d connections established", nconns)
	}
}

// TestServerOnlyRefusal covers a client that trusts the server but not the
// other way round: a certificate of a foreign CA with a CA bundle that also
// holds the district CA (anyone can copy the public CA certificate). TLS 1.3
// lets the client finish its handshake before the server has judged it, so
// Dial may return a stream, but it fails at once and no handler ever runs.
func TestServerOnlyRefusal(t *testing.T) {
	env, evilEnv := newPKI(t), newPKI(t)
	var calls atomic.Int32
	b := start(t, env.node(station("s1", "b")), func(tr *Transport) {
		tr.Handle(KindRPC, func(c net.Conn, _ pki.Identity) { calls.Add(1); c.Close() })
	})

	dir := filepath.Join(t.TempDir(), "evil")
	if err := pki.Issue(evilEnv.caDir, station("s1", "evil"), dir, time.Hour); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle.crt")
	own, _ := os.ReadFile(filepath.Join(dir, pki.CACertFile))
	district, _ := os.ReadFile(filepath.Join(env.caDir, pki.CACertFile))
	if err := os.WriteFile(bundle, append(own, district...), 0o644); err != nil {
		t.Fatal(err)
	}
	tl, err := pki.LoadTLS(bundle, filepath.Join(dir, pki.NodeCertFile), filepath.Join(dir, pki.NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	evil := start(t, tl, nil)

	c, _, err := evil.Dial(ctxT(t, 5*time.Second), b.AdvertiseAddr(), KindRPC)
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write([]byte("hello"))
		_, err = c.Read(make([]byte, 1))
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("stream to a refusing server: read = %v, want the connection's error", err)
		}
		c.Close()
	}
	t.Logf("refused by the server: %v", err)
	if n := calls.Load(); n != 0 {
		t.Errorf("handler called %d times", n)
	}
	if n := b.logs.count("handshake refused"); n == 0 {
		t.Error("server did not log the refused handshake")
	}
}

func TestOtherStationRefused(t *testing.T) {
	env := newPKI(t)
	var calls atomic.Int32
	count := func(c net.Conn, _ pki.Identity) { calls.Add(1); c.Close() }
	b := start(t, env.node(station("s1", "b")), func(tr *Transport) { tr.Handle(KindRPC, count) })
	x := start(t, env.node(station("s2", "x")), func(tr *Transport) { tr.Handle(KindRPC, count) })

	if c, _, err := x.Dial(ctxT(t, 5*time.Second), b.AdvertiseAddr(), KindRPC); err == nil {
		c.Close()
		t.Error("node of another station dialed in")
	} else {
		t.Logf("other station dialing in: %v", err)
	}
	if c, _, err := b.Dial(ctxT(t, 5*time.Second), x.AdvertiseAddr(), KindRPC); err == nil {
		c.Close()
		t.Error("dialed a node of another station")
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handlers called %d times", n)
	}
	if _, err := New(Config{TLS: b.cfg.TLS, Station: "s2"}); err == nil {
		t.Error("New accepted a Station that contradicts the certificate")
	}
}

func TestCenterMayCallButNotRaft(t *testing.T) {
	env := newPKI(t)
	idC := pki.Identity{Role: pki.RoleCenter, Node: "c1"}
	peers := make(chan pki.Identity, 1)
	b := start(t, env.node(station("s1", "b")), func(tr *Transport) { tr.Handle(KindRPC, echo(peers)) })
	center := start(t, env.node(idC), nil)
	lb := b.RaftLayer()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := lb.Accept(); err == nil {
			accepted <- c
		}
	}()

	c, peer, err := center.Dial(ctxT(t, 5*time.Second), b.AdvertiseAddr(), KindRPC)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "pull")
	c.Close()
	if got := <-peers; got != idC || peer != station("s1", "b") {
		t.Errorf("station saw %+v, center saw %+v", got, peer)
	}

	// The center's own raft layer will not even try.
	if c, err := center.RaftLayer().Dial(raftAddr(b.AdvertiseAddr()), 2*time.Second); err == nil {
		c.Close()
		t.Error("center raft layer dialed a station")
	}
	// A raw raft stream is reset by the station and never accepted.
	rc, _, err := center.Dial(ctxT(t, 5*time.Second), b.AdvertiseAddr(), KindRaft)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_ = rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read on refused raft stream = %v, want a reset", err)
	}
	select {
	case <-accepted:
		t.Error("station accepted a raft stream from the center")
	default:
	}
	if n := b.logs.count("raft stream refused"); n != 1 {
		t.Errorf("%d log lines about the refused raft stream, want 1", n)
	}
}

func TestDialNothingListeningFailsFast(t *testing.T) {
	env := newPKI(t)
	// The bounds below are far from the timeouts they tell apart (the cap
	// vs quic-go's 5 s handshake timeout) so a loaded CI machine running
	// -race does not fail them.
	const dialTimeout = 200 * time.Millisecond
	a := start(t, env.node(station("s1", "a")), nil, withDialTimeout(dialTimeout))
	dead := deadAddr(t)

	begin := time.Now()
	done := make(chan error, 1)
	go func() {
		_, _, err := a.Dial(context.Background(), dead, KindRPC)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Dial to nothing succeeded")
		}
		t.Logf("failed after %v: %v", time.Since(begin), err)
	case <-time.After(3 * time.Second):
		t.Fatalf("Dial still running after %v", time.Since(begin))
	}

	// Close cancels an in-flight dial at once, even with a long cap.
	slow := start(t, env.node(station("s1", "s")), nil, withDialTimeout(time.Minute))
	go func() {
		_, _, err := slow.Dial(context.Background(), dead, KindRPC)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the dial start
	begin = time.Now()
	closed := make(chan error, 1)
	go func() { closed <- slow.Close() }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Dial cancelled by Close = %v, want ErrClosed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("Close did not cancel the dial within 3s")
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	t.Logf("dial cancelled after %v", time.Since(begin))
}

// deadAddr returns a loopback UDP address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func TestRedialAfterPeerRestart(t *testing.T) {
	env := newPKI(t)
	tlB := env.node(station("s1", "b"))
	keyFile := filepath.Join(t.TempDir(), "reset.key")
	a := start(t, env.node(station("s1", "a")), nil)
	b := start(t, tlB, func(tr *Transport) { tr.Handle(KindRPC, echo(nil)) }, withResetKey(keyFile))
	addr := b.Addr().String()

	dialEcho := func(msg string) error {
		c, _, err := a.Dial(ctxT(t, 5*time.Second), addr, KindRPC)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		_, err = io.ReadFull(c, buf)
		return err
	}
	if err := dialEcho("before"); err != nil {
		t.Fatal(err)
	}

	// Clean restart: B closes its connections, A's next Dial redials. (A
	// Dial racing with the CONNECTION_CLOSE in flight can still get a stream
	// on the dying connection; wait until A has seen it, as raft's next
	// attempt would.)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitCachedConnDead(t, a.Transport, addr)
	b2 := start(t, tlB, func(tr *Transport) { tr.Handle(KindRPC, echo(nil)) }, withListen(addr), withResetKey(keyFile))
	if err := dialEcho("after restart"); err != nil {
		t.Fatalf("Dial after clean restart: %v", err)
	}
	if got := a.dialed.Load(); got != 2 {
		t.Errorf("%d connections dialed, want 2", got)
	}

	// Crash: B2 vanishes without CONNECTION_CLOSE. B3 reuses the persisted
	// stateless reset key, so A's stale connection is reset at its first
	// packet instead of idling out; at most one Dial hits the dead
	// connection.
	b2.mu.Lock()
	qt, udp := b2.qt, b2.udp
	b2.mu.Unlock()
	_ = qt.Close() // abrupt: no CONNECTION_CLOSE
	_ = udp.Close()
	b3 := start(t, tlB, func(tr *Transport) { tr.Handle(KindRPC, echo(nil)) }, withListen(addr), withResetKey(keyFile))
	_ = b3
	begin := time.Now()
	var err error
	for range 2 {
		if err = dialEcho("after crash"); err == nil {
			break
		}
		t.Logf("dial after crash: %v", err)
	}
	if err != nil {
		t.Fatalf("no working stream after crash restart: %v", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("recovery after crash took %v (stateless reset not used?)", d)
	}
}

// waitCachedConnDead waits until tr's cached connection to addr has ended.
func waitCachedConnDead(t *testing.T, tr *Transport, addr string) {
	t.Helper()
	tr.mu.Lock()
	p := tr.peers[addr]
	tr.mu.Unlock()
	if p == nil {
		t.Fatalf("no connection to %s cached", addr)
	}
	p.lock <- struct{}{}
	qc := p.conn
	<-p.lock
	if qc == nil {
		return
	}
	select {
	case <-qc.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("connection to %s still alive 5s after its peer closed", addr)
	}
}

func TestResetKeyPersisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "reset.key")
	log := slog.New(slog.DiscardHandler)
	k1, err := loadResetKey(path, log)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := loadResetKey(path, log)
	if err != nil || *k1 != *k2 {
		t.Fatalf("reloaded key differs (%v)", err)
	}
	if runtime.GOOS != "windows" {
		fi, _ := os.Stat(path)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	k3, err := loadResetKey(path, log)
	if err != nil || bytes.Equal(k3[:], []byte("short")) {
		t.Fatalf("damaged key not replaced: %v", err)
	}
}

func TestAdvertiseDerivation(t *testing.T) {
	for _, tc := range []struct{ bound, want string }{
		{"0.0.0.0:4610", "127.0.0.1:4610"},
		{"[::]:4610", "127.0.0.1:4610"},
		{"192.168.1.20:4610", "192.168.1.20:4610"},
		{"127.0.0.1:9", "127.0.0.1:9"},
	} {
		a, err := net.ResolveUDPAddr("udp", tc.bound)
		if err != nil {
			t.Fatal(err)
		}
		if got := deriveAdvertise(a); got != tc.want {
			t.Errorf("deriveAdvertise(%s) = %s, want %s", tc.bound, got, tc.want)
		}
	}
}

func TestCloseTwiceLeavesNoGoroutines(t *testing.T) {
	env := newPKI(t)
	a := start(t, env.node(station("s1", "a")), nil)
	b := start(t, env.node(station("s1", "b")), func(tr *Transport) { tr.Handle(KindRPC, echo(nil)) })
	lb := b.RaftLayer()
	go func() {
		for {
			c, err := lb.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	c, _, err := a.Dial(ctxT(t, 5*time.Second), b.AdvertiseAddr(), KindRPC)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "x") // leave c open: Close must end its handler
	rc, err := a.RaftLayer().Dial(raftAddr(b.AdvertiseAddr()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = rc.Write([]byte("raft"))

	for _, tr := range []*Transport{a.Transport, b.Transport} {
		if err := tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := tr.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, _, err := tr.Dial(context.Background(), "127.0.0.1:1", KindRPC); !errors.Is(err, ErrClosed) {
			t.Errorf("Dial after Close = %v, want ErrClosed", err)
		}
	}
	if _, err := lb.Accept(); err == nil {
		t.Error("raft Accept after transport Close succeeded")
	}
	waitNoLeaks(t)

	// Close before Open is fine too.
	tr, err := New(Config{TLS: env.node(station("s1", "c"))})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Error(err)
	}
	if err := tr.Open(); err == nil {
		t.Error("Open after Close succeeded")
	}
}

// waitNoLeaks waits until no goroutine runs code of this package (other
// than tests) or of quic-go.
func waitNoLeaks(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var leaked []string
	for {
		leaked = leaked[:0]
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "stationsync/replication/transport.(*") || strings.Contains(g, "quic-go/quic-go") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
