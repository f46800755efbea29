package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// TLS holds a node's district CA pool and its certificate and key, and builds
// TLS 1.3 configurations for QUIC with mutual authentication.
//
// The certificate and key files are re-read when their modification time or
// size changes (checked at every handshake and by [TLS.Identity] and
// [TLS.Leaf]), so a renewed certificate is used without a restart. A pair that
// fails to load (unreadable, mismatched, not signed by the CA) is ignored and
// the previous pair keeps serving; the load is retried until it succeeds. The
// CA file is read once by [LoadTLS]: replacing the district CA needs a
// restart.
//
// A TLS is safe for concurrent use.
type TLS struct {
	caFile, certFile, keyFile string
	roots                     *x509.CertPool
	caDER                     [][]byte

	mu        sync.Mutex
	cert      *tls.Certificate
	id        Identity
	certStamp fileStamp
	keyStamp  fileStamp
	reloadErr error
}

// fileStamp identifies one version of a file.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// LoadTLS reads the district CA certificate(s) from caFile and the node's
// certificate chain and key from certFile and keyFile. The node certificate
// must chain to the CA, carry a valid identity and allow both server and
// client authentication. Errors name the file at fault.
func LoadTLS(caFile, certFile, keyFile string) (*TLS, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS: read CA file: %w", err)
	}
	caCerts, err := parseCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("load TLS: CA file %s: %w", caFile, err)
	}
	roots := x509.NewCertPool()
	var caDER [][]byte
	for _, c := range caCerts {
		if !c.IsCA {
			return nil, fmt.Errorf("load TLS: CA file %s: certificate %q is not a CA", caFile, c.Subject.CommonName)
		}
		roots.AddCert(c)
		caDER = append(caDER, c.Raw)
	}
	t := &TLS{caFile: caFile, certFile: certFile, keyFile: keyFile, roots: roots, caDER: caDER}
	certStamp, err := stampOf(certFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS: certificate file: %w", err)
	}
	keyStamp, err := stampOf(keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS: key file: %w", err)
	}
	cert, id, err := t.loadPair()
	if err != nil {
		return nil, fmt.Errorf("load TLS: %w", err)
	}
	t.cert, t.id, t.certStamp, t.keyStamp = cert, id, certStamp, keyStamp
	return t, nil
}

// loadPair reads and checks the certificate and key files.
func (t *TLS) loadPair() (*tls.Certificate, Identity, error) {
	certPEM, err := os.ReadFile(t.certFile)
	if err != nil {
		return nil, Identity{}, fmt.Errorf("read certificate file: %w", err)
	}
	keyPEM, err := os.ReadFile(t.keyFile)
	if err != nil {
		return nil, Identity{}, fmt.Errorf("read key file: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, Identity{}, fmt.Errorf("certificate file %s and key file %s: %w", t.certFile, t.keyFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, Identity{}, fmt.Errorf("certificate file %s: %w", t.certFile, err)
		}
		pair.Leaf = leaf
	}
	var intermediates []*x509.Certificate
	for _, der := range pair.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, Identity{}, fmt.Errorf("certificate file %s: intermediate: %w", t.certFile, err)
		}
		intermediates = append(intermediates, c)
	}
	if err := t.verifyChain(leaf, intermediates, x509.ExtKeyUsageAny); err != nil {
		return nil, Identity{}, fmt.Errorf("certificate file %s: not valid for CA file %s: %w", t.certFile, t.caFile, err)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if !slices.Contains(leaf.ExtKeyUsage, u) {
			return nil, Identity{}, fmt.Errorf("certificate file %s: certificate must allow both server and client authentication", t.certFile)
		}
	}
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return nil, Identity{}, fmt.Errorf("certificate file %s: %w", t.certFile, err)
	}
	return &pair, id, nil
}

// current returns the certificate to present, reloading it first if its files
// changed on disk.
func (t *TLS) current() (*tls.Certificate, Identity) {
	t.mu.Lock()
	defer t.mu.Unlock()
	certStamp, err1 := stampOf(t.certFile)
	keyStamp, err2 := stampOf(t.keyFile)
	if err := errors.Join(err1, err2); err != nil {
		// Mid-rename or removed: keep serving what we have.
		t.reloadErr = fmt.Errorf("reload TLS: %w", err)
		return t.cert, t.id
	}
	if certStamp == t.certStamp && keyStamp == t.keyStamp {
		return t.cert, t.id
	}
	cert, id, err := t.loadPair()
	if err != nil {
		t.reloadErr = fmt.Errorf("reload TLS: %w", err)
		return t.cert, t.id
	}
	t.cert, t.id, t.certStamp, t.keyStamp, t.reloadErr = cert, id, certStamp, keyStamp, nil
	return t.cert, t.id
}

