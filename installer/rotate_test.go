package installer

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

func logFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func TestRotatingFileCapsSizeAndKeepsFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, LogFile)
	const maxBytes, keep = 1000, 3
	r, err := OpenRotatingFile(path, maxBytes, keep)
	if err != nil {
		t.Fatal(err)
	}
	const lines = 500
	for i := range lines {
		fmt.Fprintf(r, "line %04d %s\n", i, strings.Repeat("x", 30)) // 41 bytes
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	files := logFiles(t, dir)
	var names []string
	for n, b := range files {
		names = append(names, n)
		if len(b) > maxBytes {
			t.Errorf("%s has %d bytes, over the cap of %d", n, len(b), maxBytes)
		}
		if len(b) == 0 || !bytes.HasSuffix(b, []byte("\n")) {
			t.Errorf("%s: a line was split or the file is empty (%d bytes)", n, len(b))
		}
	}
	sort.Strings(names)
	if want := []string{LogFile, LogFile + ".1", LogFile + ".2"}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	// Newest last: .2 then .1 then the current file hold consecutive lines
	// ending with the last one written.
	all := string(files[LogFile+".2"]) + string(files[LogFile+".1"]) + string(files[LogFile])
	got := strings.Split(strings.TrimSuffix(all, "\n"), "\n")
	if last := got[len(got)-1]; !strings.HasPrefix(last, fmt.Sprintf("line %04d ", lines-1)) {
		t.Errorf("last line %q, want line %d", last, lines-1)
	}
	first := 0
	fmt.Sscanf(got[0], "line %d", &first)
	for i, l := range got {
		if !strings.HasPrefix(l, fmt.Sprintf("line %04d ", first+i)) {
			t.Fatalf("line %d of the kept files is %q: lines lost or out of order", i, l)
		}
	}
	if kept := len(got); kept < 2*(maxBytes/41) {
		t.Errorf("only %d lines kept; the older files should be nearly full", kept)
	}
}

func TestRotatingFileAppendsAfterReopenAndWritesLargeRecordWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, LogFile)
	r, err := OpenRotatingFile(path, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(r, strings.Repeat("a", 60))
	r.Close()
	if _, err := r.Write([]byte("late")); err == nil {
		t.Error("write after Close succeeded")
	}

	// Reopened (a service restart): the size already written counts.
	r, err = OpenRotatingFile(path, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(r, strings.Repeat("b", 60)) // 120 > 100: rotates first
	big := strings.Repeat("c", 250)
	fmt.Fprint(r, big) // larger than the cap: alone in a fresh file
	r.Close()
	files := logFiles(t, dir)
	if len(files) != 2 {
		t.Fatalf("%d files, want 2 (one dropped)", len(files))
	}
	if string(files[LogFile]) != big {
		t.Errorf("current file %q, want the large record whole", files[LogFile])
	}
	if string(files[LogFile+".1"]) != strings.Repeat("b", 60) {
		t.Errorf(".1 is %q", files[LogFile+".1"])
	}
}

func TestRotatingFileOneFileAndConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRotatingFile(filepath.Join(dir, LogFile), 500, 1)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				fmt.Fprintf(r, "g%d %03d\n", g, i)
			}
		}()
	}
	wg.Wait()
	r.Close()
	files := logFiles(t, dir)
	if len(files) != 1 || len(files[LogFile]) > 500 {
		t.Fatalf("files %d, size %d: want one file within 500 bytes", len(files), len(files[LogFile]))
	}
	for _, l := range strings.Split(strings.TrimSuffix(string(files[LogFile]), "\n"), "\n") {
		if len(l) != 6 {
			t.Fatalf("torn line %q", l)
		}
	}
	if _, err := OpenRotatingFile(filepath.Join(dir, "x"), 0, 1); err == nil {
		t.Error("maxBytes 0 accepted")
	}
}
