//go:build windows

package installer

import "golang.org/x/sys/windows"

// processIsAdmin: the process token is elevated (UAC "Run as
// administrator", or the built-in Administrator / SYSTEM).
func processIsAdmin() bool {
	return windows.GetCurrentProcessToken().IsElevated()
}
