package daemon

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is one node's configuration (API.md "Configuration"). It is read
// from defaults, then the YAML file, then STATIONSYNC_* environment
// variables, then command-line flags; each later source overrides.
type Config struct {
	Role            string   `yaml:"role"`
	StationID       string   `yaml:"station_id"`
	NodeID          string   `yaml:"node_id"`
	DataDir         string   `yaml:"data_dir"`
	Listen          string   `yaml:"listen"`
	Advertise       string   `yaml:"advertise"`
	API             string   `yaml:"api"`
	APITokenFile    string   `yaml:"api_token_file"`
	Expect          int      `yaml:"expect"`
	Peers           []string `yaml:"peers"`
	MDNS            bool     `yaml:"mdns"`
	MDNSInterfaces  []string `yaml:"mdns_interfaces"` // mDNS only on these interfaces; empty: all
	BootstrapWindow Duration `yaml:"bootstrap_window"`
	// RemoveUnreachableAfter removes a member unreachable this long (when
	// quorum stays safe); 0 never does.
	RemoveUnreachableAfter Duration     `yaml:"remove_unreachable_after"`
	TLS                    TLSFiles     `yaml:"tls"`
	EncryptionKeyFile      string       `yaml:"encryption_key_file"`
	Center                 string       `yaml:"center"`
	Stations               []StationRef `yaml:"stations"`
	CADir                  string       `yaml:"ca_dir"`
	PullInterval           Duration     `yaml:"pull_interval"`
	// CertValidity (center): lifetime of the certificates it signs at
	// enrollment and renewal.
	CertValidity Duration `yaml:"cert_validity"`
	// HolidaysDir (center): holiday calendar year files (2027.yaml, ...)
	// that add to or replace the embedded ones; distributed to stations.
	HolidaysDir string `yaml:"holidays_dir"`
	// PostgresURL (center): mirror consolidated cases into PostgreSQL;
	// empty (default): no mirror.
	PostgresURL       string   `yaml:"postgres_url"`
	CatalogueInterval Duration `yaml:"catalogue_interval"`
	Timezone          string   `yaml:"timezone"`
	WorkOrderDays     int      `yaml:"work_order_days"` // due time of a bad-review work order, working days
	// OutboxAfter: a case write not committed through the leader within it
	// is kept in this PC's outbox (202 pending).
	OutboxAfter Duration `yaml:"outbox_after"`
	// MaxClockSkew: the status page warns about a member whose clock
	// differs from this PC's by more.
	MaxClockSkew Duration `yaml:"max_clock_skew"`
	// DiskReserveMB: below this much free space on data_dir's disk the node
	// stops writes (507) and pauses raft until space is back (diskguard.go).
	DiskReserveMB int           `yaml:"disk_reserve_mb"`
	Raft          RaftTimeouts  `yaml:"raft"`
	Log           LogConfig     `yaml:"log"`
	Limits        RequestLimits `yaml:"limits"`
	// Pprof serves Go's profiling endpoints on this loopback host:port
	// (pprof.go); empty (default): off.
	Pprof string `yaml:"pprof"`

	// dir is the config file's folder: relative paths are relative to it.
	dir string
	// file is the config file (absolute), "" when there is none.
	file string
}

// TLSFiles names the node's certificate files.
type TLSFiles struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// StationRef is a station as the center knows it.
type StationRef struct {
	ID        string   `yaml:"id"`
	Name      string   `yaml:"name"` // optional: shown on the dashboard and in reports
	Addresses []string `yaml:"addresses"`
}

// RaftTimeouts tunes raft for the network; the defaults suit a LAN.
type RaftTimeouts struct {
	HeartbeatTimeout   Duration `yaml:"heartbeat_timeout"`
	ElectionTimeout    Duration `yaml:"election_timeout"`
	LeaderLeaseTimeout Duration `yaml:"leader_lease_timeout"`
	CommitTimeout      Duration `yaml:"commit_timeout"`
	SnapshotInterval   Duration `yaml:"snapshot_interval"`
	SnapshotThreshold  uint64   `yaml:"snapshot_threshold"`
	TrailingLogs       uint64   `yaml:"trailing_logs"`
}

// LogConfig selects the log format and level.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// RequestLimits bounds the local API and the process.
type RequestLimits struct {
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MemoryMB is a soft limit on the Go runtime's memory (memory.go):
	// 0 means the role's default, stationMemoryMB at a station and none
	// at the center. The GOMEMLIMIT environment variable overrides it.
	MemoryMB int `yaml:"memory_mb"`
}

// Duration is a time.Duration written as "500ms", "10s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 500ms or 10s", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// loopbackHost says whether a listen address's host (IP or name) is this
// machine only: a loopback IP or "localhost".
func loopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// ConfigError names the configuration key that is wrong and why.
type ConfigError struct {
	Key     string
	Source  string // file path, "environment" or "flag"
	Message string
}

func (e *ConfigError) Error() string {
	if e.Source != "" {
		return fmt.Sprintf("config %s: key %q: %s", e.Source, e.Key, e.Message)
	}
	return fmt.Sprintf("config: key %q: %s", e.Key, e.Message)
}

// DefaultConfig returns the defaults of API.md.
func DefaultConfig() Config {
	return Config{
		Role:              "station",
		DataDir:           DefaultDataDir(),
		Listen:            "0.0.0.0:4610",
		API:               "127.0.0.1:4680",
		Expect:            1,
		MDNS:              true,
		TLS:               TLSFiles{CA: "ca.crt", Cert: "node.crt", Key: "node.key"},
		PullInterval:      Duration(10 * time.Second),
		CatalogueInterval: Duration(30 * time.Second),
		Timezone:          "Asia/Shanghai",
		WorkOrderDays:     15,
		BootstrapWindow:   Duration(30 * time.Second),
		OutboxAfter:       Duration(2 * time.Second),
		CertValidity:      Duration(365 * 24 * time.Hour),
		MaxClockSkew:      Duration(5 * time.Second),
		DiskReserveMB:     defaultDiskReserveMB,
		Log:               LogConfig{Level: "info", Format: "text"},
		Limits:            RequestLimits{MaxBodyBytes: 1 << 20},
	}
}

// DefaultDataDir is the per-OS data folder.
func DefaultDataDir() string {
	if runtime.GOOS == "windows" {
		pd := os.Getenv("ProgramData")
		if pd == "" {
			pd = `C:\ProgramData`
		}
		return filepath.Join(pd, "stationsync")
	}
	return "/var/lib/stationsync"
}

// cliOnlyEnv are STATIONSYNC_ variables read by the command line tools,
// not config keys.
var cliOnlyEnv = map[string]bool{"STATIONSYNC_API_URL": true}

// LoadConfig reads the config file (empty path: defaults only), then the
// environment (env, usually os.Environ()), then flags (key=value pairs with
// the YAML key names, dots for nesting: "tls.ca=...").
func LoadConfig(path string, env []string, flags map[string]string) (Config, error) {
	c := DefaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config %s: %s", path, yamlMessage(b, err))
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
		c.dir = filepath.Dir(abs)
		c.file = abs
	} else {
		wd, _ := os.Getwd()
		c.dir = wd
	}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "STATIONSYNC_") {
			continue
		}
		if cliOnlyEnv[k] {
			continue
		}
		key := strings.ToLower(strings.TrimPrefix(k, "STATIONSYNC_"))
		if err := c.set(key, v, true); err != nil {
			return c, &ConfigError{Key: k, Source: "environment", Message: err.Error()}
		}
	}
	for k, v := range flags {
		if err := c.set(k, v, false); err != nil {
			return c, &ConfigError{Key: k, Source: "flag", Message: err.Error()}
		}
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	c.resolvePaths()
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// yamlMessage rewrites yaml's "line N: ..." errors to name the key at
// that line, so "line 3: cannot unmarshal !!str `three` into int" becomes
// `key "expect" (line 3): cannot unmarshal !!str `three` into int`.
func yamlMessage(src []byte, err error) string {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var root yaml.Node
	_ = yaml.Unmarshal(src, &root)
	for i, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		var line int
		if _, scanErr := fmt.Sscanf(m, "line %d:", &line); scanErr != nil {
			msgs[i] = m
			continue
		}
		if key := keyAtLine(&root, line, ""); key != "" {
			_, rest, _ := strings.Cut(m, ":")
			m = fmt.Sprintf("key %q (line %d):%s", key, line, rest)
		}
		msgs[i] = m
	}
	return strings.Join(msgs, "; ")
}

