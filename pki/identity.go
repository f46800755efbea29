package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Role is the role a certificate grants its holder.
type Role string

const (
	// RoleStation is a PC (or kiosk) of one service station.
	RoleStation Role = "station"
	// RoleCenter is a node of the district center.
	RoleCenter Role = "center"
)

// URIScheme is the scheme of the URI SAN that carries an [Identity].
const URIScheme = "stationsync"

// DNSName is the DNS SAN every node certificate carries; clients send it as
// the TLS server name. It identifies nothing: the identity is in the URI SAN.
const DNSName = "stationsync"

// centerStation is the station segment of a center certificate's URI.
const centerStation = "-"

// maxIDLen bounds station and node ids.
const maxIDLen = 64

// Identity names a node: its role, its station (empty for the center) and its
// node id. It is what a certificate proves about its holder.
type Identity struct {
	Role    Role
	Station string // empty for RoleCenter
	Node    string
}

// String returns the identity in its URI form,
// stationsync://<role>/<station>/<node>.
func (id Identity) String() string {
	return id.url().String()
}

func (id Identity) url() *url.URL {
	station := id.Station
	if id.Role == RoleCenter {
		station = centerStation
	}
	return &url.URL{
		Scheme: URIScheme,
		Host:   string(id.Role),
		Path:   "/" + station + "/" + id.Node,
		RawPath: "/" + url.PathEscape(station) + "/" +
			url.PathEscape(id.Node),
	}
}

// Validate reports whether id can be put in a certificate. Role must be known;
// Node is required; Station is required for RoleStation and must be empty (or
// "-") for RoleCenter. Ids are 1 to 64 characters of [A-Za-z0-9._-] and not
// "." or "..". The error names the offending field.
func (id Identity) Validate() error {
	switch id.Role {
	case RoleStation:
		if id.Station == "" {
			return errors.New("identity: station is required for role station")
		}
		if err := validID("station", id.Station); err != nil {
			return err
		}
	case RoleCenter:
		if id.Station != "" && id.Station != centerStation {
			return fmt.Errorf("identity: station must be empty for role center, got %q", id.Station)
		}
	case "":
		return errors.New("identity: role is required")
	default:
		return fmt.Errorf("identity: role %q is unknown (want %q or %q)", id.Role, RoleStation, RoleCenter)
	}
	if id.Node == "" {
		return errors.New("identity: node is required")
	}
	return validID("node", id.Node)
}

// normalize returns id with the center's station cleared.
func (id Identity) normalize() Identity {
	if id.Role == RoleCenter {
		id.Station = ""
	}
	return id
}

func validID(field, s string) error {
	if len(s) > maxIDLen {
		return fmt.Errorf("identity: %s %q is longer than %d characters", field, s, maxIDLen)
	}
	if s == "." || s == ".." {
		return fmt.Errorf("identity: %s %q is not allowed", field, s)
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("identity: %s %q contains %q (allowed: A-Z a-z 0-9 . _ -)", field, s, r)
		}
	}
	return nil
}

// IdentityFromCert extracts the identity from a certificate's stationsync URI
// SAN. It does not verify the certificate: callers must have verified the
// chain (the TLS configs of this package do).
func IdentityFromCert(c *x509.Certificate) (Identity, error) {
	if c == nil {
		return Identity{}, errors.New("identity from certificate: no certificate")
	}
	var found *url.URL
	for _, u := range c.URIs {
		if u.Scheme != URIScheme {
			continue
		}
		if found != nil {
			return Identity{}, errors.New("identity from certificate: more than one stationsync URI SAN")
		}
		found = u
	}
	if found == nil {
		return Identity{}, fmt.Errorf("identity from certificate %q: no stationsync URI SAN", c.Subject.CommonName)
	}
	id, err := parseIdentityURL(found)
	if err != nil {
		return Identity{}, fmt.Errorf("identity from certificate %q: %w", c.Subject.CommonName, err)
	}
	return id, nil
}

func parseIdentityURL(u *url.URL) (Identity, error) {
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return Identity{}, fmt.Errorf("malformed identity URI %q", u)
	}
	parts := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	if !strings.HasPrefix(u.EscapedPath(), "/") || len(parts) != 2 {
		return Identity{}, fmt.Errorf("identity URI %q: want %s://<role>/<station>/<node>", u, URIScheme)
	}
	station, err := url.PathUnescape(parts[0])
	if err != nil {
		return Identity{}, fmt.Errorf("identity URI %q: station: %w", u, err)
	}
	node, err := url.PathUnescape(parts[1])
	if err != nil {
		return Identity{}, fmt.Errorf("identity URI %q: node: %w", u, err)
	}
	id := Identity{Role: Role(u.Host), Station: station, Node: node}
	if id.Role == RoleCenter && station != centerStation {
		return Identity{}, fmt.Errorf("identity URI %q: center station must be %q", u, centerStation)
	}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("identity URI %q: %w", u, err)
	}
	return id.normalize(), nil
}

// Fingerprint is the hex SHA-256 of a certificate in DER form: what a node
// announces in its mDNS TXT record "fp", compared with the certificate the
// node presents when dialled.
func Fingerprint(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return hex.EncodeToString(sum[:])
}
