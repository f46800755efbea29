package transport

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/stationsync/stationsync/pki"
)

// ALPN is the application protocol every connection must negotiate.
const ALPN = "stationsync/1"

// DefaultListen is the listen address used when Config.Listen is empty.
const DefaultListen = "0.0.0.0:4610"

// DefaultDialTimeout caps how long a dial waits for a QUIC handshake when
// Config.DialTimeout is zero. UDP has no "connection refused": without a cap a
// dial to a dead peer waits for the caller's whole timeout.
const DefaultDialTimeout = time.Second

const (
	keepAlivePeriod      = 2 * time.Second
	maxIdleTimeout       = 6 * time.Second
	handshakeIdleTimeout = 3 * time.Second
	kindTimeout          = 5 * time.Second
	maxIncomingStreams   = 512
)

// QUIC application error codes (connection) and stream error codes.
const (
	codeShutdown quic.ApplicationErrorCode = 0x100
	codeStale    quic.ApplicationErrorCode = 0x101 // a connection we gave up on

	streamClosed      quic.StreamErrorCode = 0x0
	streamRefused     quic.StreamErrorCode = 0x1
	streamUnknownKind quic.StreamErrorCode = 0x2
)

// ErrClosed is returned by operations on a closed Transport. It wraps
// net.ErrClosed.
var ErrClosed = fmt.Errorf("transport closed: %w", net.ErrClosed)

// ErrNotOpen is returned by Dial before Open.
var ErrNotOpen = errors.New("transport not open")

// Kind is the first byte of every stream; it says what the stream carries.
type Kind byte

// Stream kinds. See the package documentation for the protocol.
const (
	KindRaft Kind = 'R' // hashicorp/raft RPCs, see Transport.RaftLayer
	KindRPC  Kind = 'C' // request/response calls
	KindFeed Kind = 'F' // change-feed pulls
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindRaft:
		return "raft"
	case KindRPC:
		return "rpc"
	case KindFeed:
		return "feed"
	}
	return fmt.Sprintf("kind(0x%02x)", byte(k))
}

func (k Kind) valid() bool { return k == KindRaft || k == KindRPC || k == KindFeed }

// Config configures a Transport.
type Config struct {
	// Listen is the UDP address to bind, DefaultListen if empty. An IPv4
	// host binds an IPv4 socket; otherwise the socket is dual-stack where the
	// OS allows it.
	Listen string
	// Advertise is the address peers dial to reach this node. If empty it is
	// the bound address, with an unspecified IP (0.0.0.0, ::) replaced by
	// 127.0.0.1: that is only reachable from this host, so a node listening
	// on all interfaces that other PCs must reach needs Advertise set.
	Advertise string
	// TLS holds the district CA and this node's certificate. Required.
	TLS *pki.TLS
	// Station is this node's station. If empty it is taken from the
	// certificate; if set it must match the certificate. Must be empty for a
	// center node. A station node admits peers of this station (role
	// station) and center nodes; anything else fails the handshake. A center
	// node admits every node of the district CA.
	Station string
	// StatelessResetKeyFile holds 32 random bytes, created (mode 0600) when
	// missing, so that this node, restarted, resets its peers' connections to
	// its previous incarnation at once. If empty, a random key is used and
	// that benefit is lost.
	StatelessResetKeyFile string
	// DialTimeout caps establishing a QUIC connection, DefaultDialTimeout if
	// zero.
	DialTimeout time.Duration
	// Logger receives the transport's log lines, slog.Default() if nil.
	Logger *slog.Logger
	// Drop, if set, is asked for every datagram sent or received: true
	// drops it, as a network that lost it would. It is for fault-injection
	// tests (partitions between nodes of one process); nil drops nothing.
	Drop func(peer net.Addr) bool
}

const (
	stateNew = iota
	stateOpen
	stateClosed
)

