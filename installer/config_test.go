package installer

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stationsync/stationsync/daemon"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

const baseConfig = `# a station PC
role: station
station_id: XC-T-01
node_id: pc-1   # this PC
listen: 127.0.0.1:4610
api: 127.0.0.1:4680
`

// The copied config must load to the same files (moved ones in the config
// folder) and the same other paths.
func TestPlanInstallCopiesAndRewritesOnlyWhatMoves(t *testing.T) {
	src := t.TempDir()
	dir := filepath.Join(t.TempDir(), "stationsync")
	for _, f := range []string{"pc-1/ca.crt", "pc-1/node.crt", "pc-1/node.key", "keys/data.key", "token.txt"} {
		write(t, filepath.Join(src, f), f)
	}
	write(t, filepath.Join(src, "station.yaml"), baseConfig+`data_dir: data
api_token_file: token.txt
holidays_dir: ""
tls: {ca: pc-1/ca.crt, cert: pc-1/node.crt, key: pc-1/node.key}   # from ca issue
encryption_key_file: keys/data.key
`)
	p, err := planInstall(filepath.Join(src, "station.yaml"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.inPlace || p.config != filepath.Join(dir, "station.yaml") {
		t.Fatalf("config %s inPlace %v", p.config, p.inPlace)
	}
	if got := strings.Join(p.rewritten, ","); got != "tls.ca,tls.cert,tls.key,encryption_key_file,data_dir,api_token_file" {
		t.Errorf("rewritten %s", got)
	}
	if len(p.copies) != 4 {
		t.Errorf("copies %+v, want the 3 TLS files and the key", p.copies)
	}
	if err := p.apply(io.Discard); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(p.config)
	for _, keep := range []string{"# a station PC", "# this PC", "# from ca issue"} {
		if !bytes.Contains(text, []byte(keep)) {
			t.Errorf("comment %q lost:\n%s", keep, text)
		}
	}
	cfg, err := daemon.LoadConfig(p.config, nil, nil)
	if err != nil {
		t.Fatalf("copied config: %v\n%s", err, text)
	}
	for got, want := range map[string]string{
		cfg.TLS.CA: filepath.Join(dir, "ca.crt"), cfg.TLS.Cert: filepath.Join(dir, "node.crt"), cfg.TLS.Key: filepath.Join(dir, "node.key"),
		cfg.EncryptionKeyFile: filepath.Join(dir, "data.key"),
		cfg.DataDir:           filepath.Join(src, "data"), cfg.APITokenFile: filepath.Join(src, "token.txt"),
	} {
		if got != want {
			t.Errorf("copied config names %s, want %s", got, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "data.key")); string(b) != "keys/data.key" {
		t.Errorf("data.key not copied: %q", b)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("config folder mode %v, want 0700", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Join(dir, "node.key")); st.Mode().Perm() != 0o600 {
		t.Errorf("node.key mode %v, want 0600", st.Mode().Perm())
	}

	// The same install again finds identical files: fine. A changed
	// source is refused, naming the file, and nothing is overwritten.
	if _, err := planInstall(filepath.Join(src, "station.yaml"), dir); err != nil {
		t.Fatalf("reinstall of the same files: %v", err)
	}
	write(t, filepath.Join(src, "pc-1/node.key"), "another key")
	_, err = planInstall(filepath.Join(src, "station.yaml"), dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "node.key")+" already exists and differs") {
		t.Errorf("changed node.key: %v", err)
	}
}

func TestPlanInstallCopiesVerbatimWhenNothingMoves(t *testing.T) {
	src := t.TempDir()
	dir := filepath.Join(t.TempDir(), "stationsync")
	for _, f := range []string{"ca.crt", "node.crt", "node.key"} {
		write(t, filepath.Join(src, f), f)
	}
	conf := baseConfig + "data_dir: /srv/stationsync-data\n"
	write(t, filepath.Join(src, "station.yaml"), conf)
	p, err := planInstall(filepath.Join(src, "station.yaml"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.rewritten) != 0 || string(p.content) != conf {
		t.Errorf("rewritten %v; content\n%s", p.rewritten, p.content)
	}
	if len(p.copies) != 3 {
		t.Errorf("copies %+v: want the TLS files (no data.key: it does not exist yet)", p.copies)
	}
}

func TestPlanInstallInPlaceAndErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "stationsync")
	for _, f := range []string{"ca.crt", "node.crt", "node.key"} {
		write(t, filepath.Join(dir, f), f)
	}
	write(t, filepath.Join(dir, "station.yaml"), baseConfig)
	p, err := planInstall(filepath.Join(dir, "station.yaml"), dir)
	if err != nil || !p.inPlace || len(p.copies) != 0 {
		t.Fatalf("config already in the folder: %+v, %v", p, err)
	}

	src := t.TempDir()
	write(t, filepath.Join(src, "station.yaml"), baseConfig)
	_, err = planInstall(filepath.Join(src, "station.yaml"), dir)
	if err == nil || !strings.Contains(err.Error(), `key "tls.ca"`) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing certificate: %v", err)
	}

	write(t, filepath.Join(src, "bad.yaml"), "role: station\nnode_id: pc-1\n")
	if _, err := planInstall(filepath.Join(src, "bad.yaml"), dir); err == nil || !strings.Contains(err.Error(), "station_id") {
		t.Errorf("invalid config: %v", err)
	}

	for _, f := range []string{"a/node.crt", "b/node.crt", "node.key"} {
		write(t, filepath.Join(src, f), f)
	}
	write(t, filepath.Join(src, "clash.yaml"), baseConfig+"tls: {ca: a/node.crt, cert: b/node.crt, key: node.key}\n")
	if _, err := planInstall(filepath.Join(src, "clash.yaml"), filepath.Join(t.TempDir(), "stationsync")); err == nil || !strings.Contains(err.Error(), "would both be copied") {
		t.Errorf("two files of one name: %v", err)
	}
}
