//go:build !linux && !darwin && !freebsd && !windows

package daemon

import (
	"errors"
	"syscall"
)

// doctorDiskFree is not implemented here: the free space is not checked.
func doctorDiskFree(string) (uint64, error) { return 0, errors.ErrUnsupported }

// doctorAddrInUse reports whether a bind failed because the port is taken.
func doctorAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }
