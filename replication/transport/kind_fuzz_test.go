package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/stationsync/stationsync/pki"
)

// fuzzMaxPayload bounds what the fuzz handlers read after the kind byte.
const fuzzMaxPayload = 1 << 20

// fuzzEcho answers a stream with its kind byte and what followed it, up to
// EOF (the opener's FIN), then closes it.
func fuzzEcho(k Kind) func(net.Conn, pki.Identity) {
	return func(c net.Conn, _ pki.Identity) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(io.LimitReader(c, fuzzMaxPayload))
		if err != nil {
			return
		}
		_, _ = c.Write(append([]byte{byte(k)}, b...))
	}
}

// fuzzTransport opens a station transport for a fuzz target, closed when
// the target ends.
func fuzzTransport(f *testing.F, caDir string, id pki.Identity, setup func(*Transport)) *Transport {
	dir := filepath.Join(f.TempDir(), id.Node)
	if err := pki.Issue(caDir, id, dir, time.Hour); err != nil {
		f.Fatal(err)
	}
	tl, err := pki.LoadTLS(filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.NodeCertFile), filepath.Join(dir, pki.NodeKeyFile))
	if err != nil {
		f.Fatal(err)
	}
	tr, err := New(Config{Listen: "127.0.0.1:0", TLS: tl, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	if setup != nil {
		setup(tr)
	}
	if err := tr.Open(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = tr.Close() })
	return tr
}

// FuzzStreamKind opens a raw QUIC stream to a node and sends arbitrary
// bytes on it: the kind byte and what follows. The node serves rpc and
// feed streams (echo handlers) and raft streams (its raft layer, echoed
// by the test). Properties, through the real serveStream: never a panic
// or a hang (every read is bounded by a deadline); a stream without a
// kind byte is reset as refused (0x1); a stream of an unknown kind is
// reset with 0x2 (unknown kind) and its bytes reach no consumer; a stream
// of a known kind reaches its consumer, which sees exactly the bytes after
// the kind byte (the round trip returns them).
func FuzzStreamKind(f *testing.F) {
	for _, seed := range [][]byte{
		[]byte("C" + "\x00\x00\x00\x17" + `{"v":1,"method":"info"}`),
		[]byte("F" + "\x00\x00\x00\x18" + `{"v":1,"method":"feed"}`),
		[]byte("R\x00\x01\x02raft rpc"),
		[]byte("C"), []byte("F"), []byte("R"),
		[]byte("Z"), []byte("c"), []byte("r"), {0x00}, {0xff, 'C'}, []byte("Xhello"),
		[]byte("stationsync/1"),
		{},
	} {
		f.Add(seed)
	}
	caDir := filepath.Join(f.TempDir(), "ca")
	if err := pki.InitCA(caDir); err != nil {
		f.Fatal(err)
	}
	a := fuzzTransport(f, caDir, station("s1", "a"), nil)
	b := fuzzTransport(f, caDir, station("s1", "b"), func(tr *Transport) {
		tr.Handle(KindRPC, fuzzEcho(KindRPC))
		tr.Handle(KindFeed, fuzzEcho(KindFeed))
	})
	layer := b.RaftLayer()
	go func() {
		for {
			c, err := layer.Accept()
			if err != nil {
				return
			}
			go fuzzEcho(KindRaft)(c, pki.Identity{})
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c, _, err := a.Dial(ctx, b.AdvertiseAddr(), KindRPC)
	cancel()
	if err != nil {
		f.Fatal(err)
	}
	qc := c.(*streamConn).qc
	c.Close()

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxPayload {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := qc.OpenStreamSync(ctx)
		if err != nil {
			t.Fatalf("open stream: %v", err)
		}
		defer s.CancelRead(streamClosed)
		_ = s.SetDeadline(time.Now().Add(kindTimeout + 5*time.Second))
		_, werr := s.Write(data)
		_ = s.Close()
		got, err := io.ReadAll(s)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%q: no answer and no reset within %s (read %d bytes)", data, kindTimeout+5*time.Second, len(got))
		}
		var serr *quic.StreamError
		reset := errors.As(err, &serr) && serr.Remote
		switch {
		case len(data) == 0:
			if !reset || serr.ErrorCode != streamRefused || len(got) != 0 {
				t.Fatalf("empty stream: got %q, %v; want a reset 0x%x", got, err, streamRefused)
			}
		case !Kind(data[0]).valid():
			if !reset || serr.ErrorCode != streamUnknownKind || len(got) != 0 {
				t.Fatalf("%q (kind %s): got %q, %v; want a reset 0x%x", data, Kind(data[0]), got, err, streamUnknownKind)
			}
		default:
			if werr != nil || err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%q (kind %s): got %q, write %v, read %v; want it echoed", data, Kind(data[0]), got, werr, err)
			}
		}
	})
}
