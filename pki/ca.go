package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// File names inside a CA directory and a node's certificate directory.
const (
	CACertFile   = "ca.crt"
	CAKeyFile    = "ca.key"
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
)

const (
	// CAValidity is the lifetime of a district CA created by InitCA.
	CAValidity = 10 * 365 * 24 * time.Hour
	// DefaultNodeValidity is used by Issue when validity is zero.
	DefaultNodeValidity = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so that a peer whose clock is a little
	// behind accepts a fresh certificate.
	clockSkew = 5 * time.Minute
)

// InitCA creates a district CA in dir: ca.crt and ca.key (mode 0600), an
// ECDSA P-256 key and a self-signed certificate valid for ten years. It
// creates dir if needed and refuses to overwrite an existing ca.key.
func InitCA(dir string) error {
	keyPath := filepath.Join(dir, CAKeyFile)
	if _, err := os.Stat(keyPath); err == nil {
		return fmt.Errorf("init CA: %s already exists; refusing to overwrite the district CA key (move it away first if you really mean to replace the CA)", keyPath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("init CA: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("init CA: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "stationsync district CA", Organization: []string{"stationsync"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("init CA: create certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	// The key is created exclusively so that two concurrent InitCA calls
	// cannot both succeed; the certificate follows it.
	if err := writeExclusive(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, CACertFile), encodeCert(der), 0o644); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	return nil
}

// Issue issues a node certificate for id, signed by the CA in caDir, and
// writes outDir/ca.crt, outDir/node.crt and outDir/node.key (mode 0600),
// creating outDir if needed. Existing files are replaced atomically, so Issue
// renews a running node's certificate in place (see [TLS]). A validity of
// zero means [DefaultNodeValidity]; the certificate never outlives the CA.
func Issue(caDir string, id Identity, outDir string, validity time.Duration) error {
	if err := id.Validate(); err != nil {
		return fmt.Errorf("issue certificate: %w", err)
	}
	id = id.normalize()
	if validity < 0 {
		return fmt.Errorf("issue certificate for %s: negative validity %s", id, validity)
	}
	if validity == 0 {
		validity = DefaultNodeValidity
	}
	caCert, caKey, caPEM, err := loadCA(caDir)
	if err != nil {
		return fmt.Errorf("issue certificate for %s: %w", id, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("issue certificate for %s: generate key: %w", id, err)
	}
	der, err := signNode(caCert, caKey, id, &key.PublicKey, validity)
	if err != nil {
		return fmt.Errorf("issue certificate for %s: %w", id, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return fmt.Errorf("issue certificate for %s: %w", id, err)
	}
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return fmt.Errorf("issue certificate for %s: %w", id, err)
	}
	// Key before certificate: a TLS watching these files sees a mismatched
	// pair in between and keeps its old one until both are in place.
	for _, f := range []struct {
		name string
		data []byte
		perm fs.FileMode
	}{
		{CACertFile, caPEM, 0o644},
		{NodeKeyFile, keyPEM, 0o600},
		{NodeCertFile, encodeCert(der), 0o644},
	} {
		if err := writeAtomic(filepath.Join(outDir, f.name), f.data, f.perm); err != nil {
			return fmt.Errorf("issue certificate for %s: %w", id, err)
		}
	}
	return nil
}

// signNode creates the DER certificate of a node key.
func signNode(caCert *x509.Certificate, caKey *ecdsa.PrivateKey, id Identity, pub *ecdsa.PublicKey, validity time.Duration) ([]byte, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	cn := id.Node + "." + id.Station
	if id.Role == RoleCenter {
		cn = id.Node + ".center"
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"stationsync"}, OrganizationalUnit: []string{string(id.Role)}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{DNSName},
		URIs:         []*url.URL{id.url()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	return der, nil
}

// loadCA reads the CA certificate and key of caDir.
func loadCA(caDir string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	certPath := filepath.Join(caDir, CACertFile)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read CA certificate: %w", err)
	}
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("CA certificate %s: %w", certPath, err)
	}
	caCert := certs[0]
	if !caCert.IsCA {
		return nil, nil, nil, fmt.Errorf("CA certificate %s: not a CA certificate", certPath)
	}
	keyPath := filepath.Join(caDir, CAKeyFile)
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read CA key: %w", err)
	}
	key, err := parseECKey(keyPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("CA key %s: %w", keyPath, err)
	}
	if !key.PublicKey.Equal(caCert.PublicKey) {
		return nil, nil, nil, fmt.Errorf("CA key %s does not match certificate %s", keyPath, certPath)
	}
	return caCert, key, certPEM, nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil // never zero
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseCerts decodes every CERTIFICATE block of a PEM file; there must be at
// least one.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// parseECKey decodes a PKCS#8 or SEC 1 ECDSA private key.
func parseECKey(data []byte) (*ecdsa.PrivateKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse private key: %w", err)
			}
			ec, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("private key is %T, want ECDSA", k)
			}
			return ec, nil
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse private key: %w", err)
			}
			return k, nil
		}
	}
}

// writeExclusive creates path with perm and fails if it exists.
func writeExclusive(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// writeAtomic replaces path with data through a synced temporary file in the
// same directory and a rename, so readers see the old or the new file, never
// a partial one.
func writeAtomic(path string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
