package installer

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/stationsync/stationsync/daemon"
	"gopkg.in/yaml.v3"
)

// installPlan is what install does with the files: which config the
// service runs, what it copies into the config folder, and how the copied
// config differs from the original.
type installPlan struct {
	dir       string     // the config folder
	config    string     // the config file the service runs
	inPlace   bool       // the config is already in dir: nothing is copied or rewritten
	content   []byte     // the config's content in dir (when !inPlace)
	rewritten []string   // keys whose path was rewritten in the copy
	copies    []fileCopy // files copied into dir
}

type fileCopy struct{ key, src, dst string }

// pathKey is a config key that holds a path (relative paths are relative
// to the config file's folder).
type pathKey struct {
	key      string
	def      string // its default when empty; "" where empty means "none" or a fixed folder
	resolved string // the absolute path LoadConfig made of it
	moves    bool   // the file moves into the config folder with the config
}

// planInstall decides how the config file src is installed into dir:
//
//   - src already in dir: it is used as it is, nothing is copied;
//   - otherwise src is copied to dir (same file name), with the TLS files
//     (tls.ca, tls.cert, tls.key) and the encryption key file (when it
//     exists), each under its own file name;
//   - in the copy, a path is rewritten only when moving the config would
//     change what it names: a moved file's path becomes its file name
//     (relative to the config), any other relative path (data_dir,
//     api_token_file, ca_dir, holidays_dir) becomes the absolute path it
//     meant beside the original config. Everything else, comments included,
//     stays.
//
// The config is validated (daemon.LoadConfig, without the environment: the
// service does not see the admin's shell) and the TLS files must exist.
func planInstall(src, dir string) (*installPlan, error) {
	cfg, err := daemon.LoadConfig(src, nil, nil)
	if err != nil {
		return nil, err
	}
	srcAbs := absClean(src)
	dir = absClean(dir)
	keys := []pathKey{
		{"tls.ca", "ca.crt", cfg.TLS.CA, true},
		{"tls.cert", "node.crt", cfg.TLS.Cert, true},
		{"tls.key", "node.key", cfg.TLS.Key, true},
		{"encryption_key_file", "data.key", cfg.EncryptionKeyFile, true},
		{"data_dir", "", cfg.DataDir, false},
		{"api_token_file", "", cfg.APITokenFile, false},
		{"ca_dir", "", cfg.CADir, false},
		{"holidays_dir", "", cfg.HolidaysDir, false},
	}
	for _, k := range keys[:3] {
		if !exists(k.resolved) {
			return nil, fmt.Errorf("config %s: key %q: %s does not exist (the node's certificate files: stationsync ca issue, or enrollment)", src, k.key, k.resolved)
		}
	}
	p := &installPlan{dir: dir}
	if samePath(filepath.Dir(srcAbs), dir) {
		p.config, p.inPlace = srcAbs, true
		return p, nil
	}
	p.config = filepath.Join(dir, filepath.Base(srcAbs))
	raw, err := os.ReadFile(srcAbs)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("config %s: %w", src, err)
	}
	taken := map[string]string{fold(p.config): "the config"}
	for _, k := range keys {
		val, _ := getScalar(&doc, k.key)
		if val == "" {
			val = k.def
		}
		if val == "" {
			continue // unset, or a default that does not depend on the config's folder
		}
		target := k.resolved
		if k.moves {
			target = filepath.Join(dir, filepath.Base(k.resolved))
			if other, ok := taken[fold(target)]; ok {
				return nil, fmt.Errorf("install: %s and %s would both be copied to %s: give them different file names", k.key, other, target)
			}
			taken[fold(target)] = k.key
			if exists(k.resolved) && !samePath(k.resolved, target) {
				p.copies = append(p.copies, fileCopy{k.key, k.resolved, target})
			}
		}
		now := val
		if !filepath.IsAbs(now) {
			now = filepath.Join(dir, now)
		}
		if samePath(now, target) {
			continue
		}
		newVal := target
		if samePath(filepath.Dir(target), dir) {
			newVal = filepath.Base(target)
		}
		setScalar(&doc, k.key, newVal)
		p.rewritten = append(p.rewritten, k.key)
	}
	p.content = raw
	if len(p.rewritten) > 0 {
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(&doc); err != nil {
			return nil, fmt.Errorf("rewrite config: %w", err)
		}
		enc.Close()
		p.content = buf.Bytes()
	}
	// Never overwrite: a file already in the config folder must be the
	// same, or the admin decides.
	if err := sameOrAbsent(p.config, p.content, srcAbs); err != nil {
		return nil, err
	}
	for _, c := range p.copies {
		b, err := os.ReadFile(c.src)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.key, err)
		}
		if err := sameOrAbsent(c.dst, b, c.src); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// sameOrAbsent refuses when dst exists with other content than want.
