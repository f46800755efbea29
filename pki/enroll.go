package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Enrollment: a node makes its own key and asks the district center to
// certify it, authenticated by a one-time token the center issued. The
// token also carries a fingerprint of the district CA, so the node can
// authenticate the center before it has the CA (as kubeadm's join token
// does):
//
//	ssd1.<26 base32 characters: 128-bit secret>.<32 hex: first 128 bits of SHA-256(CA certificate DER)>
//
// The center stores only the SHA-256 of the secret.

const tokenPrefix = "ssd1"

// Token is a parsed enrollment token.
type Token struct {
	Secret []byte // 16 bytes
	CAHash string // hex prefix of the CA certificate's SHA-256
}

// String is the token as an admin types it.
func (t Token) String() string {
	return tokenPrefix + "." + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(t.Secret)) + "." + t.CAHash
}

// Hash is what the center stores for the token: the hex SHA-256 of its
// secret.
func (t Token) Hash() string {
	sum := sha256.Sum256(t.Secret)
	return hex.EncodeToString(sum[:])
}

// NewToken makes a token for the CA in caDir.
func NewToken(caDir string) (Token, error) {
	fp, err := CAFingerprint(caDir)
	if err != nil {
		return Token{}, err
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return Token{}, err
	}
	return Token{Secret: secret, CAHash: fp[:32]}, nil
}

// ParseToken checks a token's form.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 || parts[0] != tokenPrefix {
		return Token{}, errors.New("token: not an enrollment token (ssd1.<secret>.<ca hash>): copy it whole from `stationsync token`")
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(parts[1]))
	if err != nil || len(secret) != 16 {
		return Token{}, errors.New("token: the secret part is damaged: copy the token whole")
	}
	if b, err := hex.DecodeString(parts[2]); err != nil || len(b) != 16 {
		return Token{}, errors.New("token: the CA part is damaged: copy the token whole")
	}
	return Token{Secret: secret, CAHash: strings.ToLower(parts[2])}, nil
}

// CAFingerprint is the hex SHA-256 of the CA certificate in caDir.
func CAFingerprint(caDir string) (string, error) {
	c, _, _, err := loadCA(caDir)
	if err != nil {
		return "", err
	}
	return Fingerprint(c.Raw), nil
}

// MatchesCA says whether cert is the CA the token names.
func (t Token) MatchesCA(cert *x509.Certificate) bool {
	fp := Fingerprint(cert.Raw)
	return cert.IsCA && subtle.ConstantTimeCompare([]byte(fp[:len(t.CAHash)]), []byte(t.CAHash)) == 1
}

// NewKeyCSR makes a node key and a certificate request for it. The center
// decides the identity in the certificate; the request only proves the
// key.
func NewKeyCSR(node string) (keyPEM, csrDER []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	csrDER, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: node}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate request: %w", err)
	}
	keyPEM, err = encodeKey(key)
	return keyPEM, csrDER, err
}

// SignCSR certifies the key of a certificate request for id, with the CA
// in caDir, valid for validity (DefaultNodeValidity if 0; never past the
// CA). It returns the certificate and the CA certificate, in PEM.
func SignCSR(caDir string, csrDER []byte, id Identity, validity time.Duration) (certPEM, caPEM []byte, err error) {
	if err := id.Validate(); err != nil {
		return nil, nil, fmt.Errorf("sign: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, nil, fmt.Errorf("sign: certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, fmt.Errorf("sign: certificate request: %w", err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, nil, errors.New("sign: the request's key must be ECDSA P-256")
	}
	if validity <= 0 {
		validity = DefaultNodeValidity
	}
	caCert, caKey, caPEM, err := loadCA(caDir)
	if err != nil {
		return nil, nil, fmt.Errorf("sign: %w", err)
	}
	der, err := signNode(caCert, caKey, id.normalize(), pub, validity)
	if err != nil {
		return nil, nil, fmt.Errorf("sign: %w", err)
	}
	return encodeCert(der), caPEM, nil
}

// WriteNodeFiles writes ca.crt, node.key and node.crt into dir (the key
// before the certificate, each atomically, so a running node that watches
// them never loads a mismatched pair), creating dir if needed. The
// certificate must match the key.
func WriteNodeFiles(dir string, caPEM, keyPEM, certPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		perm fs.FileMode
	}{
		{CACertFile, caPEM, 0o644},
		{NodeKeyFile, keyPEM, 0o600},
		{NodeCertFile, certPEM, 0o644},
	} {
		if f.data == nil {
			continue
		}
		if err := writeAtomic(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}

// RenewalDue says whether a certificate has less than a third of its
// lifetime (from issue, not from the backdated NotBefore) left at now.
func RenewalDue(c *x509.Certificate, now time.Time) bool {
	return c.NotAfter.Sub(now) < Lifetime(c)/3
}

// Lifetime is how long a certificate is valid from its issue (its
// NotBefore is set back a few minutes for clock differences).
func Lifetime(c *x509.Certificate) time.Duration {
	return c.NotAfter.Sub(c.NotBefore.Add(clockSkew))
}

// ParseCertPEM parses the first certificate of a PEM block list.
func ParseCertPEM(b []byte) (*x509.Certificate, error) {
	cs, err := parseCerts(b)
	if err != nil {
		return nil, err
	}
	return cs[0], nil
}

// WriteKeyCert replaces a node's key and certificate files, the key first
// and each atomically, so a TLS watching them moves from the old pair to
// the new one without ever loading a mismatched pair.
func WriteKeyCert(keyPath, certPath string, keyPEM, certPEM []byte) error {
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("the new certificate does not match the new key: %w", err)
	}
	if err := writeAtomic(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return writeAtomic(certPath, certPEM, 0o644)
}

// EncodeCert encodes a DER certificate as PEM.
func EncodeCert(der []byte) []byte { return encodeCert(der) }
