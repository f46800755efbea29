package replication

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/stationsync/stationsync/records"
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
	V       int          `json:"v"`
	Method  string       `json:"method"`
	Ops     []records.Op `json:"ops,omitempty"`
	Address string       `json:"address,omitempty"` // join: the joiner's advertised address
	Node    string       `json:"node,omitempty"`    // remove: the member
	Force   bool         `json:"force,omitempty"`   // remove: even if quorum is at risk
}

type rpcResponse struct {
	V       int       `json:"v"`
	Error   string    `json:"error,omitempty"`
	Code    string    `json:"code,omitempty"` // not_leader | refused | version | internal
	Leader  string    `json:"leader,omitempty"`
	Results []Result  `json:"results,omitempty"`
	Info    *peerInfo `json:"info,omitempty"`
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
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxRPCFrame {
		return fmt.Errorf("rpc frame of %d bytes exceeds %d", n, maxRPCFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
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
