package replication

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication/transport"
)

// RPC protocol on a KindRPC stream, version 1: one request and one answer
// per stream, each a frame of a 4-byte big-endian length and a JSON body.
// Every body carries "v"; an unknown version answers with an error naming it.
const (
	rpcVersion  = 1
	maxRPCFrame = 8 << 20
	rpcTimeout  = 10 * time.Second
)

// rpc methods.
const (
	rpcInfo   = "info"   // who are you, are you in a cluster, who leads
	rpcApply  = "apply"  // a follower forwards ops to the leader
	rpcJoin   = "join"   // a new node asks the leader to add it
	rpcRemove = "remove" // an admin removes a member (forwarded to the leader)
)

type rpcRequest struct {
	V       int             `json:"v"`
	Method  string          `json:"method"`
	Ops     json.RawMessage `json:"ops,omitempty"`     // apply: a JSON array of records.Op
	Address string          `json:"address,omitempty"` // join: the joiner's advertised address
	Node    string          `json:"node,omitempty"`    // remove: the member
	Force   bool            `json:"force,omitempty"`   // remove: even if quorum is at risk
}

type rpcResponse struct {
	V       int       `json:"v"`
	Error   string    `json:"error,omitempty"`
	Code    string    `json:"code,omitempty"` // not_leader | refused | version | internal | unknown (the write may be made)
	Leader  string    `json:"leader,omitempty"`
	Results []Result  `json:"results,omitempty"`
	Info    *peerInfo `json:"info,omitempty"`

	peerFP string // fingerprint of the certificate the answering peer presented
}

// peerInfo is what a node tells a peer that probes it.
type peerInfo struct {
	Node          string `json:"node"`
	Station       string `json:"station"`
	Address       string `json:"address"`
	InCluster     bool   `json:"in_cluster"`
	Leader        string `json:"leader"`
	LeaderAddress string `json:"leader_address"`
	ClusterID     string `json:"cluster_id"`
	UnixMilli     int64  `json:"unix_milli"`

	fp string // fingerprint of the certificate the peer presented (not sent)
}

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxRPCFrame {
		return fmt.Errorf("rpc frame of %d bytes exceeds %d", len(b), maxRPCFrame)
	}
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = w.Write(append(buf, b...))
	return err
}