// Transport is one node's QUIC endpoint: one UDP socket, one quic.Transport
// for listening and dialing, at most one outgoing connection per peer
// address, and a stream per Dial.
type Transport struct {
	cfg Config
	log *slog.Logger

	refusedMu sync.Mutex
	refused   map[string]bool // handshake refusal reasons already logged

	local   pki.Identity
	station string

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // goroutines owned by the transport
	done   chan struct{}  // closed when Close has finished

	mu        sync.Mutex
	state     int
	handlers  map[Kind]func(net.Conn, pki.Identity)
	enroll    func(net.Conn, net.Addr) // enrollment handler (center); nil refuses EnrollALPN
	raft      *raftLayer
	udp       *net.UDPConn
	qt        *quic.Transport
	ln        *quic.Listener
	clientTLS *tls.Config
	quicConf  *quic.Config
	advertise string
	conns     map[*quic.Conn]struct{}
	peers     map[string]*peer

	dialed atomic.Int64 // QUIC connections dialed; for tests
}

// peer is the outgoing connection to one peer address.
type peer struct {
	lock chan struct{} // capacity 1: the dial lock, cancellable unlike a mutex
	conn *quic.Conn    // guarded by lock
	id   pki.Identity  // guarded by lock
}

// New checks cfg and returns a Transport. It does no I/O: call Open.
func New(cfg Config) (*Transport, error) {
	if cfg.TLS == nil {
		return nil, errors.New("new transport: Config.TLS is required")
	}
	local := cfg.TLS.Identity()
	switch local.Role {
	case pki.RoleStation:
		if cfg.Station == "" {
			cfg.Station = local.Station
		} else if cfg.Station != local.Station {
			return nil, fmt.Errorf("new transport: Config.Station %q does not match the certificate's station %q", cfg.Station, local.Station)
		}
	case pki.RoleCenter:
		if cfg.Station != "" {
			return nil, fmt.Errorf("new transport: Config.Station must be empty for a center node, got %q", cfg.Station)
		}
	default:
		return nil, fmt.Errorf("new transport: certificate role %q is unknown", local.Role)
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, fmt.Errorf("new transport: Config.Listen: %w", err)
	}
	if cfg.Advertise != "" {
		if _, _, err := net.SplitHostPort(cfg.Advertise); err != nil {
			return nil, fmt.Errorf("new transport: Config.Advertise: %w", err)
		}
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Transport{
		cfg:      cfg,
		log:      logger.With("component", "transport"),
		local:    local,
		station:  cfg.Station,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		handlers: make(map[Kind]func(net.Conn, pki.Identity)),
		conns:    make(map[*quic.Conn]struct{}),
		peers:    make(map[string]*peer),
	}, nil
}

// Handle registers h for incoming streams of kind k (KindRPC or KindFeed;
// raft streams go to RaftLayer). Register before Open: a stream that arrives
// for a kind without a handler is reset. h runs in its own goroutine per
// stream, owns c and must close it; peer is the verified identity of the
// remote node. Transport.Close waits for running handlers, so a handler must
// return once reads or writes on c fail. Handle panics on a nil handler or a
// kind it cannot serve.
func (t *Transport) Handle(k Kind, h func(c net.Conn, peer pki.Identity)) {
	if h == nil {
		panic("transport: Handle with nil handler")
	}
	if !k.valid() || k == KindRaft {
		panic(fmt.Sprintf("transport: Handle(%s): only rpc and feed streams take handlers", k))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.handlers[k] = h
}

// Open binds the UDP socket, starts the QUIC listener on it and the accept
// loop. The same socket is used for every dial.
func (t *Transport) Open() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.state {
	case stateOpen:
		return errors.New("open transport: already open")
	case stateClosed:
		return fmt.Errorf("open transport: %w", ErrClosed)
	}
	key, err := loadResetKey(t.cfg.StatelessResetKeyFile, t.log)
	if err != nil {
		return fmt.Errorf("open transport: %w", err)
	}
	network := "udp"
	if host, _, _ := net.SplitHostPort(t.cfg.Listen); host != "" {
		if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() {
			network = "udp4"
		}
	}
	laddr, err := net.ResolveUDPAddr(network, t.cfg.Listen)
	if err != nil {
		return fmt.Errorf("open transport: resolve %s: %w", t.cfg.Listen, err)
	}
	udp, err := net.ListenUDP(network, laddr)
	if err != nil {
		return fmt.Errorf("open transport: %w", err)
	}
	qconf := &quic.Config{
		HandshakeIdleTimeout: handshakeIdleTimeout,
		MaxIdleTimeout:       maxIdleTimeout,
		KeepAlivePeriod:      keepAlivePeriod,
		MaxIncomingStreams:   maxIncomingStreams,
		// Streams are bidirectional only.
		MaxIncomingUniStreams: -1,
	}
	var conn net.PacketConn = udp
	if t.cfg.Drop != nil {
		conn = &lossyConn{PacketConn: udp, drop: t.cfg.Drop}
	}
	qt := &quic.Transport{Conn: conn, StatelessResetKey: key}
	ln, err := qt.Listen(t.enrollConfig(t.logRefusals(t.cfg.TLS.ServerConfig(ALPN, t.admit))), qconf)
	if err != nil {
		_ = qt.Close()
		_ = udp.Close()
		return fmt.Errorf("open transport: listen on %s: %w", udp.LocalAddr(), err)
	}
	t.udp, t.qt, t.ln, t.quicConf = udp, qt, ln, qconf
	t.clientTLS = t.cfg.TLS.ClientConfig(ALPN, t.admit)
	t.advertise = t.cfg.Advertise
	if t.advertise == "" {
		t.advertise = deriveAdvertise(udp.LocalAddr().(*net.UDPAddr))
	}
	t.state = stateOpen
	t.wg.Add(1)
	go t.acceptLoop(ln)
	t.log.Info("listening", "addr", udp.LocalAddr().String(), "advertise", t.advertise, "identity", t.local.String())
	return nil
}

// firstRefusal reports whether a refusal reason is new.
func (t *Transport) firstRefusal(reason string) bool {
	t.refusedMu.Lock()
	defer t.refusedMu.Unlock()
	if t.refused == nil || len(t.refused) > 1024 {
		t.refused = map[string]bool{}
	}
	if t.refused[reason] {
		return false
	}
	t.refused[reason] = true
	return true
}

// logRefusals makes a server TLS config log the handshakes it refuses (an
// operator's first question when a PC will not join).
func (t *Transport) logRefusals(cfg *tls.Config) *tls.Config {
	verify := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		err := verify(cs)
		if err != nil {
			// A stranger retries every second: say it once, then quietly.
			if t.firstRefusal(refusalKey(err)) {
				t.log.Warn("handshake refused (logged once per reason)", "err", err)
			} else {
				t.log.Debug("handshake refused", "err", err)
			}
		}
		return err
	}
	return cfg
}