// keyAtLine finds the dotted path of the mapping key whose value is on
// line (or the key itself, for an unknown field).
func keyAtLine(n *yaml.Node, line int, prefix string) string {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if k := keyAtLine(c, line, prefix); k != "" {
				return k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			if sub := keyAtLine(v, line, path); sub != "" {
				return sub
			}
			if k.Line == line || (v.Line == line && v.Kind == yaml.ScalarNode) {
				return path
			}
		}
	}
	return ""
}

// set assigns one key from a string. With env, nested keys are written
// with underscores (TLS_CA), so they are matched against the flattened
// names too.
func (c *Config) set(key, value string, env bool) error {
	target, ok := lookupKey(reflect.ValueOf(c).Elem(), key, env)
	if !ok {
		return errors.New("unknown key")
	}
	switch target.Interface().(type) {
	case Duration:
		d, err := time.ParseDuration(value)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 500ms or 10s", value)
		}
		target.Set(reflect.ValueOf(Duration(d)))
		return nil
	case []string:
		var list []string
		for _, p := range strings.Split(value, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		target.Set(reflect.ValueOf(list))
		return nil
	}
	switch target.Kind() {
	case reflect.String:
		target.SetString(value)
	case reflect.Bool:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return fmt.Errorf("%q is not true or false", value)
		}
		target.SetBool(b)
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", value)
		}
		target.SetInt(i)
	case reflect.Uint64:
		i, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", value)
		}
		target.SetUint(i)
	default:
		return errors.New("cannot be set from the environment or a flag; use the config file")
	}
	return nil
}

// lookupKey finds the struct field for a YAML key path ("tls.ca"), or for
// env the flattened form ("tls_ca").
func lookupKey(v reflect.Value, key string, env bool) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "" || !f.IsExported() {
			continue
		}
		if name == key {
			return v.Field(i), true
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration(0)) {
			sep := "."
			if env {
				sep = "_"
			}
			if rest, ok := strings.CutPrefix(key, name+sep); ok {
				return lookupKey(v.Field(i), rest, env)
			}
		}
	}
	return reflect.Value{}, false
}

func (c *Config) resolvePaths() {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(c.dir, *p)
		}
	}
	abs(&c.TLS.CA)
	abs(&c.TLS.Cert)
	abs(&c.TLS.Key)
	abs(&c.APITokenFile)
	abs(&c.DataDir)
	abs(&c.CADir)
	abs(&c.HolidaysDir)
	if c.EncryptionKeyFile == "" {
		c.EncryptionKeyFile = "data.key"
	}
	abs(&c.EncryptionKeyFile)
}

var idChars = func() [256]bool {
	var ok [256]bool
	for _, r := range "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-" {
		ok[r] = true
	}
	return ok
}()

func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idChars[s[i]] {
			return false
		}
	}
	return true
}