func readFrame(r io.Reader, v any) error {
	b, err := readFrameBytes(r)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// readFrameBytes reads one frame's JSON.
func readFrameBytes(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxRPCFrame {
		return nil, fmt.Errorf("rpc frame of %d bytes exceeds %d", n, maxRPCFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// call sends one request on c and reads the answer, bounded by deadline.
func call(c net.Conn, req rpcRequest, deadline time.Time) (rpcResponse, error) {
	var resp rpcResponse
	req.V = rpcVersion
	if err := c.SetDeadline(deadline); err != nil {
		return resp, err
	}
	if err := writeFrame(c, req); err != nil {
		return resp, fmt.Errorf("send %s: %w", req.Method, err)
	}
	if err := readFrame(c, &resp); err != nil {
		return resp, fmt.Errorf("read %s answer: %w", req.Method, err)
	}
	if resp.V != rpcVersion {
		return resp, fmt.Errorf("%s answer version %d: %w", req.Method, resp.V, ErrUnknownVersion)
	}
	return resp, nil
}

// info asks the node at addr who it is and what it knows.
func (n *Node) info(addr string, timeout time.Duration) (*peerInfo, error) {
	resp, err := n.roundTrip(addr, rpcRequest{Method: rpcInfo}, timeout)
	if err != nil {
		return nil, err
	}
	if resp.Info == nil {
		return nil, fmt.Errorf("info from %s: empty answer", addr)
	}
	resp.Info.fp = resp.peerFP
	return resp.Info, nil
}

// ProbeAnswer is a peer's answer to an info probe: its clock, or its
// refusal (Code "refused", "starting", ...).
type ProbeAnswer struct {
	Node, Station string
	UnixMilli     int64
	Code, Error   string
}

// ProbeInfo sends the rpc info request on an open rpc stream c (from
// transport.Dial with KindRPC) and returns the answer. A refusal is an
// answer (Code set), not an error.
func ProbeInfo(c net.Conn, deadline time.Time) (ProbeAnswer, error) {
	resp, err := call(c, rpcRequest{Method: rpcInfo}, deadline)
	if err != nil {
		return ProbeAnswer{}, err
	}
	if resp.Error != "" || resp.Code != "" {
		a := ProbeAnswer{Code: resp.Code, Error: resp.Error}
		if a.Code == "" {
			a.Code = "error"
		}
		return a, nil
	}
	if resp.Info == nil || resp.Info.UnixMilli == 0 {
		return ProbeAnswer{}, errors.New("info answer without the time")
	}
	return ProbeAnswer{Node: resp.Info.Node, Station: resp.Info.Station, UnixMilli: resp.Info.UnixMilli}, nil
}

// roundTrip dials addr, sends one request and reads the answer.
func (n *Node) roundTrip(addr string, req rpcRequest, timeout time.Duration) (rpcResponse, error) {
	ctx, cancel := n.bounded(timeout)
	defer cancel()
	c, _, err := n.tr.Dial(ctx, addr, transport.KindRPC)
	if err != nil {
		return rpcResponse{}, err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	resp, err := call(c, req, deadline)
	if err != nil {
		return resp, err
	}
	resp.peerFP = transport.PeerFingerprint(c)
	if resp.Error != "" && resp.Code != "not_leader" {
		return resp, fmt.Errorf("%s at %s: %s", req.Method, addr, resp.Error)
	}
	return resp, nil
}

// serveRPC answers one request on a KindRPC stream from a verified peer.
func (n *Node) serveRPC(c net.Conn, peer pki.Identity) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(rpcTimeout + n.cfg.ApplyTimeout))
	var req rpcRequest
	if err := readFrame(c, &req); err != nil {
		n.logger.Debug("read rpc", "peer", peer.Node, "error", err)
		return
	}
	resp := rpcResponse{V: rpcVersion}
	select {
	case <-n.ready:
	case <-n.closing:
		return
	case <-time.After(2 * time.Second):
		resp.Code, resp.Error = "starting", "node is starting"
		writeFrame(c, resp)
		return
	}
	switch {
	case req.V != rpcVersion:
		resp.Code, resp.Error = "version", fmt.Sprintf("rpc version %d not understood (this node speaks %d)", req.V, rpcVersion)
	case peer.Role != n.tr.Identity().Role || peer.Station != n.cfg.Station: // not of this cluster
		resp.Code, resp.Error = "refused", fmt.Sprintf("%s %s/%s may not call %s on station %s", peer.Role, peer.Station, peer.Node, req.Method, n.cfg.Station)
	case !n.hold():
		return // closing
	default:
		n.handleRPC(peer, req, &resp)
		n.release()
	}
	if err := writeFrame(c, resp); err != nil {
		n.logger.Debug("write rpc answer", "peer", peer.Node, "error", err)
	}
}

// applyErrorCode is the answer's code for forwarded ops that failed with
// err. ErrNoLeader: this node was not the leader by the time they were
// applied (not appended, or appended in a term it lost); the follower
// sends them to the current leader, where their ids make them repeats if
// this node's entry commits after all.
func applyErrorCode(err error) string {
	switch {
	case errors.Is(err, ErrOutcomeUnknown):
		return "unknown"
	case errors.Is(err, ErrNoLeader):
		return "not_leader"
	}
	return "internal"
}

func (n *Node) handleRPC(peer pki.Identity, req rpcRequest, resp *rpcResponse) {
	addr, id := n.r().LeaderWithID()
	switch req.Method {
	case rpcInfo:
		resp.Info = n.selfInfo()
	case rpcApply:
		if n.r().State() != raft.Leader {
			resp.Code, resp.Error, resp.Leader = "not_leader", "not the leader", string(addr)
			return
		}
		ctx, cancel := n.bounded(n.cfg.ApplyTimeout)
		defer cancel()
		// Ops a follower encoded with records.EncodeOps read without
		// reflection (what ParseOpsJSON returns is what json.Unmarshal would).
		// Their data nests in this request as deep as in the entry they go
		// into, which ParseOpsJSON and EncodeOps keep within encoding/json's
		// limit (jsonlayout.Nesting), so every node decodes that entry.
		ops, ok := records.ParseOpsJSON(req.Ops)
		if !ok {
			if err := json.Unmarshal(req.Ops, &ops); err != nil {
				resp.Code, resp.Error = "refused", fmt.Sprintf("decode ops: %v", err)
				return
			}
		}
		results, err := n.submitForwarded(ctx, ops, req.Ops)
		if err != nil {
			resp.Code, resp.Error = applyErrorCode(err), err.Error()
			if resp.Code == "not_leader" {
				a, _ := n.r().LeaderWithID()
				resp.Leader = string(a)
			}
			return
		}
		resp.Results = results
	case rpcRemove:
		if n.r().State() != raft.Leader {
			resp.Code, resp.Error, resp.Leader = "not_leader", "not the leader; leader is "+string(id), string(addr)
			return
		}
		if err := n.removeMember(req.Node, req.Force); err != nil {
			resp.Code, resp.Error = "refused", err.Error()
			if errors.Is(err, ErrUnknownMember) {
				resp.Code = "not_found"
			}
		}
	case rpcJoin:
		if n.r().State() != raft.Leader {
			resp.Code, resp.Error, resp.Leader = "not_leader", "not the leader; leader is "+string(id), string(addr)
			return
		}
		if err := n.addMember(peer.Node, req.Address); err != nil {
			resp.Code, resp.Error = "internal", err.Error()
		}
	default:
		resp.Code, resp.Error = "internal", fmt.Sprintf("unknown method %q", req.Method)
	}
}

func (n *Node) selfInfo() *peerInfo {
	addr, id := n.r().LeaderWithID()
	inCluster := false
	if f := n.r().GetConfiguration(); f.Error() == nil {
		inCluster = len(f.Configuration().Servers) > 0
	}
	return &peerInfo{
		Node: n.cfg.NodeID, Station: n.cfg.Station, Address: n.tr.AdvertiseAddr(),
		InCluster: inCluster, Leader: string(id), LeaderAddress: string(addr),
		ClusterID: n.fsm.clusterID.Load().(string), UnixMilli: time.Now().UnixMilli(),
	}
}
