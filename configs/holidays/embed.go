// Package holidays ships the public-holiday calendars of the PRC, one YAML
// file per year (2026.yaml, ...), in the format that
// github.com/stationsync/stationsync/records/calendar parses:
//
//	files, err := holidays.Default()
//	if err != nil { ... }
//	cal, err := calendar.Parse(files)
//
// The files are transcribed from the State Council's yearly notice
// (国务院办公厅关于XXXX年部分节假日安排的通知); verify them against the
// published notice. The district center distributes corrected calendars,
// which replace the embedded ones.
package holidays

import (
	"embed"
	"io/fs"
)

// Files holds the embedded year files (*.yaml at the top of this directory).
//
//go:embed *.yaml
var Files embed.FS

// Default returns the embedded year files as file name (e.g. "2026.yaml")
// -> contents, ready for calendar.Parse. The map is freshly allocated on
// every call; the caller may modify it.
func Default() (map[string][]byte, error) {
	entries, err := fs.ReadDir(Files, ".")
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := fs.ReadFile(Files, e.Name())
		if err != nil {
			return nil, err
		}
		out[e.Name()] = b
	}
	return out, nil
}