// refusalKey is what makes a refusal "the same" for logging once: its
// text, except for an invalid (expired, not yet valid) certificate, whose
// text carries the current time and so would differ at every retry; that
// one is keyed by the certificate and the reason.
func refusalKey(err error) string {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Cert != nil {
		sum := sha256.Sum256(inv.Cert.Raw)
		return fmt.Sprintf("invalid certificate %x: reason %d", sum[:8], inv.Reason)
	}
	return err.Error()
}

// deriveAdvertise turns the bound address into a dialable one.
func deriveAdvertise(a *net.UDPAddr) string {
	ip := a.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(a.Port))
}

// Addr returns the bound UDP address, nil before Open.
func (t *Transport) Addr() net.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.udp == nil {
		return nil
	}
	return t.udp.LocalAddr()
}

// AdvertiseAddr returns the address peers dial to reach this node: the
// configured one, or (after Open) one derived from the bound address.
func (t *Transport) AdvertiseAddr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.advertise == "" {
		return t.cfg.Advertise
	}
	return t.advertise
}

// Identity returns the identity of the local certificate as of New.
func (t *Transport) Identity() pki.Identity { return t.local }

// admit is the handshake policy, applied to the peer's identity on both the
// dialing and the accepting side.
func (t *Transport) admit(id pki.Identity) error {
	if id.Role == pki.RoleCenter || t.local.Role == pki.RoleCenter {
		return nil
	}
	if id.Role == pki.RoleStation && id.Station == t.station {
		return nil
	}
	return fmt.Errorf("%s node of station %q not admitted by station %q", id.Role, id.Station, t.station)
}

