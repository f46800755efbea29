//go:build windows

package daemon

import (
	"errors"

	"golang.org/x/sys/windows"
)

// doctorDiskFree is the space available to this user on dir's volume.
func doctorDiskFree(dir string) (uint64, error) {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, err
	}
	var avail, total, free uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &total, &free); err != nil {
		return 0, err
	}
	return avail, nil
}

// doctorAddrInUse reports whether a bind failed because the port is taken:
// WSAEADDRINUSE, or WSAEACCES when another socket holds it exclusively
// (SO_EXCLUSIVEADDRUSE) or the port is in an excluded range.
func doctorAddrInUse(err error) bool {
	return errors.Is(err, windows.WSAEADDRINUSE) || errors.Is(err, windows.WSAEACCES)
}
