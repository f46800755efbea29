package daemon

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	return writeConfigIn(t, t.TempDir(), text)
}

func writeConfigIn(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "station.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const minimal = "station_id: XC-IP-01\nnode_id: pc-1\ndata_dir: data\n"

func TestConfigLayersFileEnvFlags(t *testing.T) {
	p := writeConfig(t, minimal+"expect: 2\npeers: [10.0.0.1:4610]\nraft: {heartbeat_timeout: 700ms}\n")
	c, err := LoadConfig(p, []string{"STATIONSYNC_API_URL=http://127.0.0.1:4681", "STATIONSYNC_EXPECT=3", "STATIONSYNC_TLS_CA=/etc/ca.crt", "OTHER=1"}, map[string]string{"node_id": "pc-2", "raft.election_timeout": "900ms"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Expect != 3 || c.NodeID != "pc-2" || c.TLS.CA != "/etc/ca.crt" {
		t.Fatalf("env/flags not applied: %+v", c)
	}
	if time.Duration(c.Raft.HeartbeatTimeout) != 700*time.Millisecond || time.Duration(c.Raft.ElectionTimeout) != 900*time.Millisecond {
		t.Fatalf("raft timeouts %v %v", c.Raft.HeartbeatTimeout, c.Raft.ElectionTimeout)
	}
	if c.DataDir != filepath.Join(filepath.Dir(p), "data") || c.TLS.Cert != filepath.Join(filepath.Dir(p), "node.crt") {
		t.Fatalf("relative paths not resolved against the config file: %s %s", c.DataDir, c.TLS.Cert)
	}
	if len(c.Peers) != 1 || c.API != "127.0.0.1:4680" || c.Timezone != "Asia/Shanghai" {
		t.Fatalf("file values or defaults lost: %+v", c)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		file  string
		env   []string
		flags map[string]string
		key   string
	}{
		{file: minimal + "expect: 0\n", key: "expect"},
		{file: minimal + "outbox_after: 10s\n", key: "outbox_after"},
		{file: minimal + "outbox_after: 0s\n", key: "outbox_after"},
		{file: minimal + "max_clock_skew: 1ms\n", key: "max_clock_skew"},
		{file: minimal + "colour: blue\n", key: "colour"},
		{file: minimal + "raft: {heartbeat_timeout: soon}\n", key: "raft.heartbeat_timeout"},
		{file: minimal + "raft:\n  election_timeout: soon\n", key: "raft.election_timeout"},
		{file: minimal + "expect: three\n", key: `key "expect"`},
		{file: minimal + "peers: 3\n", key: `key "peers"`},
		{file: "node_id: pc-1\n", key: "station_id"},
		{file: "station_id: XC-IP-01\nnode_id: 'pc 1'\n", key: "node_id"},
		{file: minimal + "listen: nowhere\n", key: "listen"},
		{file: minimal + "api: 0.0.0.0:4680\n", key: "api_token_file"},
		{file: minimal + "peers: [nohost]\n", key: "peers[0]"},
		{file: minimal + "timezone: Mars/Olympus\n", key: "timezone"},
		{file: minimal + "role: centre\n", key: "role"},
		{file: minimal + "role: center\n", key: "stations"},
		{file: minimal + "role: center\nstations: [{id: A, addresses: [nohost]}]\n", key: "stations[0].addresses[0]"},
		{file: minimal + "role: center\nstations: [{id: A, addresses: [h:1]}, {id: A, addresses: [h:2]}]\n", key: "stations[1].id"},
		{file: minimal + "center: nowhere\n", key: "center"},
		{file: minimal + "limits: {memory_mb: 16}\n", key: "limits.memory_mb"},
		{file: minimal + "limits: {memory_mb: -1}\n", key: "limits.memory_mb"},
		{file: minimal + "pprof: 0.0.0.0:6060\n", key: "pprof"},
		{file: minimal + "pprof: 192.168.1.20:6060\n", key: "pprof"},
		{file: minimal + "pprof: 6060\n", key: "pprof"},
		{file: minimal, env: []string{"STATIONSYNC_EXPECT=many"}, key: "STATIONSYNC_EXPECT"},
		{file: minimal, flags: map[string]string{"nope": "1"}, key: "nope"},
		{file: minimal, flags: map[string]string{"mdns": "perhaps"}, key: "mdns"},
	}
	for _, tc := range cases {
		_, err := LoadConfig(writeConfig(t, tc.file), tc.env, tc.flags)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("config %q env %v flags %v: got %v, want an error naming %q", tc.file, tc.env, tc.flags, err, tc.key)
		}
		var ce *ConfigError
		if err != nil && tc.key != "colour" && !strings.HasPrefix(tc.key, "raft.") && !strings.HasPrefix(tc.key, "key ") && !errors.As(err, &ce) {
			t.Errorf("%q: %T is not a *ConfigError", tc.key, err)
		}
	}
}

func TestMemoryLimitByRole(t *testing.T) {
	for _, tc := range []struct {
		file string
		want int
	}{
		{minimal, stationMemoryMB},
		{minimal + "limits: {memory_mb: 300}\n", 300},
		{minimal + "role: center\nstations: [{id: A, addresses: [h:1]}]\n", 0},
		{minimal + "role: center\nstations: [{id: A, addresses: [h:1]}]\nlimits: {memory_mb: 4096}\n", 4096},
	} {
		c, err := LoadConfig(writeConfig(t, tc.file), nil, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.file, err)
		}
		if got := c.MemoryLimitMB(); got != tc.want {
			t.Errorf("%q: memory limit %d MiB, want %d", tc.file, got, tc.want)
		}
	}
}

func TestDetectAdvertise(t *testing.T) {
	addrs := func() ([]net.Addr, error) {
		return []net.Addr{
			&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
			&net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)},
			&net.IPNet{IP: net.ParseIP("10.1.0.5"), Mask: net.CIDRMask(24, 32)},
			&net.IPNet{IP: net.ParseIP("10.2.0.7"), Mask: net.CIDRMask(24, 32)},
		}, nil
	}
	cases := []struct {
		listen string
		peers  []string
		want   string
	}{
		{"0.0.0.0:4610", []string{"10.2.0.6:4610", "10.2.0.7:4610"}, "10.2.0.7:4610"},
		{"0.0.0.0:4610", []string{"10.2.0.7:9999"}, "10.1.0.5:4610"},
		{":4610", nil, "10.1.0.5:4610"},
		{"10.2.0.7:4610", nil, ""},
		{"127.0.0.1:4610", nil, ""},
	}
	for _, tc := range cases {
		if got := detectAdvertise(tc.listen, tc.peers, addrs); got != tc.want {
			t.Errorf("listen %s peers %v: got %q, want %q", tc.listen, tc.peers, got, tc.want)
		}
	}
}

// The example configs in configs/ load.
func TestExampleConfigsLoad(t *testing.T) {
	for _, name := range []string{"station.yaml", "center.yaml"} {
		if _, err := LoadConfig(filepath.Join("..", "configs", name), nil, nil); err != nil {
			t.Errorf("configs/%s: %v", name, err)
		}
	}
}
