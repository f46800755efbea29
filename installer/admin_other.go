//go:build !windows

package installer

import "os"

// processIsAdmin: effective user id 0.
func processIsAdmin() bool { return os.Geteuid() == 0 }
