//go:build !linux

package harness

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; t.Cleanup
// is what stops the nodes.
func sysProcAttr() *syscall.SysProcAttr { return nil }
