package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Profiling. `pprof: 127.0.0.1:6060` serves Go's profiling endpoints
// (net/http/pprof: /debug/pprof/heap, /profile, /trace, ...) on that
// address, for an engineer finding where a node's memory or CPU goes (the
// center's consolidation, a slow PC). Off by default. Loopback only: a heap
// profile or an execution trace holds pieces of the records in memory,
// personal data among them, so it is never served to the network; reach
// it over SSH or on the PC itself.

// pprofAddrOK says whether addr is host:port with a loopback host.
func pprofAddrOK(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && loopbackHost(host)
}

// pprofServer serves the profiling endpoints on its own listener.
type pprofServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// startPprof listens on addr and serves the profiling endpoints until
// stop.
func startPprof(addr string, logger *slog.Logger) (*pprofServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	p := &pprofServer{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			// A CPU profile or a trace runs for its ?seconds= (30 by
			// default): leave it room.
			WriteTimeout: 5 * time.Minute,
			ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("pprof server", "error", err)
		}
	}()
	logger.Info("profiling endpoints served (pprof)", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return p, nil
}

// Addr is the address the endpoints are served on.
func (p *pprofServer) Addr() string { return p.ln.Addr().String() }

// stop closes the server (a profile being taken is cut off) and waits for
// its goroutine.
func (p *pprofServer) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = p.srv.Close()
	}
	<-p.done
	return err
}
