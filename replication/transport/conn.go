package transport

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stationsync/stationsync/pki"
)

// streamConn is a QUIC stream as a net.Conn.
type streamConn struct {
	s      *quic.Stream
	qc     *quic.Conn
	local  net.Addr
	remote net.Addr

	closeOnce sync.Once
	closeErr  error
}

var _ net.Conn = (*streamConn)(nil)

func newConn(qc *quic.Conn, s *quic.Stream) *streamConn {
	return &streamConn{s: s, qc: qc, local: qc.LocalAddr(), remote: qc.RemoteAddr()}
}

// PeerFingerprint is the fingerprint (pki.Fingerprint) of the certificate
// the peer presented on the connection that carries c, a stream from Dial
// or a handler; "" for any other net.Conn.
func PeerFingerprint(c net.Conn) string {
	sc, ok := c.(*streamConn)
	if !ok {
		return ""
	}
	certs := sc.qc.ConnectionState().TLS.PeerCertificates
	if len(certs) == 0 {
		return ""
	}
	return pki.Fingerprint(certs[0].Raw)
}

// Read reads from the stream. A connection closed for an orderly shutdown (of
// either side) reads as io.EOF, like a TCP connection closed by its peer, so
// consumers such as raft do not report it as an error.
func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.s.Read(p)
	if err != nil && isShutdown(err) {
		err = io.EOF
	}
	return n, err
}

// Write writes to the stream.
func (c *streamConn) Write(p []byte) (int, error) { return c.s.Write(p) }

// Close ends both directions: the written data is sent followed by FIN, and
// reading stops (the peer's writes fail), so the peer's reads end and the
// stream's resources are released on both sides.
func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		c.s.CancelRead(streamClosed)
		c.closeErr = c.s.Close()
	})
	return c.closeErr
}

// reset aborts both directions with code.
func (c *streamConn) reset(code quic.StreamErrorCode) {
	c.closeOnce.Do(func() {
		c.s.CancelRead(code)
		c.s.CancelWrite(code)
	})
}

func (c *streamConn) LocalAddr() net.Addr                { return c.local }
func (c *streamConn) RemoteAddr() net.Addr               { return c.remote }
func (c *streamConn) SetDeadline(t time.Time) error      { return c.s.SetDeadline(t) }
func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.s.SetReadDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.s.SetWriteDeadline(t) }

// isShutdown reports whether err is a connection closed on shutdown.
func isShutdown(err error) bool {
	var ae *quic.ApplicationError
	return errors.As(err, &ae) && (ae.ErrorCode == codeShutdown || ae.Remote && ae.ErrorCode == 0)
}

// lossyConn drops the datagrams its drop function picks (Config.Drop).
type lossyConn struct {
	net.PacketConn
	drop func(net.Addr) bool
}

func (c *lossyConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || !c.drop(addr) {
			return n, addr, err
		}
	}
}

func (c *lossyConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.drop(addr) {
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, addr)
}

// SetReadBuffer and SetWriteBuffer let quic-go size the socket's buffers
// through the wrapper.
func (c *lossyConn) SetReadBuffer(n int) error {
	return c.PacketConn.(*net.UDPConn).SetReadBuffer(n)
}

func (c *lossyConn) SetWriteBuffer(n int) error {
	return c.PacketConn.(*net.UDPConn).SetWriteBuffer(n)
}
