package installer

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// purge removes the config folder and the data folder(s) its configs name
// (uninstall --purge). It removes only what is recognisably stationsync's:
// the config folder must be named stationsync (both per-OS defaults are);
// a data folder must be the per-OS default, empty, or hold the node's
// files (raft, state, quic-reset.key, stationsync.log). Files the config
// names outside these folders (api_token_file, ca_dir, holidays_dir) were
// never copied and are not touched.
func purge(configDir string, out io.Writer) error {
	configDir = absClean(configDir)
	var dataDirs []string
	configs, _ := filepath.Glob(filepath.Join(configDir, "*.yaml"))
	yml, _ := filepath.Glob(filepath.Join(configDir, "*.yml"))
	for _, c := range append(configs, yml...) {
		b, err := os.ReadFile(c)
		if err != nil {
			continue
		}
		var v struct {
			DataDir string `yaml:"data_dir"`
		}
		if yaml.Unmarshal(b, &v) != nil {
			continue
		}
		d := v.DataDir
		switch {
		case d == "":
			d = DataDir()
		case !filepath.IsAbs(d):
			d = filepath.Join(configDir, d)
		}
		dataDirs = append(dataDirs, d)
	}
	if len(configs)+len(yml) == 0 {
		dataDirs = append(dataDirs, DataDir())
	}
	for _, d := range dataDirs {
		if !exists(d) {
			continue
		}
		if !looksLikeDataDir(d) {
			fmt.Fprintf(out, "kept %s: it does not look like a stationsync data folder\n", d)
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("purge: %w", err)
		}
		fmt.Fprintf(out, "removed the data folder %s\n", d)
	}
	if exists(configDir) {
		if !strings.EqualFold(filepath.Base(configDir), Name) || isRoot(configDir) {
			return fmt.Errorf("purge: kept %s: only a config folder named %s is removed", configDir, Name)
		}
		if err := os.RemoveAll(configDir); err != nil {
			return fmt.Errorf("purge: %w", err)
		}
		fmt.Fprintf(out, "removed the config folder %s\n", configDir)
	}
	if Platform() == sysvPlatform {
		for _, f := range []string{"/var/log/" + Name + ".log", "/var/log/" + Name + ".err"} {
			if os.Remove(f) == nil {
				fmt.Fprintf(out, "removed %s\n", f)
			}
		}
	}
	return nil
}

// looksLikeDataDir: the per-OS default, an empty folder, or one holding
// what a node writes there. Never a file system root or a home folder.
func looksLikeDataDir(d string) bool {
	d = absClean(d)
	if isRoot(d) {
		return false
	}
	if home, err := os.UserHomeDir(); err == nil && samePath(home, d) {
		return false
	}
	if samePath(d, DataDir()) {
		return true
	}
	entries, err := os.ReadDir(d)
	if err != nil {
		return false
	}
	if len(entries) == 0 {
		return true
	}
	for _, e := range entries {
		switch e.Name() {
		case "raft", "state", "quic-reset.key", LogFile:
			return true
		}
	}
	return false
}

func isRoot(d string) bool { return filepath.Dir(d) == d }
