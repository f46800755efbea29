package transport

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/stationsync/stationsync/pki"
)

// TestNoClientCertificateRefusedAndLogged: a client that presents no
// certificate at all never gets a stream served, and the node logs why
// (pki.ServerConfig requests the certificate and verifyPeer refuses its
// absence, so the refusal goes through logRefusals like every other).
// The e2e counterpart is e2e TestSecurityQUICRefusesBadCertificates.
func TestNoClientCertificateRefusedAndLogged(t *testing.T) {
	env := newPKI(t)
	var calls atomic.Int32
	b := start(t, env.node(station("s1", "b")), func(tr *Transport) {
		tr.Handle(KindRPC, func(c net.Conn, _ pki.Identity) { calls.Add(1); c.Close() })
	})
	conf := &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}, ServerName: pki.DNSName, InsecureSkipVerify: true}
	qc, err := quic.DialAddr(ctxT(t, 5*time.Second), b.AdvertiseAddr(), conf, &quic.Config{HandshakeIdleTimeout: 3 * time.Second})
	if err == nil {
		// TLS 1.3: the client may finish before the server judged it; the
		// stream must fail at once.
		s, serr := qc.OpenStreamSync(ctxT(t, 5*time.Second))
		if serr == nil {
			_ = s.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = s.Write([]byte{byte(KindRPC), 0, 0, 0, 2, '{', '}'})
			if _, rerr := s.Read(make([]byte, 1)); rerr == nil {
				t.Error("a client without a certificate read an answer")
			}
		}
		_ = qc.CloseWithError(0, "")
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handler called %d times", n)
	}
	deadline := time.Now().Add(3 * time.Second)
	for b.logs.count("no certificate presented") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the node did not log why it refused a client without a certificate")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.mu.Lock()
	nconns := len(b.conns)
	b.mu.Unlock()
	if nconns != 0 {
		t.Errorf("%d connections established", nconns)
	}
}

// TestExpiredCertificateRefusalLoggedOnce: a PC whose certificate expired
// retries every second; its refusal must be logged once, not once per
// second (the x509 error text carries the current time). The e2e
// counterpart is e2e TestSecurityQUICRefusesBadCertificates.
func TestExpiredCertificateRefusalLoggedOnce(t *testing.T) {
	env := newPKI(t)
	b := start(t, env.node(station("s1", "b")), nil)
	dir := filepath.Join(t.TempDir(), "expired")
	if err := pki.Issue(env.caDir, station("s1", "old"), dir, time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, pki.NodeCertFile), filepath.Join(dir, pki.NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}, ServerName: pki.DNSName, InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}
	try := func() {
		qc, err := quic.DialAddr(ctxT(t, 5*time.Second), b.AdvertiseAddr(), conf, &quic.Config{HandshakeIdleTimeout: 3 * time.Second})
		if err == nil {
			if s, err := qc.OpenStreamSync(ctxT(t, 5*time.Second)); err == nil {
				_ = s.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = s.Write([]byte{byte(KindRPC)})
				if _, err := s.Read(make([]byte, 1)); err == nil {
					t.Error("an expired certificate read an answer")
				}
			}
			_ = qc.CloseWithError(0, "")
		}
	}
	try()
	time.Sleep(1100 * time.Millisecond) // the error text's time changes
	try()
	deadline := time.Now().Add(3 * time.Second)
	for b.logs.count("certificate has expired") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d refusals of the expired certificate logged, want 2 (one warning, one debug)", b.logs.count("certificate has expired"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := b.logs.count("logged once per reason"); n != 1 {
		t.Errorf("%d warnings for the same expired certificate, want 1", n)
	}
}
