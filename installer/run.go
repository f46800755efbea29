package installer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/kardianos/service"
	"github.com/stationsync/stationsync/daemon"
)

// StopTimeout bounds how long the service waits for the node to close when
// the service manager stops it: under the SysV script's 10 s, Windows'
// 20 s and the unit's TimeoutStopSec=20. A node that takes longer is left
// to the process exit (badger recovers from that as from a power cut).
const StopTimeout = 8 * time.Second

// UnderServiceManager reports whether this process was started by the
// service manager: kardianos says so, or the service definition set
// ServiceEnv.
func UnderServiceManager() bool {
	return os.Getenv(ServiceEnv) == "1" || !service.Interactive()
}

// RunFunc runs the node with cfg until ctx is cancelled (daemon.Run).
type RunFunc func(ctx context.Context, cfg daemon.Config, logger *slog.Logger) error

// RunService is `stationsync run` under the service manager: it loads the
// config (configPath, the environment, then sets), logs to the rotating
// LogFile in the data folder and, for warnings and errors, to the service
// log, and runs the node until the service manager stops it. A node that
// ends by itself (it could not open, or failed) makes the process exit 1,
// so the service manager restarts it.
func RunService(configPath string, sets map[string]string, run RunFunc) error {
	prg := &program{run: run}
	s, err := service.New(prg, &service.Config{Name: Name})
	if err != nil {
		return fmt.Errorf("service manager: %w", err)
	}
	// The service log: Windows Event Log, syslog (the journal under
	// systemd). Without one (no syslog daemon) the file is the only log.
	sys, sysErr := s.SystemLogger(nil)
	if sysErr != nil {
		sys = nil
	}
	failEarly := func(err error) error {
		if sys != nil {
			sys.Error("stationsync: " + err.Error())
		}
		return err
	}
	cfg, err := daemon.LoadConfig(configPath, os.Environ(), sets)
	if err != nil {
		return failEarly(err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return failEarly(fmt.Errorf("data_dir: %w", err))
	}
	file, err := OpenRotatingFile(filepath.Join(cfg.DataDir, LogFile), LogMaxBytes, LogFiles)
	if err != nil {
		return failEarly(err)
	}
	defer file.Close()
	logger := serviceLogger(cfg.Log, file, sys)
	if sysErr != nil {
		logger.Info("no service log: warnings and errors are in this file only", "err", sysErr)
	}
	logger.Info("stationsync service starting", "version", daemon.Version, "platform", Platform(), "config", configPath, "pid", os.Getpid())
	prg.cfg, prg.logger = cfg, logger
	prg.fail = func() {
		file.Close()
		os.Exit(1)
	}
	if err := s.Run(); err != nil {
		logger.Error("service: " + err.Error())
		return err
	}
	return nil
}

// program is the kardianos Interface: Start runs the node in a goroutine,
// Stop cancels it and waits for it to close (at most StopTimeout).
type program struct {
	run    RunFunc
	cfg    daemon.Config
	logger *slog.Logger
	fail   func() // the node ended by itself: exit non-zero

	cancel context.CancelFunc
	done   chan struct{}
	err    error // what run returned after a stop; read after done
}

func (p *program) Start(service.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		err := p.run(ctx, p.cfg, p.logger)
		if ctx.Err() == nil {
			if err == nil {
				err = errors.New("the node stopped by itself")
			}
			p.logger.Error("the node stopped by itself; exiting with status 1 for the service manager to restart it", "err", err)
			p.fail()
		}
		p.err = err
	}()
	return nil
}

func (p *program) Stop(service.Service) error {
	p.cancel()
	select {
	case <-p.done:
		if p.err != nil {
			p.logger.Warn("stationsync service stopped; the node closed with an error", "err", p.err)
		} else {
			p.logger.Info("stationsync service stopped")
		}
	case <-time.After(StopTimeout):
		p.logger.Error(fmt.Sprintf("stationsync service: the node did not close within %v; exiting anyway", StopTimeout))
	}
	return nil
}
