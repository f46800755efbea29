package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/pki"
)

// errLayerClosed is returned by Accept after the raft layer was closed.
var errLayerClosed = fmt.Errorf("raft stream layer closed: %w", net.ErrClosed)

// raftLayer is the raft.StreamLayer of a Transport.
type raftLayer struct {
	t         *Transport
	accept    chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

var _ raft.StreamLayer = (*raftLayer)(nil)

// RaftLayer returns the stream layer for raft.NewNetworkTransport. Its Accept
// returns the raft streams of peers of this node's raft cluster (same role and
// station); a raft stream from any other peer is reset and logged. Its Dial
// opens a KindRaft stream and refuses peers outside the cluster. Its Addr is
// AdvertiseAddr, so Open the transport before creating raft.
//
// Closing the layer (raft does on shutdown) only ends its Accept; the
// transport stays up until Transport.Close. After the layer is closed,
// RaftLayer returns a new one, so raft can be restarted on the same
// transport.
func (t *Transport) RaftLayer() raft.StreamLayer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.raft != nil && !t.raft.isClosed() {
		return t.raft
	}
	t.raft = &raftLayer{t: t, accept: make(chan net.Conn), closed: make(chan struct{})}
	return t.raft
}

// Accept waits for the next raft stream.
func (l *raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.closed:
		return nil, errLayerClosed
	case <-l.t.ctx.Done():
		return nil, ErrClosed
	}
}

// Close stops Accept. It does not close the transport or streams.
func (l *raftLayer) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *raftLayer) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// Addr returns the transport's advertised address.
func (l *raftLayer) Addr() net.Addr { return advertisedAddr(l.t.AdvertiseAddr()) }

// Dial opens a raft stream to address within timeout.
func (l *raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, _, err := l.t.dial(ctx, string(address), KindRaft, func(id pki.Identity) error {
		if !l.t.sameCluster(id) {
			return errors.New("peer is not of this raft cluster")
		}
		return nil
	})
	return c, err
}

// advertisedAddr is a host:port that peers dial, as a net.Addr.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "udp" }
func (a advertisedAddr) String() string  { return string(a) }
