package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// issueNode creates a node certificate directory under dir for id.
func issueNode(t *testing.T, caDir string, id Identity) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), id.Node)
	if err := Issue(caDir, id, out, time.Hour); err != nil {
		t.Fatalf("Issue(%v): %v", id, err)
	}
	return out
}

func newCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := InitCA(dir); err != nil {
		t.Fatalf("InitCA: %v", err)
	}
	return dir
}

func loadNode(t *testing.T, dir string) *TLS {
	t.Helper()
	tl, err := LoadTLS(filepath.Join(dir, CACertFile), filepath.Join(dir, NodeCertFile), filepath.Join(dir, NodeKeyFile))
	if err != nil {
		t.Fatalf("LoadTLS: %v", err)
	}
	return tl
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := parseCerts(data)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func TestInitCAAndIssueRoundTrip(t *testing.T) {
	caDir := newCA(t)
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(filepath.Join(caDir, CAKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("ca.key mode = %v, want 0600", fi.Mode().Perm())
		}
	}
	ca := readCert(t, filepath.Join(caDir, CACertFile))
	if !ca.IsCA || ca.NotAfter.Before(time.Now().Add(9*365*24*time.Hour)) {
		t.Errorf("CA: IsCA=%v NotAfter=%v", ca.IsCA, ca.NotAfter)
	}

	err := InitCA(caDir)
	if err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second InitCA: err = %v, want refusal", err)
	}

	id := Identity{Role: RoleStation, Station: "st-01", Node: "pc1"}
	out := issueNode(t, caDir, id)
	for _, f := range []string{CACertFile, NodeCertFile, NodeKeyFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	if runtime.GOOS != "windows" {
		fi, _ := os.Stat(filepath.Join(out, NodeKeyFile))
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("node.key mode = %v, want 0600", fi.Mode().Perm())
		}
	}
	leaf := readCert(t, filepath.Join(out, NodeCertFile))
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "stationsync://station/st-01/pc1" {
		t.Errorf("URIs = %v", leaf.URIs)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != DNSName {
		t.Errorf("DNSNames = %v", leaf.DNSNames)
	}
	if len(leaf.ExtKeyUsage) != 2 {
		t.Errorf("ExtKeyUsage = %v", leaf.ExtKeyUsage)
	}
	if leaf.NotAfter.After(time.Now().Add(time.Hour + time.Minute)) {
		t.Errorf("NotAfter = %v, want about an hour", leaf.NotAfter)
	}

	tl := loadNode(t, out)
	if got := tl.Identity(); got != id {
		t.Errorf("Identity() = %+v, want %+v", got, id)
	}
}

func TestIdentityFromCert(t *testing.T) {
	caDir := newCA(t)
	for _, tc := range []struct {
		in, want Identity
		uri      string
	}{
		{Identity{Role: RoleStation, Station: "a.b_c-1", Node: "N-2"}, Identity{Role: RoleStation, Station: "a.b_c-1", Node: "N-2"}, "stationsync://station/a.b_c-1/N-2"},
		{Identity{Role: RoleCenter, Node: "c1"}, Identity{Role: RoleCenter, Node: "c1"}, "stationsync://center/-/c1"},
		{Identity{Role: RoleCenter, Station: "-", Node: "c2"}, Identity{Role: RoleCenter, Node: "c2"}, "stationsync://center/-/c2"},
	} {
		out := issueNode(t, caDir, tc.in)
		leaf := readCert(t, filepath.Join(out, NodeCertFile))
		got, err := IdentityFromCert(leaf)
		if err != nil {
			t.Fatalf("IdentityFromCert(%v): %v", tc.in, err)
		}
		if got != tc.want {
			t.Errorf("IdentityFromCert = %+v, want %+v", got, tc.want)
		}
		if s := got.String(); s != tc.uri {
			t.Errorf("String() = %q, want %q", s, tc.uri)
		}
	}

	// A certificate without a stationsync URI (the CA's) has no identity.
	if _, err := IdentityFromCert(readCert(t, filepath.Join(caDir, CACertFile))); err == nil {
		t.Error("IdentityFromCert(CA) succeeded")
	}
	if _, err := IdentityFromCert(nil); err == nil {
		t.Error("IdentityFromCert(nil) succeeded")
	}
}

func TestIssueRefusesBadIdentity(t *testing.T) {
	caDir := newCA(t)
	for _, tc := range []struct {
		id    Identity
		field string
	}{
		{Identity{Role: RoleStation, Station: "s1"}, "node"},
		{Identity{Role: RoleStation, Node: "n1"}, "station"},
		{Identity{Station: "s1", Node: "n1"}, "role"},
		{Identity{Role: "admin", Station: "s1", Node: "n1"}, "role"},
		{Identity{Role: RoleStation, Station: "s 1", Node: "n1"}, "station"},
		{Identity{Role: RoleStation, Station: "s1", Node: "n/1"}, "node"},
		{Identity{Role: RoleStation, Station: "..", Node: "n1"}, "station"},
		{Identity{Role: RoleStation, Station: "站点", Node: "n1"}, "station"},
		{Identity{Role: RoleStation, Station: "s1", Node: strings.Repeat("n", 65)}, "node"},
		{Identity{Role: RoleCenter, Station: "s1", Node: "c1"}, "station"},
	} {
		out := filepath.Join(t.TempDir(), "out")
		err := Issue(caDir, tc.id, out, time.Hour)
		if err == nil {
			t.Errorf("Issue(%+v) succeeded", tc.id)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("Issue(%+v) error %q does not name %q", tc.id, err, tc.field)
		}
		if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Issue(%+v) wrote %s", tc.id, out)
		}
	}
}

func TestLoadTLSErrorsNameFile(t *testing.T) {
	caDir := newCA(t)
	out := issueNode(t, caDir, Identity{Role: RoleStation, Station: "s1", Node: "n1"})
	missing := filepath.Join(out, "nope.crt")
	_, err := LoadTLS(missing, filepath.Join(out, NodeCertFile), filepath.Join(out, NodeKeyFile))
	if err == nil || !strings.Contains(err.Error(), "nope.crt") {
		t.Errorf("missing CA: err = %v", err)
	}
	// Key of another node: mismatch names both files.
	other := issueNode(t, caDir, Identity{Role: RoleStation, Station: "s1", Node: "n2"})
	_, err = LoadTLS(filepath.Join(out, CACertFile), filepath.Join(out, NodeCertFile), filepath.Join(other, NodeKeyFile))
	if err == nil || !strings.Contains(err.Error(), NodeKeyFile) {
		t.Errorf("mismatched key: err = %v", err)
	}
	// Certificate of another CA.
	otherCA := newCA(t)
	_, err = LoadTLS(filepath.Join(otherCA, CACertFile), filepath.Join(out, NodeCertFile), filepath.Join(out, NodeKeyFile))
	if err == nil || !strings.Contains(err.Error(), NodeCertFile) {
		t.Errorf("foreign CA: err = %v", err)
	}
}

// handshake runs a TLS handshake over an in-memory pipe and returns the
// identities each side saw (and each side's error).
func handshake(t *testing.T, server, client *TLS, verifyServer, verifyClient func(Identity) error) (sawClient, sawServer Identity, serr, cerr error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	const alpn = "test/1"
	srv := tls.Server(a, server.ServerConfig(alpn, func(id Identity) error {
		sawClient = id
		if verifyServer != nil {
			return verifyServer(id)
		}
		return nil
	}))
	cli := tls.Client(b, client.ClientConfig(alpn, func(id Identity) error {
		sawServer = id
		if verifyClient != nil {
			return verifyClient(id)
		}
		return nil
	}))
	done := make(chan error, 1)
	go func() {
		err := srv.Handshake()
		if err != nil {
			a.Close()
		}
		done <- err
	}()
	_ = a.SetDeadline(time.Now().Add(5 * time.Second))
	_ = b.SetDeadline(time.Now().Add(5 * time.Second))
	cerr = cli.Handshake()
	if cerr != nil {
		b.Close()
	} else {
		// TLS 1.3: the server verifies the client after the client's
		// handshake finished; a read surfaces the server's verdict.
		go func() { _, _ = srv.Write([]byte("x")) }()
		buf := make([]byte, 1)
		if _, err := cli.Read(buf); err != nil {
			cerr = err
		}
	}
	serr = <-done
	return sawClient, sawServer, serr, cerr
}

