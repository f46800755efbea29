package installer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"

	"github.com/kardianos/service"
	"github.com/stationsync/stationsync/daemon"
)

// serviceLogger is the node's logger under the service manager: every
// record the config's level lets through goes to file (the rotating log,
// in the config's format); warnings and errors also go to sys, the service
// manager's log (nil when it could not be opened).
func serviceLogger(c daemon.LogConfig, file io.Writer, sys service.Logger) *slog.Logger {
	fileH := daemon.NewLogger(c, file).Handler()
	if sys == nil {
		return slog.New(fileH)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	level = max(level, slog.LevelWarn)
	sysH := slog.NewTextHandler(sysLogWriter{sys}, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // the service log stamps its own time
			}
			return a
		},
	})
	return slog.New(teeHandler{fileH, sysH})
}

// sysLogWriter takes the lines of a text handler without time
// ("level=WARN msg=... k=v") and writes each to the service log at its level.
// slog's handlers write one whole record per Write.
type sysLogWriter struct{ l service.Logger }

func (w sysLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	level, rest, _ := strings.Cut(line, " ")
	var err error
	if strings.HasPrefix(level, "level=ERROR") {
		err = w.l.Error(rest)
	} else {
		err = w.l.Warning(rest)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// teeHandler hands each record to every handler that wants its level.
type teeHandler []slog.Handler

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range t {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range t {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(teeHandler, len(t))
	for i, h := range t {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	out := make(teeHandler, len(t))
	for i, h := range t {
		out[i] = h.WithGroup(name)
	}
	return out
}