func sameOrAbsent(dst string, want []byte, from string) error {
	have, err := os.ReadFile(dst)
	if err != nil {
		return nil // absent (an unreadable file fails when written)
	}
	if bytes.Equal(have, want) {
		return nil
	}
	return fmt.Errorf("install: %s already exists and differs from %s: remove it, or install with --config pointing at the files in %s", dst, from, filepath.Dir(dst))
}

// apply creates the config folder, restricts it to SYSTEM/Administrators
// or root (also when the config was already there, e.g. written by
// enroll), and writes the files, reporting each on out.
func (p *installPlan) apply(out io.Writer) error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return fmt.Errorf("config folder: %w", err)
	}
	if err := restrictDir(p.dir); err != nil {
		return err
	}
	if p.inPlace {
		fmt.Fprintf(out, "config %s is in the config folder: used as it is, nothing copied\n", p.config)
		return nil
	}
	for _, c := range p.copies {
		b, err := os.ReadFile(c.src)
		if err != nil {
			return fmt.Errorf("%s: %w", c.key, err)
		}
		if err := writeFileAtomic(c.dst, b); err != nil {
			return err
		}
		fmt.Fprintf(out, "copied %s -> %s\n", c.src, c.dst)
	}
	if err := writeFileAtomic(p.config, p.content); err != nil {
		return err
	}
	if len(p.rewritten) > 0 {
		fmt.Fprintf(out, "copied the config -> %s (paths rewritten: %s)\n", p.config, strings.Join(p.rewritten, ", "))
	} else {
		fmt.Fprintf(out, "copied the config -> %s\n", p.config)
	}
	return nil
}

// writeFileAtomic writes b to path (mode 0600) through a temporary file
// in the same folder.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// fold is a path as a map key: case-insensitive on Windows.
func fold(p string) string {
	p = absClean(p)
	if runtime.GOOS == "windows" {
		return strings.ToLower(p)
	}
	return p
}

// mapping returns the top mapping of a YAML document (nil when empty).
func mapping(doc *yaml.Node) *yaml.Node {
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	return n
}

// child returns the value node of key in mapping m.
func child(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// getScalar returns the value at a dotted key path ("tls.ca").
func getScalar(doc *yaml.Node, path string) (string, bool) {
	n := mapping(doc)
	for _, k := range strings.Split(path, ".") {
		if n = child(n, k); n == nil {
			return "", false
		}
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", false
	}
	return n.Value, true
}

// setScalar sets the string at a dotted key path, adding the keys that
// are missing.
func setScalar(doc *yaml.Node, path string, value string) {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 0 {
		doc.Content = []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}
	}
	n := mapping(doc)
	parts := strings.Split(path, ".")
	for i, k := range parts {
		c := child(n, k)
		if c == nil {
			c = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			if i == len(parts)-1 {
				c = &yaml.Node{Kind: yaml.ScalarNode}
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, c)
		} else if i < len(parts)-1 && c.Kind != yaml.MappingNode {
			*c = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} // "tls: ~"
		}
		n = c
	}
	n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!str", value
	n.Style = yaml.SingleQuotedStyle // a Windows path, a colon: no escaping needed
	n.Content = nil
}