// sameCluster reports whether id may take part in this node's raft cluster:
// same role and, for stations, same station.
func (t *Transport) sameCluster(id pki.Identity) bool {
	return id.Role == t.local.Role && id.Station == t.station
}

// acceptLoop accepts connections until the listener closes. Streams are
// served per connection in their own goroutine.
func (t *Transport) acceptLoop(ln *quic.Listener) {
	defer t.wg.Done()
	for {
		qc, err := ln.Accept(t.ctx)
		if err != nil {
			if t.ctx.Err() == nil {
				t.log.Error("accept stopped", "err", err)
			}
			return
		}
		if qc.ConnectionState().TLS.NegotiatedProtocol == EnrollALPN {
			t.mu.Lock()
			open := t.state == stateOpen
			if open {
				t.wg.Add(1)
			}
			t.mu.Unlock()
			if !open {
				_ = qc.CloseWithError(codeShutdown, "shutdown")
				return
			}
			go t.serveEnroll(qc)
			continue
		}
		id, err := pki.PeerIdentity(qc.ConnectionState().TLS)
		if err != nil { // the handshake verified it; cannot happen
			t.log.Error("accepted connection without identity", "remote", qc.RemoteAddr().String(), "err", err)
			_ = qc.CloseWithError(codeShutdown, "no identity")
			continue
		}
		if !t.track(qc, id) {
			_ = qc.CloseWithError(codeShutdown, "shutdown")
			return
		}
		t.log.Debug("connection accepted", "peer", id.String(), "remote", qc.RemoteAddr().String())
	}
}

// track registers a live connection and starts serving its streams. It
// returns false if the transport is closing.
func (t *Transport) track(qc *quic.Conn, id pki.Identity) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != stateOpen {
		return false
	}
	t.conns[qc] = struct{}{}
	t.wg.Add(1)
	go t.serveConn(qc, id)
	return true
}

// serveConn accepts the streams of one connection until it dies.
func (t *Transport) serveConn(qc *quic.Conn, id pki.Identity) {
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		delete(t.conns, qc)
		t.mu.Unlock()
	}()
	for {
		s, err := qc.AcceptStream(t.ctx)
		if err != nil {
			if t.ctx.Err() == nil {
				t.log.Debug("connection ended", "peer", id.String(), "remote", qc.RemoteAddr().String(), "err", context.Cause(qc.Context()))
			}
			return
		}
		t.wg.Add(1)
		go t.serveStream(qc, s, id)
	}
}

// serveStream reads the kind byte of an incoming stream and hands the stream
// to its consumer.
func (t *Transport) serveStream(qc *quic.Conn, s *quic.Stream, id pki.Identity) {
	defer t.wg.Done()
	c := newConn(qc, s)
	_ = s.SetReadDeadline(time.Now().Add(kindTimeout))
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		c.reset(streamRefused)
		t.log.Debug("stream without kind byte", "peer", id.String(), "err", err)
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	k := Kind(b[0])
	if k == KindRaft {
		t.deliverRaft(c, id)
		return
	}
	t.mu.Lock()
	h := t.handlers[k]
	t.mu.Unlock()
	if h == nil {
		t.log.Warn("stream of unhandled kind reset", "kind", k.String(), "peer", id.String(), "remote", qc.RemoteAddr().String())
		c.reset(streamUnknownKind)
		return
	}
	h(c, id)
}

