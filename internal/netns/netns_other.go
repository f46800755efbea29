//go:build !linux

package netns

import "errors"

// Network namespaces exist on Linux only; elsewhere New skips or fails
// before a namespace is used, and these are never reached.

func processAlive(int) bool { return false }

func doIn(string, func() error) error {
	return errors.New("netns: network namespaces need Linux")
}
