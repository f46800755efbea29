package replication

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/stationsync/stationsync/internal/jsonlayout"
	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication/transport"
)

// Feed protocol, on a KindFeed stream, version 1: one request and one
// answer per stream, framed like the rpc protocol (4-byte big-endian
// length, JSON, "v"). It is what crosses the WAN between a station and
// the district center:
//
//	feed      center -> station node: a page of the change feed, unmasked
//	digest    center -> station node: count and digest of a month's records
//	catalogue station leader -> center: district items newer than it has,
//	          and the center-side events after its cursor
//	renew     station node -> center: a certificate for a new key, for the
//	          identity the node's current certificate proves
//
// A station node answers feed and digest only to a certificate of role
// center; the center answers catalogue only to station certificates, for
// the station the certificate names.
const (
	FeedMethodFeed      = "feed"
	FeedMethodDigest    = "digest"
	FeedMethodCatalogue = "catalogue"
	FeedMethodRenew     = "renew"
)

// FeedRequest is a request on a feed stream.
type FeedRequest struct {
	V      int    `json:"v"`
	Method string `json:"method"`
	Since  uint64 `json:"since,omitempty"` // feed
	Limit  int    `json:"limit,omitempty"` // feed
	Month  string `json:"month,omitempty"` // digest
	// Have is the district items' versions the station holds (catalogue).
	Have map[string]uint64 `json:"have,omitempty"`
	// EventsAfter is the last center-side event the station applied
	// (catalogue).
	EventsAfter uint64 `json:"events_after,omitempty"`
	// SettingsVersion is the version of the center's settings the station
	// holds (catalogue); "" for none.
	SettingsVersion string `json:"settings_version,omitempty"`
	// CSR is a certificate request (DER) for a new key (renew).
	CSR []byte `json:"csr,omitempty"`
}

// FeedResponse is the answer on a feed stream.
type FeedResponse struct {
	V         int             `json:"v"`
	Error     string          `json:"error,omitempty"`
	Code      string          `json:"code,omitempty"` // refused | version | invalid | internal
	Page      *FeedPage       `json:"page,omitempty"`
	Digest    *StationDigest  `json:"digest,omitempty"`
	Catalogue *CatalogueDelta `json:"catalogue,omitempty"`
	Renewal   *Renewal        `json:"renewal,omitempty"`
}

// Renewal is a renewed certificate and the CA, in PEM.
type Renewal struct {
	Cert []byte `json:"cert"`
	CA   []byte `json:"ca"`
}

// StationDigest is a station's digest of a month with the feed position
// it was computed at: it is comparable with the center's copy only once
// the center has read the feed up to Head.
type StationDigest struct {
	records.Digest
	ClusterID string `json:"cluster_id"`
	Head      uint64 `json:"head"`
}

// CatalogueDelta is what a station's leader fetches from the center.
type CatalogueDelta struct {
	Items []records.Item `json:"items"`
	// Events are center-side events for the station (evaluations given
	// at the center, work-order steps taken there), in order.
	Events []records.CenterEvent `json:"events"`
	// Settings are the center's settings when they differ from the
	// version the station holds.
	Settings *records.Settings `json:"settings,omitempty"`
}

// ServeFeed answers one feed request from peer. A station node serves
// feed and digest to the center; the center's own handler (package
// center) serves catalogue.
func (n *Node) ServeFeed(c net.Conn, peer pki.Identity) {
	// The transport listens before the stores are open: a request in
	// that moment waits for them (or is answered "starting").
	select {
	case <-n.ready:
	case <-n.closing:
		c.Close()
		return
	case <-time.After(2 * time.Second):
	}
	ServeFeedWith(c, peer, n.logger, func(req FeedRequest) FeedResponse {
		select {
		case <-n.ready:
		default:
			return FeedResponse{Code: "starting", Error: "the node is starting"}
		}
		if peer.Role != pki.RoleCenter {
			return FeedResponse{Code: "refused", Error: fmt.Sprintf("%s %s/%s may not read station %s's feed: only the district center may", peer.Role, peer.Station, peer.Node, n.cfg.Station)}
		}
		switch req.Method {
		case FeedMethodFeed:
			page, err := n.Feed(req.Since, req.Limit)
			if err != nil {
				return FeedResponse{Code: "internal", Error: err.Error()}
			}
			return FeedResponse{Page: &page}
		case FeedMethodDigest:
			d, err := n.Digest(req.Month, n.cfg.Location)
			if err != nil {
				if de, ok := records.AsError(err); ok {
					return FeedResponse{Code: "invalid", Error: de.Error()}
				}
				return FeedResponse{Code: "internal", Error: err.Error()}
			}
			return FeedResponse{Digest: &d}
		default:
			return FeedResponse{Code: "invalid", Error: fmt.Sprintf("a station does not serve %q", req.Method)}
		}
	})
}

// ServeFeedWith reads one request from c, answers it with handle and
// closes c.
func ServeFeedWith(c net.Conn, peer pki.Identity, logger interface {
	Debug(string, ...any)
}, handle func(FeedRequest) FeedResponse) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(rpcTimeout))
	var req FeedRequest
	if err := readFrame(c, &req); err != nil {
		logger.Debug("read feed request", "peer", peer.String(), "error", err)
		return
	}
	var resp FeedResponse
	if req.V != rpcVersion {
		resp = FeedResponse{Code: "version", Error: fmt.Sprintf("feed version %d not understood (this node speaks %d)", req.V, rpcVersion)}
	} else {
		resp = handle(req)
	}
	resp.V = rpcVersion
	if err := writeFrame(c, resp); err != nil {
		logger.Debug("write feed answer", "peer", peer.String(), "error", err)
	}
}

// CallFeed sends one feed request to addr over tr and returns the answer;
// an answer with an error is returned as an error naming the peer.
func CallFeed(ctx context.Context, tr *transport.Transport, addr string, req FeedRequest) (FeedResponse, error) {
	req.V = rpcVersion
	c, _, err := tr.Dial(ctx, addr, transport.KindFeed)
	if err != nil {
		return FeedResponse{}, err
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(rpcTimeout)
	}
	c.SetDeadline(deadline)
	if err := writeFrame(c, req); err != nil {
		return FeedResponse{}, fmt.Errorf("%s to %s: %w", req.Method, addr, err)
	}
	var resp FeedResponse
	b, err := readFrameBytes(c)
	if err == nil {
		resp, err = decodeFeedResponse(b)
	}
	if err != nil {
		return FeedResponse{}, fmt.Errorf("%s from %s: %w", req.Method, addr, err)
	}
	if resp.Error != "" {
		return resp, fmt.Errorf("%s at %s: %s (%s)", req.Method, addr, resp.Error, resp.Code)
	}
	return resp, nil
}

// Digest computes the month's digest of this node's records with the feed
// position it covers, in one consistent read.
func (n *Node) Digest(month string, loc *time.Location) (StationDigest, error) {
	var d StationDigest
	if !n.hold() {
		return d, ErrClosed
	}
	defer n.release()
	err := n.stateDB.View(func(txn *badger.Txn) error {
		var err error
		if d.Head, err = getUint64(txn, keySeq); err != nil {
			return err
		}
		id, err := getBytes(txn, keyClusterID)
		if err != nil {
			return err
		}
		d.ClusterID = string(id)
		d.Digest, err = records.MonthDigest(txnReader{txn}, month, loc)
		return err
	})
	return d, err
}

// decodeFeedResponse decodes a feed answer as json.Unmarshal does. A page
// of a station's feed, read without reflection when it has the layout
// json.Marshal writes (the center reads every record of every station
// this way), else by json.Unmarshal.
func decodeFeedResponse(b []byte) (FeedResponse, error) {
	if resp, ok := parseFeedPage(b); ok {
		return resp, nil
	}
	var resp FeedResponse
	err := json.Unmarshal(b, &resp)
	return resp, err
}

// parseFeedPage reads an answer with a page in the layout json.Marshal
// writes, or reports false.
func parseFeedPage(b []byte) (FeedResponse, bool) {
	r := jsonlayout.NewReader(b)
	resp := FeedResponse{V: r.Int(`{"v":`)}
	p := &FeedPage{ClusterID: r.Str(`,"page":{"cluster_id":`)}
	if !r.Opt(`,"changes":null`) {
		r.Lit(`,"changes":[`)
		p.Changes = []FeedChange{}
		for r.OK() && !r.Opt("]") {
			if len(p.Changes) > 0 {
				r.Lit(",")
			}
			var c FeedChange
			c.Seq = r.Uint(`{"seq":`)
			c.Index = r.Uint(`,"index":`)
			c.Kind = r.Str(`,"kind":`)
			c.Key = r.Str(`,"key":`)
			c.Data = r.Raw(`,"data":`)
			if r.Opt(`,"ref":`) {
				c.Ref = r.Str("")
			}
			r.Lit("}")
			p.Changes = append(p.Changes, c)
		}
	}
	p.Next = r.Uint(`,"next":`)
	p.Head = r.Uint(`,"head":`)
	r.Lit("}}")
	if !r.Done() {
		return FeedResponse{}, false
	}
	resp.Page = p
	return resp, true
}
