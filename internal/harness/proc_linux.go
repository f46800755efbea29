package harness

import "syscall"

// sysProcAttr makes a child die with the test process: if the test binary
// is killed (or panics on -timeout) before its cleanups run, the kernel
// sends the node SIGKILL.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
