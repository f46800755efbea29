//go:build linux || darwin || freebsd

package daemon

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// doctorDiskFree is the space available to this user on dir's file system.
func doctorDiskFree(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// doctorAddrInUse reports whether a bind failed because the port is taken.
func doctorAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }
