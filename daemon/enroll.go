package daemon

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/replication"
	"github.com/stationsync/stationsync/replication/transport"
)

// EnrollOptions is `stationsync enroll`.
type EnrollOptions struct {
	Center string // the center's QUIC address
	Token  string // from `stationsync token` at the center
	Node   string // this PC's node id
	OutDir string // where ca.crt, node.crt, node.key and station.yaml go
	Expect int    // expect: in the written config (1 if 0)
	Out    io.Writer
}

// enrollRequest and enrollResponse mirror the center's (package center)
// EnrollRequest and EnrollResponse.
type enrollRequest struct {
	V     int    `json:"v"`
	Token string `json:"token"`
	Node  string `json:"node"`
	CSR   []byte `json:"csr"`
}

type enrollResponse struct {
	V       int    `json:"v"`
	Error   string `json:"error,omitempty"`
	Station string `json:"station,omitempty"`
	Cert    []byte `json:"cert,omitempty"`
	CA      []byte `json:"ca,omitempty"`
}

// Enroll makes this PC's key, has the center certify it with the token,
// and writes the certificate files and a config for the station.
func Enroll(ctx context.Context, o EnrollOptions) error {
	tok, err := pki.ParseToken(o.Token)
	if err != nil {
		return err
	}
	if err := (pki.Identity{Role: pki.RoleStation, Station: "x", Node: o.Node}).Validate(); err != nil {
		return fmt.Errorf("--node: %w", err)
	}
	if _, err := os.Stat(filepath.Join(o.OutDir, pki.NodeCertFile)); err == nil {
		return fmt.Errorf("%s already holds a node certificate: enroll into an empty folder (a token enrolls one node once)", o.OutDir)
	}
	keyPEM, csr, err := pki.NewKeyCSR(o.Node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := transport.DialEnroll(ctx, o.Center, tok.MatchesCA)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	if err := json.NewEncoder(conn).Encode(enrollRequest{V: 1, Token: o.Token, Node: o.Node, CSR: csr}); err != nil {
		return fmt.Errorf("send the enrollment request: %w", err)
	}
	var resp enrollResponse
	if err := json.NewDecoder(io.LimitReader(conn, 1<<20)).Decode(&resp); err != nil {
		return fmt.Errorf("read the center's answer: %w", err)
	}
	if resp.Error != "" {
		return fmt.Errorf("the center refused: %s", resp.Error)
	}
	cert, err := pki.ParseCertPEM(resp.Cert)
	if err != nil {
		return fmt.Errorf("the center's certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(conn.CA)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("the center's certificate does not chain to the district CA: %w", err)
	}
	id, err := pki.IdentityFromCert(cert)
	if err != nil || id.Node != o.Node || id.Station != resp.Station {
		return fmt.Errorf("the center's certificate names %s, not node %s of station %s", id, o.Node, resp.Station)
	}
	caPEM := pki.EncodeCert(conn.CA.Raw)
	if err := pki.WriteNodeFiles(o.OutDir, caPEM, keyPEM, resp.Cert); err != nil {
		return err
	}
	cfgPath := filepath.Join(o.OutDir, "station.yaml")
	expect := max(o.Expect, 1)
	if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) {
		text := fmt.Sprintf(`# written by stationsync enroll on %s
role: station
station_id: %s
node_id: %s
listen: 0.0.0.0:4610
api: 127.0.0.1:4680
expect: %d                     # the number of PCs of the station (for the first start)
peers: []                     # list the PCs (host:4610) where multicast is blocked
mdns: true
center: %s
tls: {ca: ca.crt, cert: node.crt, key: node.key}
`, time.Now().Format("2006-01-02"), resp.Station, o.Node, expect, o.Center)
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			return err
		}
	}
	if o.Out != nil {
		fmt.Fprintf(o.Out, "enrolled: node %s of station %s, certificate valid until %s\nfiles in %s: ca.crt node.crt node.key station.yaml\n",
			o.Node, resp.Station, cert.NotAfter.Format("2006-01-02"), o.OutDir)
	}
	return nil
}

// runRenewal renews this node's certificate at the center when less than
// a third of its lifetime is left, without a restart: the new files are
// picked up by the transport for new connections, and connections already
// open keep working.
func (d *Daemon) runRenewal() {
	defer d.wg.Done()
	for {
		leaf := d.tls.Leaf()
		every := min(time.Hour, max(pki.Lifetime(leaf)/10, time.Second))
		if pki.RenewalDue(leaf, time.Now()) {
			if err := d.renew(); err != nil {
				d.renewErr.Store(err.Error())
				d.logger.Warn("certificate renewal at the center failed; retrying", "not_after", leaf.NotAfter, "error", err)
			} else {
				d.renewErr.Store("")
			}
		}
		select {
		case <-d.stop:
			return
		case <-time.After(every):
		}
	}
}

// renew gets a certificate for a new key from the center and writes both.
func (d *Daemon) renew() error {
	keyPEM, csr, err := pki.NewKeyCSR(d.cfg.NodeID)
	if err != nil {
		return err
	}
	ctx, cancel := d.bounded(20 * time.Second)
	defer cancel()
	resp, err := replication.CallFeed(ctx, d.tr, d.cfg.Center, replication.FeedRequest{Method: replication.FeedMethodRenew, CSR: csr})
	if err != nil {
		return err
	}
	if resp.Renewal == nil {
		return errors.New("the center sent no certificate")
	}
	if err := pki.WriteKeyCert(d.cfg.TLS.Key, d.cfg.TLS.Cert, keyPEM, resp.Renewal.Cert); err != nil {
		return err
	}
	leaf := d.tls.Leaf() // reloads from disk
	d.logger.Info("certificate renewed at the center", "not_after", leaf.NotAfter)
	return nil
}