// deliverRaft hands a raft stream to the raft layer's Accept, or resets it.
func (t *Transport) deliverRaft(c *streamConn, id pki.Identity) {
	if !t.sameCluster(id) {
		t.log.Warn("raft stream refused: peer is not of this raft cluster", "peer", id.String(), "remote", c.RemoteAddr().String())
		c.reset(streamRefused)
		return
	}
	t.mu.Lock()
	l := t.raft
	t.mu.Unlock()
	if l == nil {
		c.reset(streamUnknownKind)
		t.log.Warn("raft stream reset: no raft layer", "peer", id.String())
		return
	}
	select {
	case l.accept <- c:
	case <-l.closed:
		c.reset(streamRefused)
	case <-t.ctx.Done():
		c.reset(streamRefused)
	}
}

// Dial opens a stream of kind k to the node at addr and returns it with the
// peer's verified identity. It reuses the connection to addr if there is a
// live one and otherwise dials one (capped by Config.DialTimeout); if the
// cached connection turns out dead, it redials once. ctx bounds the whole
// call; Close cancels it.
//
// Opening a stream takes no round trip, so a stream opened on a connection
// that is dying without knowing it yet (the peer crashed or restarted a
// moment ago, or refused this node's certificate after the client side of the
// handshake finished) is returned and fails at its first read; the next Dial
// redials. Closing the returned conn sends FIN after the written data and
// stops reading.
func (t *Transport) Dial(ctx context.Context, addr string, k Kind) (net.Conn, pki.Identity, error) {
	return t.dial(ctx, addr, k, nil)
}

