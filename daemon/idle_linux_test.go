package daemon

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mappingRSS is the resident size (KiB) of this process's mappings of path.
func mappingRSS(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rss, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") {
			in = len(fields) >= 6 && fields[5] == path
			continue
		}
		if in && len(fields) >= 2 && fields[0] == "Rss:" {
			kb, _ := strconv.Atoi(fields[1])
			rss += kb
		}
	}
	return rss
}

// The pages of a mapped store file that were read are resident; once
// trimmed they are not, and the mapping still reads the same bytes.
func TestTrimMappingsPagesOutStoreFiles(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary folder is on tmpfs: its pages have no disk to go back to")
	}
	path := filepath.Join(dir, "000001.sst")
	const size = 8 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	sum := 0
	for i := 0; i < size; i += 4096 {
		sum += int(m[i])
	}
	if want := wantSum(size); sum != want {
		t.Fatalf("mapping reads sum %d, want %d", sum, want)
	}
	real, _ := filepath.EvalSymlinks(path)
	before := mappingRSS(t, real)
	if before < size/1024/2 {
		t.Fatalf("mapping resident %d KiB after reading it all; expected most of %d KiB", before, size/1024)
	}
	n, err := trimMappings(dir)
	if err != nil || n == 0 {
		t.Fatalf("trimMappings: %d mappings, %v", n, err)
	}
	if after := mappingRSS(t, real); after > before/4 {
		t.Errorf("resident %d KiB before trimming, %d KiB after", before, after)
	}
	for i := 0; i < size; i += 4099 {
		if m[i] != byte(i*7) {
			t.Fatalf("byte %d reads %d after trimming, want %d", i, m[i], byte(i*7))
		}
	}
}

func wantSum(size int) int {
	s := 0
	for i := 0; i < size; i += 4096 {
		s += int(byte(i * 7))
	}
	return s
}