func TestTLSMutualVerification(t *testing.T) {
	caDir := newCA(t)
	s1 := Identity{Role: RoleStation, Station: "s1", Node: "n1"}
	s2 := Identity{Role: RoleStation, Station: "s1", Node: "n2"}
	a := loadNode(t, issueNode(t, caDir, s1))
	b := loadNode(t, issueNode(t, caDir, s2))

	sawClient, sawServer, serr, cerr := handshake(t, a, b, nil, nil)
	if serr != nil || cerr != nil {
		t.Fatalf("handshake: server %v, client %v", serr, cerr)
	}
	if sawClient != s2 || sawServer != s1 {
		t.Errorf("server saw %+v, client saw %+v", sawClient, sawServer)
	}

	// The policy can refuse.
	_, _, serr, _ = handshake(t, a, b, func(Identity) error { return errors.New("not today") }, nil)
	if serr == nil || !strings.Contains(serr.Error(), "not today") {
		t.Errorf("refusing server: err = %v", serr)
	}
}

func TestTLSForeignCAFails(t *testing.T) {
	a := loadNode(t, issueNode(t, newCA(t), Identity{Role: RoleStation, Station: "s1", Node: "n1"}))
	evil := loadNode(t, issueNode(t, newCA(t), Identity{Role: RoleStation, Station: "s1", Node: "n1"}))

	// evil as client: a (server) must refuse its certificate.
	called := false
	_, _, serr, _ := handshake(t, a, evil, func(Identity) error { called = true; return nil }, nil)
	if serr == nil {
		t.Error("server accepted a client of another CA")
	}
	// evil as server: a (client) must refuse.
	_, _, _, cerr := handshake(t, evil, a, nil, func(Identity) error { called = true; return nil })
	if cerr == nil {
		t.Error("client accepted a server of another CA")
	}
	if called {
		t.Error("identity policy called for a certificate of another CA")
	}
}

func TestTLSReloadsRenewedCertificate(t *testing.T) {
	caDir := newCA(t)
	id := Identity{Role: RoleStation, Station: "s1", Node: "n1"}
	dir := issueNode(t, caDir, id)
	tl := loadNode(t, dir)
	first := tl.Leaf().SerialNumber

	// Renew in place (as a running node's renewal does), then make sure the
	// mtime differs even on coarse-grained file systems.
	if err := Issue(caDir, id, dir, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(10 * time.Second)
	for _, f := range []string{NodeCertFile, NodeKeyFile} {
		if err := os.Chtimes(filepath.Join(dir, f), future, future); err != nil {
			t.Fatal(err)
		}
	}
	cfg := tl.ServerConfig("x", nil)
	c, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf.SerialNumber.Cmp(first) == 0 {
		t.Fatal("certificate not reloaded after renewal")
	}
	if err := tl.ReloadError(); err != nil {
		t.Errorf("ReloadError = %v", err)
	}

	// A broken rewrite keeps the previous pair and reports why.
	second := c.Leaf.SerialNumber
	if err := os.WriteFile(filepath.Join(dir, NodeKeyFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := future.Add(10 * time.Second)
	_ = os.Chtimes(filepath.Join(dir, NodeKeyFile), later, later)
	if got := tl.Leaf().SerialNumber; got.Cmp(second) != 0 {
		t.Error("broken key file replaced the certificate in use")
	}
	if err := tl.ReloadError(); err == nil || !strings.Contains(err.Error(), NodeKeyFile) {
		t.Errorf("ReloadError = %v, want one naming the key file", err)
	}
	cc, err := tl.ClientConfig("x", nil).GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil || cc.Leaf.SerialNumber.Cmp(second) != 0 {
		t.Errorf("client certificate after broken rewrite: %v", err)
	}
}

func TestPeerIdentity(t *testing.T) {
	caDir := newCA(t)
	id := Identity{Role: RoleCenter, Node: "c1"}
	leaf := readCert(t, filepath.Join(issueNode(t, caDir, id), NodeCertFile))
	got, err := PeerIdentity(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}})
	if err != nil || got != id {
		t.Errorf("PeerIdentity = %+v, %v", got, err)
	}
	if _, err := PeerIdentity(tls.ConnectionState{}); err == nil {
		t.Error("PeerIdentity without certificates succeeded")
	}
}

func TestFingerprint(t *testing.T) {
	// SHA-256("abc"), FIPS 180-2 test vector.
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := Fingerprint([]byte("abc")); got != want {
		t.Fatalf("Fingerprint = %s, want %s", got, want)
	}
}
