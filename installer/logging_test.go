package installer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kardianos/service"
	"github.com/stationsync/stationsync/daemon"
)

// fakeSysLog records what would go to the Event Log or syslog.
type fakeSysLog struct {
	mu    sync.Mutex
	lines []string
}

func (f *fakeSysLog) add(level string, v ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lines = append(f.lines, level+" "+fmt.Sprint(v...))
	return nil
}
func (f *fakeSysLog) Error(v ...any) error              { return f.add("E", v...) }
func (f *fakeSysLog) Warning(v ...any) error            { return f.add("W", v...) }
func (f *fakeSysLog) Info(v ...any) error               { return f.add("I", v...) }
func (f *fakeSysLog) Errorf(s string, a ...any) error   { return f.add("E", fmt.Sprintf(s, a...)) }
func (f *fakeSysLog) Warningf(s string, a ...any) error { return f.add("W", fmt.Sprintf(s, a...)) }
func (f *fakeSysLog) Infof(s string, a ...any) error    { return f.add("I", fmt.Sprintf(s, a...)) }
func (f *fakeSysLog) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

var _ service.Logger = (*fakeSysLog)(nil)

func TestServiceLoggerFileGetsAllServiceLogWarningsAndErrors(t *testing.T) {
	var file bytes.Buffer
	sys := &fakeSysLog{}
	l := serviceLogger(daemon.LogConfig{Level: "info", Format: "json"}, &file, sys).With("node", "pc-1")
	l.Info("listening", "addr", "127.0.0.1:4610")
	l.Warn("clock skew", "peer", "pc-2")
	l.WithGroup("raft").Error("no quorum\nsecond line", "voters", 3)
	l.Debug("not logged")

	lines := strings.Split(strings.TrimSpace(file.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"msg":"listening"`) || !strings.Contains(lines[0], `"node":"pc-1"`) {
		t.Errorf("file (json, info and up):\n%s", file.String())
	}
	want := []string{
		`W msg="clock skew" node=pc-1 peer=pc-2`,
		`E msg="no quorum\nsecond line" node=pc-1 raft.voters=3`,
	}
	if got := sys.all(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("service log:\n got %q\nwant %q", got, want)
	}

	// The config's level applies to the service log too, and without a
	// service log the file alone is written.
	sys = &fakeSysLog{}
	l = serviceLogger(daemon.LogConfig{Level: "error", Format: "text"}, &file, sys)
	l.Warn("w")
	l.Error("e")
	if got := sys.all(); len(got) != 1 || got[0] != `E msg=e` {
		t.Errorf("level error: %q", got)
	}
	file.Reset()
	serviceLogger(daemon.LogConfig{Level: "info", Format: "text"}, &file, nil).Error("only here")
	if !strings.Contains(file.String(), "only here") {
		t.Errorf("no service log: file %q", file.String())
	}
}

// Stop cancels the node and waits for it to close; a node that ends by
// itself makes the service fail (exit 1 in production).
func TestProgramStopAndFailure(t *testing.T) {
	var file bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &file}, nil))

	closed := make(chan struct{})
	p := &program{logger: logger, fail: func() { t.Error("fail called on a normal stop") }, run: func(ctx context.Context, _ daemon.Config, _ *slog.Logger) error {
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // closing
		close(closed)
		return nil
	}}
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	default:
		t.Fatal("Stop returned before the node closed")
	}

	failed := make(chan struct{})
	p = &program{logger: logger, fail: func() { close(failed) }, run: func(context.Context, daemon.Config, *slog.Logger) error {
		return errors.New("tls: certificate names pc-1")
	}}
	p.Start(nil)
	select {
	case <-failed:
	case <-time.After(5 * time.Second):
		t.Fatal("a node that could not open did not fail the service")
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(file.String(), "level=ERROR") || !strings.Contains(file.String(), "certificate names pc-1") {
		t.Errorf("log:\n%s", file.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestServiceConfig(t *testing.T) {
	c := serviceConfig("/opt/stationsync/stationsync", "/etc/stationsync/station.yaml")
	if c.Name != "stationsync" || c.Executable != "/opt/stationsync/stationsync" ||
		strings.Join(c.Arguments, " ") != "run --config /etc/stationsync/station.yaml" {
		t.Errorf("service %q runs %s %v", c.Name, c.Executable, c.Arguments)
	}
	for k, want := range map[string]any{
		"OnFailure": "restart", "OnFailureDelayDuration": "10s", "OnFailureResetPeriod": 86400,
		"DelayedAutoStart": true, "StartType": "automatic", "KeepAlive": true, "RunAtLoad": true,
	} {
		if c.Option[k] != want {
			t.Errorf("option %s = %v, want %v", k, c.Option[k], want)
		}
	}
	if !strings.Contains(c.Option["SystemdScript"].(string), "Restart=on-failure") {
		t.Error("the unit does not restart on failure")
	}
}
