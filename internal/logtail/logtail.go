// Package logtail reads the end of a log file, for the message of a
// process that failed (test harness, benchmarks).
package logtail

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Tail returns the last n lines of the file at path, or why it cannot.
// It streams the file, so a long log costs n lines of memory.
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
