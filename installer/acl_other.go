//go:build !windows

package installer

import (
	"fmt"
	"os"
)

// restrictDir makes dir accessible to its owner (root) only: it holds
// node.key and data.key.
func restrictDir(dir string) error {
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	return nil
}