// dial is Dial with an optional check of the peer before the stream opens.
func (t *Transport) dial(ctx context.Context, addr string, k Kind, allow func(pki.Identity) error) (net.Conn, pki.Identity, error) {
	if !k.valid() {
		return nil, pki.Identity{}, fmt.Errorf("dial %s: unknown stream %s", addr, k)
	}
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, pki.Identity{}, fmt.Errorf("dial %s: %w", addr, err)
	}
	p, err := t.peerFor(raddr.String())
	if err != nil {
		return nil, pki.Identity{}, fmt.Errorf("dial %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(t.ctx, func() { cancel(ErrClosed) })
	defer func() { stop(); cancel(nil) }()

	var stale *quic.Conn
	for attempt := 0; ; attempt++ {
		qc, id, fresh, err := t.connect(ctx, p, raddr, stale)
		if err != nil {
			return nil, pki.Identity{}, fmt.Errorf("dial %s: %w", addr, err)
		}
		if allow != nil {
			if err := allow(id); err != nil {
				return nil, id, fmt.Errorf("dial %s: %s: %w", addr, id, err)
			}
		}
		s, err := openStream(ctx, qc, k)
		if err == nil {
			return newConn(qc, s), id, nil
		}
		// A stream fails to open only if ctx ended or the connection died
		// (its Context may lag behind by a moment, so do not wait for it).
		if !fresh && attempt == 0 && ctx.Err() == nil {
			t.log.Debug("cached connection died; redialing", "addr", addr, "peer", id.String(), "err", err)
			stale = qc
			continue
		}
		if c := t.cause(ctx); c != nil {
			err = c
		}
		return nil, id, fmt.Errorf("dial %s: open %s stream: %w", addr, k, err)
	}
}

// cause says why a dial under ctx (derived in dial) must stop, or nil.
// Close cancels the transport's context before it closes the QUIC
// transport, but ctx learns of it only when the AfterFunc in dial has run
// on its own goroutine; a dial failing in between with quic-go's "transport
// closed" must still report ErrClosed.
func (t *Transport) cause(ctx context.Context) error {
	if t.ctx.Err() != nil {
		return ErrClosed
	}
	return context.Cause(ctx)
}

// peerFor returns the outgoing-connection slot of a resolved address.
func (t *Transport) peerFor(key string) (*peer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.state {
	case stateNew:
		return nil, ErrNotOpen
	case stateClosed:
		return nil, ErrClosed
	}
	p := t.peers[key]
	if p == nil {
		p = &peer{lock: make(chan struct{}, 1)}
		t.peers[key] = p
	}
	return p, nil
}

// connect returns the live connection to p, dialing it under p's lock if
// needed. fresh reports a new connection. stale, if not nil, is a connection
// known to be dead even if its Context does not say so yet.
func (t *Transport) connect(ctx context.Context, p *peer, raddr *net.UDPAddr, stale *quic.Conn) (_ *quic.Conn, _ pki.Identity, fresh bool, _ error) {
	select {
	case p.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, pki.Identity{}, false, t.cause(ctx)
	}
	defer func() { <-p.lock }()
	if p.conn != nil && p.conn != stale && p.conn.Context().Err() == nil {
		return p.conn, p.id, false, nil
	}
	if p.conn != nil && p.conn == stale {
		// Make sure it is gone for everyone, not just for this caller.
		_ = p.conn.CloseWithError(codeStale, "stale")
	}
	p.conn = nil
	dctx, cancel := context.WithTimeout(ctx, t.cfg.DialTimeout)
	defer cancel()
	qc, err := t.qt.Dial(dctx, raddr, t.clientTLS, t.quicConf)
	if err != nil {
		if c := t.cause(ctx); c != nil {
			return nil, pki.Identity{}, false, c
		}
		if errors.Is(dctx.Err(), context.DeadlineExceeded) {
			return nil, pki.Identity{}, false, fmt.Errorf("no QUIC handshake within %s: %w", t.cfg.DialTimeout, err)
		}
		return nil, pki.Identity{}, false, err
	}
	id, err := pki.PeerIdentity(qc.ConnectionState().TLS)
	if err != nil { // the handshake verified it; cannot happen
		_ = qc.CloseWithError(codeShutdown, "no identity")
		return nil, pki.Identity{}, false, err
	}
	if !t.track(qc, id) {
		_ = qc.CloseWithError(codeShutdown, "shutdown")
		return nil, pki.Identity{}, false, ErrClosed
	}
	t.dialed.Add(1)
	t.log.Debug("connection dialed", "peer", id.String(), "remote", raddr.String())
	p.conn, p.id = qc, id
	return qc, id, true, nil
}

// openStream opens a stream and announces its kind.
func openStream(ctx context.Context, qc *quic.Conn, k Kind) (*quic.Stream, error) {
	s, err := qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.Write([]byte{byte(k)}); err != nil {
		s.CancelRead(streamClosed)
		s.CancelWrite(streamClosed)
		return nil, err
	}
	return s, nil
}

// Close closes every connection with CONNECTION_CLOSE, the listener, the
// quic.Transport and the UDP socket, and waits for the goroutines the
// transport started, stream handlers included. It is safe to call more than
// once.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.state == stateClosed {
		t.mu.Unlock()
		<-t.done
		return nil
	}
	wasOpen := t.state == stateOpen
	t.state = stateClosed
	t.cancel()
	conns := make([]*quic.Conn, 0, len(t.conns))
	for qc := range t.conns {
		conns = append(conns, qc)
	}
	ln, qt, udp := t.ln, t.qt, t.udp
	t.mu.Unlock()
	defer close(t.done)

	var errs []error
	if wasOpen {
		if err := ln.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close listener: %w", err))
		}
		var wg sync.WaitGroup
		for _, qc := range conns {
			wg.Go(func() { _ = qc.CloseWithError(codeShutdown, "shutdown") })
		}
		wg.Wait()
		if err := qt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close QUIC transport: %w", err))
		}
		if err := udp.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close UDP socket: %w", err))
		}
	}
	t.wg.Wait()
	if wasOpen {
		t.log.Info("closed")
	}
	return errors.Join(errs...)
}
