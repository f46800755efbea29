package center

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/stationsync/stationsync/daemon"
	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication"
)

// Enrollment and renewal at the center. An admin makes a one-time token
// for a station (`stationsync token --station ID` -> POST /v1/tokens); a
// new PC sends a certificate request with the token over QUIC
// (transport.EnrollALPN, server-authenticated); the center spends the
// token (a replicated op: one node per token) and certifies the PC's key
// for that station. A station node renews its certificate over its usual
// mTLS connection (feed method "renew"), for the identity its current
// certificate proves.

// EnrollRequest is what an enrolling node sends.
type EnrollRequest struct {
	V     int    `json:"v"`
	Token string `json:"token"`
	Node  string `json:"node"`
	CSR   []byte `json:"csr"` // DER
}

// EnrollResponse is the center's answer.
type EnrollResponse struct {
	V       int    `json:"v"`
	Error   string `json:"error,omitempty"`
	Station string `json:"station,omitempty"`
	Cert    []byte `json:"cert,omitempty"` // PEM
	CA      []byte `json:"ca,omitempty"`   // PEM
}

const maxEnrollRequest = 64 << 10

// ServeEnroll answers one enrollment request (transport.EnrollALPN).
func (c *Center) ServeEnroll(conn net.Conn, remote net.Addr) {
	defer conn.Close()
	select {
	case <-c.ready:
	case <-c.stop:
		return
	case <-time.After(5 * time.Second):
		json.NewEncoder(conn).Encode(EnrollResponse{V: 1, Error: "the center is starting: try again"})
		return
	}
	var req EnrollRequest
	resp := EnrollResponse{V: 1}
	if err := json.NewDecoder(&io64{r: conn, n: maxEnrollRequest}).Decode(&req); err != nil {
		resp.Error = "bad enrollment request: " + err.Error()
	} else {
		resp = c.enroll(req)
		resp.V = 1
	}
	if resp.Error != "" {
		c.logger.Warn("enrollment refused", "remote", remote.String(), "node", req.Node, "reason", resp.Error)
	} else {
		c.logger.Info("node enrolled", "station", resp.Station, "node", req.Node, "remote", remote.String())
	}
	json.NewEncoder(conn).Encode(resp)
}

// io64 reads at most n bytes.
type io64 struct {
	r interface{ Read([]byte) (int, error) }
	n int
}

func (l *io64) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("request larger than %d bytes", maxEnrollRequest)
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= n
	return n, err
}

func (c *Center) enroll(req EnrollRequest) EnrollResponse {
	if req.V != 1 {
		return EnrollResponse{Error: fmt.Sprintf("enrollment version %d not understood (this center speaks 1)", req.V)}
	}
	if c.caDir == "" {
		return EnrollResponse{Error: "this center has no ca_dir: enrollment is off (issue certificates with `stationsync ca issue`)"}
	}
	tok, err := pki.ParseToken(req.Token)
	if err != nil {
		return EnrollResponse{Error: err.Error()}
	}
	var known *records.EnrollToken
	if err := c.node.View(func(r records.Reader) (err error) { known, err = records.GetToken(r, tok.Hash()); return err }); err != nil {
		return EnrollResponse{Error: "internal: " + err.Error()}
	}
	if known == nil {
		return EnrollResponse{Error: "the token is not known to this center: check it, or make one with `stationsync token --station ID` at the center"}
	}
	id := pki.Identity{Role: pki.RoleStation, Station: known.Station, Node: req.Node}
	if err := id.Validate(); err != nil {
		return EnrollResponse{Error: err.Error()}
	}
	ctx, cancel := c.ctx(30 * time.Second)
	defer cancel()
	use := records.EnrollToken{Hash: tok.Hash(), UsedBy: req.Node, UsedAt: time.Now().UTC()}
	if _, err := c.submit(ctx, records.Op{Kind: records.OpUseToken, Token: &use}); err != nil {
		if de, ok := records.AsError(err); ok {
			return EnrollResponse{Error: de.Message}
		}
		return EnrollResponse{Error: "the center could not record the token's use: " + err.Error()}
	}
	cert, ca, err := pki.SignCSR(c.caDir, req.CSR, id, c.certValidity)
	if err != nil {
		return EnrollResponse{Error: err.Error()}
	}
	return EnrollResponse{Station: known.Station, Cert: cert, CA: ca}
}

// renew certifies a new key of a station node for the identity it proved.
func (c *Center) renew(peer pki.Identity, csr []byte) replication.FeedResponse {
	if c.caDir == "" {
		return replication.FeedResponse{Code: "refused", Error: "this center has no ca_dir: renewal is off"}
	}
	if !c.knowsStation(peer.Station) {
		return replication.FeedResponse{Code: "refused", Error: fmt.Sprintf("station %s is not one of this center's stations", peer.Station)}
	}
	cert, ca, err := pki.SignCSR(c.caDir, csr, peer, c.certValidity)
	if err != nil {
		return replication.FeedResponse{Code: "invalid", Error: err.Error()}
	}
	c.logger.Info("certificate renewed", "node", peer.String())
	return replication.FeedResponse{Renewal: &replication.Renewal{Cert: cert, CA: ca}}
}

func (c *Center) knowsStation(id string) bool {
	for _, st := range c.stations {
		if st.ID == id {
			return true
		}
	}
	return false
}

// tokenBody is POST /v1/tokens.
type tokenBody struct {
	Station string `json:"station"`
	TTL     string `json:"ttl"` // Go duration, default 24h, at most 30 days
}

// handleNewToken makes a one-time enrollment token for a station.
func (c *Center) handleNewToken(w http.ResponseWriter, r *http.Request) {
	var b tokenBody
	if !daemon.DecodeBody(w, r, &b, c.bodyLimit(4096)) {
		return
	}
	if !c.knowsStation(b.Station) {
		daemon.WriteDomainError(w, records.Invalid("station", "%q is not one of this center's stations (stations: in its config)", b.Station))
		return
	}
	ttl := 24 * time.Hour
	if b.TTL != "" {
		d, err := time.ParseDuration(b.TTL)
		if err != nil || d < time.Minute || d > 30*24*time.Hour {
			daemon.WriteDomainError(w, records.Invalid("ttl", "%q must be a duration from 1m to 720h", b.TTL))
			return
		}
		ttl = d
	}
	if c.caDir == "" {
		daemon.WriteError(w, http.StatusConflict, "no_ca", "this center has no ca_dir: set it to the district CA folder to enroll nodes")
		return
	}
	tok, err := pki.NewToken(c.caDir)
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	now := time.Now().UTC()
	t := records.EnrollToken{Hash: tok.Hash(), Station: b.Station, Created: now, Expires: now.Add(ttl)}
	if _, err := c.submit(r.Context(), records.Op{Kind: records.OpPutToken, Token: &t}); err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	daemon.WriteJSON(w, http.StatusCreated, map[string]any{"token": tok.String(), "station": b.Station, "expires": t.Expires})
}
