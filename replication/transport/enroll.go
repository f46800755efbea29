package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/stationsync/stationsync/pki"
)

// EnrollALPN is the protocol a node without a certificate speaks to the
// district center to get one. Its connections are server-authenticated
// only: the client has no certificate yet and proves itself with the
// token inside the request. A center serves it on its usual port when a
// handler is registered (HandleEnroll); other nodes refuse the handshake.
// One connection carries one stream with one request and one answer.
const EnrollALPN = "stationsync-enroll/1"

const enrollTimeout = 15 * time.Second

// HandleEnroll registers the enrollment handler (center only). Register
// before Open. h owns c and must close it; remote is the client's address.
func (t *Transport) HandleEnroll(h func(c net.Conn, remote net.Addr)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.enroll = h
}

// enrollConfig selects, for a client offering only EnrollALPN, a TLS
// configuration without client authentication that presents the CA
// certificate with the node's, so the client can check it against the
// token's CA hash.
func (t *Transport) enrollConfig(base *tls.Config) *tls.Config {
	enroll := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		NextProtos:             []string{EnrollALPN},
		ClientAuth:             tls.NoClientCert,
		SessionTicketsDisabled: true,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.cfg.TLS.CertificateWithCA(), nil
		},
	}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if slices.Equal(hello.SupportedProtos, []string{EnrollALPN}) {
			t.mu.Lock()
			h := t.enroll
			t.mu.Unlock()
			if h != nil {
				return enroll, nil
			}
		}
		return nil, nil
	}
	return base
}

// serveEnroll serves the one stream of an enrollment connection.
func (t *Transport) serveEnroll(qc *quic.Conn) {
	defer t.wg.Done()
	defer qc.CloseWithError(0, "done")
	ctx, cancel := context.WithTimeout(t.ctx, enrollTimeout)
	defer cancel()
	s, err := qc.AcceptStream(ctx)
	if err != nil {
		t.log.Debug("enrollment connection without a request", "remote", qc.RemoteAddr().String(), "err", err)
		return
	}
	t.mu.Lock()
	h := t.enroll
	t.mu.Unlock()
	c := newConn(qc, s)
	c.SetDeadline(time.Now().Add(enrollTimeout))
	h(c, qc.RemoteAddr())
	// Let the answer reach the client before the connection closes.
	select {
	case <-qc.Context().Done():
	case <-time.After(2 * time.Second):
	}
}

// Enrollment is an open enrollment stream to the center.
type Enrollment struct {
	net.Conn
	// CA is the district CA the center presented; the token's hash matched
	// it.
	CA *x509.Certificate
	qc *quic.Conn
	qt *quic.Transport
	pc net.PacketConn
}

// Close closes the stream, the connection and the socket.
func (e *Enrollment) Close() error {
	e.Conn.Close()
	e.qc.CloseWithError(0, "done")
	e.qt.Close()
	return e.pc.Close()
}

// DialEnroll connects to the center at addr for enrollment, from a
// temporary socket. The center is authenticated by its chain: it must
// present a CA certificate for which trustCA says yes (the token's hash),
// and a certificate of role center signed by it.
func DialEnroll(ctx context.Context, addr string, trustCA func(*x509.Certificate) bool) (*Enrollment, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("enroll at %s: %w", addr, err)
	}
	pc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return nil, fmt.Errorf("enroll at %s: %w", addr, err)
	}
	qt := &quic.Transport{Conn: pc}
	var ca *x509.Certificate
	tlsConf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{EnrollALPN},
		ServerName:         pki.DNSName,
		InsecureSkipVerify: true, // replaced by VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) < 2 {
				return errors.New("the center presented no CA certificate (is it a stationsync center with enrollment on?)")
			}
			for _, c := range cs.PeerCertificates[1:] {
				if trustCA(c) {
					ca = c
				}
			}
			if ca == nil {
				return errors.New("the center's CA does not match the token: wrong center address, or a token of another district")
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return fmt.Errorf("the center's certificate: %w", err)
			}
			id, err := pki.IdentityFromCert(leaf)
			if err != nil {
				return err
			}
			if id.Role != pki.RoleCenter {
				return fmt.Errorf("%s is not the district center (it is %s)", addr, id)
			}
			return nil
		},
	}
	qconf := &quic.Config{HandshakeIdleTimeout: handshakeIdleTimeout, MaxIdleTimeout: maxIdleTimeout}
	qc, err := qt.Dial(ctx, raddr, tlsConf, qconf)
	if err != nil {
		qt.Close()
		pc.Close()
		return nil, fmt.Errorf("enroll at %s: %w", addr, err)
	}
	s, err := qc.OpenStreamSync(ctx)
	if err != nil {
		qc.CloseWithError(0, "")
		qt.Close()
		pc.Close()
		return nil, fmt.Errorf("enroll at %s: %w", addr, err)
	}
	return &Enrollment{Conn: newConn(qc, s), CA: ca, qc: qc, qt: qt, pc: pc}, nil
}