// Identity returns the identity of the local certificate in use.
func (t *TLS) Identity() Identity {
	_, id := t.current()
	return id
}

// Leaf returns the local certificate in use (for expiry checks and
// fingerprints). The caller must not modify it.
func (t *TLS) Leaf() *x509.Certificate {
	c, _ := t.current()
	return c.Leaf
}

// CertificateWithCA returns the certificate in use with the CA
// certificates appended to its chain, for a peer that does not have the
// CA yet (enrollment).
func (t *TLS) CertificateWithCA() *tls.Certificate {
	c, _ := t.current()
	out := *c
	out.Certificate = append(append([][]byte(nil), c.Certificate...), t.caDER...)
	return &out
}

// ReloadError returns why the latest attempt to reload changed certificate or
// key files failed, or nil if the files in use are the ones on disk.
func (t *TLS) ReloadError() error {
	t.current()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reloadErr
}

// ServerConfig returns a TLS 1.3 server configuration for the ALPN protocol
// alpn. It requires a client certificate, verifies its chain against the
// district CA for client authentication, extracts the peer's identity and
// passes it to verify (if not nil); an error from verify fails the handshake.
// Session tickets are disabled, so every connection is verified in full.
func (t *TLS) ServerConfig(alpn string, verify func(Identity) error) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{alpn},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, _ := t.current()
			return c, nil
		},
		// Requested, not required, so that a client without a certificate
		// reaches VerifyConnection, which refuses it (verifyPeer: "no
		// certificate presented") where the caller can log the refusal;
		// with RequireAnyClientCert crypto/tls refuses it before any
		// callback runs and the node cannot say why a PC was turned away.
		// Either way no handshake completes without a certificate.
		ClientAuth:             tls.RequestClientCert,
		SessionTicketsDisabled: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return t.verifyPeer(cs, alpn, x509.ExtKeyUsageClientAuth, verify)
		},
	}
}

// ClientConfig returns a TLS 1.3 client configuration for the ALPN protocol
// alpn. The standard host name verification is off (InsecureSkipVerify):
// peers are addressed by IP addresses that change, so the server is verified
// by its chain to the district CA for server authentication and by its
// identity, which is passed to verify (if not nil); an error from verify
// fails the handshake. The client presents the local certificate.
func (t *TLS) ClientConfig(alpn string, verify func(Identity) error) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{alpn},
		ServerName:         DNSName,
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, _ := t.current()
			return c, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return t.verifyPeer(cs, alpn, x509.ExtKeyUsageServerAuth, verify)
		},
	}
}

// verifyPeer checks the peer's chain, usage, protocol and identity.
func (t *TLS) verifyPeer(cs tls.ConnectionState, alpn string, usage x509.ExtKeyUsage, verify func(Identity) error) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("verify peer: no certificate presented")
	}
	leaf := cs.PeerCertificates[0]
	if alpn != "" && cs.NegotiatedProtocol != alpn {
		return fmt.Errorf("verify peer: application protocol %q, want %q", cs.NegotiatedProtocol, alpn)
	}
	if err := t.verifyChain(leaf, cs.PeerCertificates[1:], usage); err != nil {
		return fmt.Errorf("verify peer %q: %w", leaf.Subject.CommonName, err)
	}
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return fmt.Errorf("verify peer: %w", err)
	}
	if verify != nil {
		if err := verify(id); err != nil {
			return fmt.Errorf("verify peer %s: refused: %w", id, err)
		}
	}
	return nil
}

// verifyChain verifies leaf (with the intermediates given) against the CA
// pool for usage.
func (t *TLS) verifyChain(leaf *x509.Certificate, intermediates []*x509.Certificate, usage x509.ExtKeyUsage) error {
	opts := x509.VerifyOptions{
		Roots:     t.roots,
		KeyUsages: []x509.ExtKeyUsage{usage},
	}
	if len(intermediates) > 0 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range intermediates {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := leaf.Verify(opts); err != nil {
		return err
	}
	return nil
}

// PeerIdentity returns the identity in the peer's leaf certificate of a
// connection. It does not verify the chain: use it on connections made with
// [TLS.ServerConfig] or [TLS.ClientConfig], which did.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, errors.New("peer identity: no peer certificate")
	}
	return IdentityFromCert(cs.PeerCertificates[0])
}
