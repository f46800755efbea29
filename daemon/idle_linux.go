package daemon

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// trimMappings asks the kernel to page out every mapping of a file under
// dir (MADV_PAGEOUT, Linux 5.4+) and returns how many it advised. The
// advice never changes what a mapping reads: dirty pages are written back
// first, and a range badger unmapped meanwhile (and the address space
// reused) is at worst paged out too, never zeroed.
func trimMappings(dir string) (int, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return 0, err
	}
	root = filepath.Clean(root) + string(filepath.Separator)
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.HasPrefix(fields[5], root) {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT)
		if errno == unix.ENOMEM {
			continue // unmapped since /proc/self/maps was read
		}
		if errno != 0 {
			return n, fmt.Errorf("madvise %s: %w", fields[5], errno)
		}
		n++
	}
	return n, sc.Err()
}