// Validate checks every key and names the first one that is wrong.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{Key: key, Message: fmt.Sprintf(format, args...)}
	}
	switch c.Role {
	case "station":
		if !validID(c.StationID) {
			return bad("station_id", "%q must be 1-64 letters, digits, '.', '_' or '-'", c.StationID)
		}
	case "center":
		c.StationID = "" // ignored for the center
		if len(c.Stations) == 0 {
			return bad("stations", "a center needs its stations: [{id: XC-IP-01, addresses: [host:4610, ...]}]")
		}
		seen := map[string]bool{}
		for i, st := range c.Stations {
			key := fmt.Sprintf("stations[%d]", i)
			if !validID(st.ID) {
				return bad(key+".id", "%q must be 1-64 letters, digits, '.', '_' or '-'", st.ID)
			}
			if seen[st.ID] {
				return bad(key+".id", "station %s is listed twice", st.ID)
			}
			seen[st.ID] = true
			if len(st.Addresses) == 0 {
				return bad(key+".addresses", "station %s needs the QUIC address of at least one of its PCs", st.ID)
			}
			for j, a := range st.Addresses {
				if _, _, err := net.SplitHostPort(a); err != nil {
					return bad(fmt.Sprintf("%s.addresses[%d]", key, j), "%q is not host:port", a)
				}
			}
		}
		if c.PullInterval < Duration(time.Second) {
			return bad("pull_interval", "must be at least 1s, got %s", time.Duration(c.PullInterval))
		}
		if c.CertValidity < Duration(10*time.Second) {
			return bad("cert_validity", "must be at least 10s (days are usual: 8760h), got %s", time.Duration(c.CertValidity))
		}
		if c.PostgresURL != "" {
			if u, err := url.Parse(c.PostgresURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
				return bad("postgres_url", "must be a URL like postgres://user:password@host:5432/dbname")
			}
		}
	default:
		return bad("role", "%q must be station or center", c.Role)
	}
	if !validID(c.NodeID) {
		return bad("node_id", "%q must be 1-64 letters, digits, '.', '_' or '-'", c.NodeID)
	}
	if c.DataDir == "" {
		return bad("data_dir", "is required")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("listen", "%q is not host:port", c.Listen)
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			return bad("advertise", "%q is not host:port", c.Advertise)
		}
	}
	host, _, err := net.SplitHostPort(c.API)
	if err != nil {
		return bad("api", "%q is not host:port", c.API)
	}
	if !loopbackHost(host) && c.APITokenFile == "" {
		return bad("api_token_file", "is required when api (%s) is not a loopback address", c.API)
	}
	if c.Pprof != "" && !pprofAddrOK(c.Pprof) {
		return bad("pprof", "%q must be a loopback host:port like 127.0.0.1:6060 (profiles hold records from memory; they are not served to the network)", c.Pprof)
	}
	if c.Expect < 1 {
		return bad("expect", "must be at least 1, got %d", c.Expect)
	}
	for i, p := range c.Peers {
		if _, _, err := net.SplitHostPort(p); err != nil {
			return bad(fmt.Sprintf("peers[%d]", i), "%q is not host:port", p)
		}
	}
	if c.TLS.CA == "" || c.TLS.Cert == "" || c.TLS.Key == "" {
		return bad("tls", "ca, cert and key are all required")
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		return bad("timezone", "%q is not a known time zone", c.Timezone)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "%q must be text or json", c.Log.Format)
	}
	if c.BootstrapWindow < 0 {
		return bad("bootstrap_window", "cannot be negative")
	}
	if c.RemoveUnreachableAfter != 0 && time.Duration(c.RemoveUnreachableAfter) < time.Minute {
		return bad("remove_unreachable_after", "must be 0 (never) or at least 1m; hours are usual: a PC switched off for lunch is not dead")
	}
	if c.OutboxAfter < Duration(100*time.Millisecond) || c.OutboxAfter > Duration(2500*time.Millisecond) {
		return bad("outbox_after", "must be 100ms to 2.5s (a cut-off PC answers a case write within 3 s), got %s", time.Duration(c.OutboxAfter))
	}
	if c.MaxClockSkew < Duration(100*time.Millisecond) {
		return bad("max_clock_skew", "must be at least 100ms, got %s", time.Duration(c.MaxClockSkew))
	}
	if c.DiskReserveMB < minDiskReserveMB {
		return bad("disk_reserve_mb", "must be at least %d (MiB): below it badger may find the disk full while writing, which kills the process; got %d", minDiskReserveMB, c.DiskReserveMB)
	}
	if c.WorkOrderDays < 1 || c.WorkOrderDays > 365 {
		return bad("work_order_days", "must be 1 to 365 working days, got %d", c.WorkOrderDays)
	}
	if c.Limits.MaxBodyBytes <= 0 {
		return bad("limits.max_body_bytes", "must be positive")
	}
	if c.Limits.MemoryMB != 0 && c.Limits.MemoryMB < minMemoryMB {
		return bad("limits.memory_mb", "must be 0 (the role's default) or at least %d (MiB): below it the Go runtime would collect garbage without pause under load; got %d", minMemoryMB, c.Limits.MemoryMB)
	}
	if c.Center != "" {
		if _, _, err := net.SplitHostPort(c.Center); err != nil {
			return bad("center", "%q is not host:port (the center's QUIC address)", c.Center)
		}
	}
	if c.CatalogueInterval < Duration(time.Second) {
		return bad("catalogue_interval", "must be at least 1s, got %s", time.Duration(c.CatalogueInterval))
	}
	return nil
}
