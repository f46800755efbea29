package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/quic-go/quic-go"
	"golang.org/x/net/ipv4"

	"github.com/stationsync/stationsync/discovery"
	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/replication"
	"github.com/stationsync/stationsync/replication/transport"
)

// DoctorLevel is the severity of a finding.
type DoctorLevel int

// Severities, in increasing order.
const (
	DoctorOK DoctorLevel = iota
	DoctorWarn
	DoctorFail
)

func (l DoctorLevel) String() string {
	switch l {
	case DoctorOK:
		return "OK"
	case DoctorWarn:
		return "WARN"
	case DoctorFail:
		return "FAIL"
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

// DoctorFinding is the outcome of one check (or of one interface or one
// peer of a check).
type DoctorFinding struct {
	Level   DoctorLevel
	Check   string // "config", "data dir", "QUIC port", "certificates", "multicast eth0", "peer 10.0.0.12:4610", "center 10.0.0.1:4610"
	Message string
	Hint    string // what to do; empty when nothing
}

// String is the finding's output line (without newline).
func (f DoctorFinding) String() string {
	s := fmt.Sprintf("%-4s  %s: %s", f.Level, f.Check, f.Message)
	if f.Hint != "" {
		s += " — " + f.Hint
	}
	return s
}

// DoctorReport is every finding of a doctor run, in output order.
type DoctorReport struct {
	Findings []DoctorFinding
}

// OK reports whether no finding is a FAIL.
func (r DoctorReport) OK() bool { return len(r.Failed()) == 0 }

// Failed lists the checks that FAILed (each once, in order).
func (r DoctorReport) Failed() []string {
	var out []string
	for _, f := range r.Findings {
		if f.Level == DoctorFail && !slices.Contains(out, f.Check) {
			out = append(out, f.Check)
		}
	}
	return out
}

// Err is nil when the report is OK, else a one-line reason naming the
// checks that failed.
func (r DoctorReport) Err() error {
	failed := r.Failed()
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("doctor: check %s failed", failed[0])
	}
	return fmt.Errorf("doctor: %d checks failed: %s", len(failed), strings.Join(failed, ", "))
}

// Find returns the findings whose check is check or starts with check+" "
// ("peer" finds "peer 10.0.0.12:4610").
func (r DoctorReport) Find(check string) []DoctorFinding {
	var out []DoctorFinding
	for _, f := range r.Findings {
		if f.Check == check || strings.HasPrefix(f.Check, check+" ") {
			out = append(out, f)
		}
	}
	return out
}

// DoctorOptions tunes a doctor run; the zero value is what the command
// line uses, apart from Env.
type DoctorOptions struct {
	// Env holds the environment for STATIONSYNC_* overrides, as LoadConfig
	// reads it (the command passes os.Environ()); nil: none.
	Env []string
	// Set overrides config keys as `run --set key=value` does.
	Set map[string]string
	// PeerTimeout bounds the dial and probe of one peer (default 3s).
	PeerTimeout time.Duration
	// MulticastWait is how long the mDNS probe listens for its echo and
	// answers (default 1s).
	MulticastWait time.Duration
}

// Free space thresholds of the data dir check.
const (
	doctorSpaceWarn  = 1 << 30   // 1 GiB
	doctorSpaceFail  = 100 << 20 // 100 MiB
	doctorCertWarn   = 30 * 24 * time.Hour
	doctorAPITimeout = 2 * time.Second
)

// Doctor runs the checks for the config at cfgPath (with opts' overrides),
// writing each finding to out as it is found. The report's OK says
// whether no check failed; err is only for a run that could not finish
// (ctx ended, out failed).
//
// `stationsync doctor` checks, in order, what a node needs to run, and says
// what is wrong in words an admin at a service station can act on. Every
// finding is one line
//
//	OK|WARN|FAIL  <check>: <finding> [— hint]
//
// The checks:
//
//  1. config: LoadConfig succeeds. A failure names the key and stops the
//     run (the other checks need the config).
//  2. data dir: data_dir exists (or its nearest existing parent lets it be
//     created: a temporary folder is made and removed there), a file can be
//     created and removed in it, it is not world-writable (WARN), and free
//     space (WARN under 1 GiB, FAIL under 100 MiB).
//  3. QUIC port: the UDP port of listen can be bound. When it is taken,
//     the node's own API (api, GET /v1/status) is asked: if it answers as
//     this node the port is in use by the running node (OK); otherwise
//     another program holds it (FAIL).
//  4. certificates: pki.LoadTLS loads the CA, certificate and key; the
//     certificate's identity is the config's (role, station, node); an
//     expired or not yet valid certificate FAILs, under 30 days left WARNs.
//  5. multicast (station with mdns on): joins 224.0.0.251:5353 on the
//     interfaces mDNS would use (mdns_interfaces, or every up, multicast,
//     non-virtual interface with an IPv4 address), sends a DNS-SD query for
//     _stationsync._udp.local. out of each and listens. Our own query
//     looped back is OK; not getting it back is WARN (list the PCs under
//     peers:). The stationsync nodes that answer are named. A name in
//     mdns_interfaces this PC does not have, or one without multicast, FAILs
//     (the node refuses to start with it).
//  6. peers: each static peer (this PC's own entry is skipped) and the
//     center (center:) — or, on a center, each station address — is dialed
//     over QUIC with the node's certificate from a transport on an
//     ephemeral port (never the node's port), within a timeout (3 s). A
//     reachable station peer answers the info probe: the round trip is
//     shown, and its clock is compared with this PC's (WARN above
//     max_clock_skew). The center and stations answer no info probe to a
//     node of another role: for them reachability and identity only.
//
// Reachability policy: an unreachable peer is a WARN, never a FAIL. A
// doctor run on one PC cannot tell "that PC is switched off" from "the
// network drops UDP 4610", and the first PC of a new station must pass
// doctor before the others exist. What FAILs is what waiting will not fix:
// a peer that answers but refuses the handshake (another district CA, a
// certificate it rejects), or one that proves to be of another station, or
// an address under center: that is not the center.
//
// Doctor runs beside a running node and touches nothing it uses: the
// data dir gets a temporary file (removed), the QUIC port is bound only
// for a moment when it is free, and the mDNS socket shares UDP 5353 the
// way the node's discovery does (SO_REUSEADDR).
func Doctor(ctx context.Context, cfgPath string, out io.Writer, opts DoctorOptions) (DoctorReport, error) {
	if opts.PeerTimeout <= 0 {
		opts.PeerTimeout = 3 * time.Second
	}
	if opts.MulticastWait <= 0 {
		opts.MulticastWait = time.Second
	}
	r := &doctorRun{out: out, opts: opts}
	cfg, ok := r.checkConfig(cfgPath)
	if !ok {
		return r.report, r.err
	}
	r.cfg = cfg
	steps := []func(context.Context){
		func(context.Context) { r.add(r.checkDataDir()) },
		func(ctx context.Context) { r.add(r.checkPort(ctx)) },
		func(context.Context) { r.add(r.checkCertificates()) },
		func(ctx context.Context) { r.add(r.checkMulticast(ctx)...) },
		func(ctx context.Context) { r.add(r.checkPeers(ctx)...) },
	}
	for _, step := range steps {
		if r.err != nil {
			break
		}
		if err := ctx.Err(); err != nil {
			return r.report, err
		}
		step(ctx)
	}
	if r.err == nil {
		r.err = ctx.Err()
	}
	return r.report, r.err
}

// doctorRun is the state of one run.
type doctorRun struct {
	out    io.Writer
	opts   DoctorOptions
	cfg    Config
	tls    *pki.TLS // nil when the certificates did not load
	report DoctorReport
	err    error // first write error
}

func (r *doctorRun) add(fs ...DoctorFinding) {
	for _, f := range fs {
		r.report.Findings = append(r.report.Findings, f)
		if r.err == nil {
			if _, err := fmt.Fprintln(r.out, f.String()); err != nil {
				r.err = fmt.Errorf("doctor: write: %w", err)
			}
		}
	}
}

func doctorOKf(check, format string, args ...any) DoctorFinding {
	return DoctorFinding{Level: DoctorOK, Check: check, Message: fmt.Sprintf(format, args...)}
}

func doctorWarnf(check, hint, format string, args ...any) DoctorFinding {
	return DoctorFinding{Level: DoctorWarn, Check: check, Message: fmt.Sprintf(format, args...), Hint: hint}
}

func doctorFailf(check, hint, format string, args ...any) DoctorFinding {
	return DoctorFinding{Level: DoctorFail, Check: check, Message: fmt.Sprintf(format, args...), Hint: hint}
}

// ---- 1. config ----

func (r *doctorRun) checkConfig(path string) (Config, bool) {
	const check = "config"
	cfg, err := LoadConfig(path, r.opts.Env, r.opts.Set)
	if err != nil {
		msg := err.Error()
		var ce *ConfigError
		switch {
		case errors.As(err, &ce):
			src := ce.Source
			if src == "" {
				src = path
			}
			if src == "" {
				src = "defaults"
			}
			msg = fmt.Sprintf("%s: key %q: %s", src, ce.Key, ce.Message)
		case strings.HasPrefix(msg, "config "):
			msg = strings.TrimPrefix(msg, "config ")
		}
		r.add(doctorFailf(check, "every key is described in API.md and configs/station.yaml; no other check ran", "%s", msg))
		return cfg, false
	}
	src := path
	if abs, err := filepath.Abs(path); err == nil && path != "" {
		src = abs
	}
	if src == "" {
		src = "no file (defaults and environment)"
	}
	if cfg.Role == "center" {
		r.add(doctorOKf(check, "%s: center node %s, %d station(s)", src, cfg.NodeID, len(cfg.Stations)))
	} else {
		r.add(doctorOKf(check, "%s: station %s, node %s", src, cfg.StationID, cfg.NodeID))
	}
	return cfg, true
}

// ---- 2. data dir ----

func (r *doctorRun) checkDataDir() DoctorFinding {
	const check = "data dir"
	dir := r.cfg.DataDir
	fi, err := os.Stat(dir)
	if err == nil && !fi.IsDir() {
		return doctorFailf(check, "point data_dir at a folder", "%s is a file, not a folder", dir)
	}
	var notes []string
	level := DoctorOK
	hint := ""
	probeDir := dir // where space is measured
	if err != nil {
		// Missing (or under something that is not a folder): find the
		// nearest existing parent, which must let the node create it.
		parent, pfi, perr := doctorNearestExisting(dir)
		switch {
		case perr != nil:
			return doctorFailf(check, "", "%s: %v", dir, perr)
		case !pfi.IsDir():
			return doctorFailf(check, "point data_dir at a folder that can be created", "%s cannot be created: %s is a file, not a folder", dir, parent)
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return doctorFailf(check, "", "%s: %v", dir, err)
		}
		tmp, err := os.MkdirTemp(parent, ".stationsync-doctor-")
		if err != nil {
			return doctorFailf(check, "run as the service's user, or create the folder for it", "%s does not exist and cannot be created in %s: %v", dir, parent, doctorUnwrapPath(err))
		}
		os.Remove(tmp)
		notes = append(notes, "does not exist yet; the node creates it on its first start")
		probeDir = parent
	} else {
		f, err := os.CreateTemp(dir, ".stationsync-doctor-*")
		if err != nil {
			return doctorFailf(check, "give the service's user write access to it", "%s is not writable: %v", dir, doctorUnwrapPath(err))
		}
		_, werr := f.Write([]byte("stationsync doctor\n"))
		cerr := f.Close()
		rerr := os.Remove(f.Name())
		if err := errors.Join(werr, cerr, rerr); err != nil {
			return doctorFailf(check, "check the disk and the folder's permissions", "%s: writing a file failed: %v", dir, doctorUnwrapPath(err))
		}
		notes = append(notes, "writable")
		if runtime.GOOS != "windows" && fi.Mode().Perm()&0o002 != 0 {
			level = DoctorWarn
			notes[len(notes)-1] = fmt.Sprintf("writable, also by every user (mode %04o)", fi.Mode().Perm())
			hint = "chmod 700 " + dir
		}
	}
	free, err := doctorDiskFree(probeDir)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
	case err != nil:
		level = max(level, DoctorWarn)
		notes = append(notes, fmt.Sprintf("free space unknown: %v", err))
	default:
		sl := doctorSpaceLevel(free)
		notes = append(notes, doctorBytes(free)+" free")
		if sl > DoctorOK {
			hint = doctorJoinHint(hint, "free disk space: the node needs room for its raft log, snapshots and state")
			if sl == DoctorFail {
				notes[len(notes)-1] += " (under " + doctorBytes(doctorSpaceFail) + ")"
			} else {
				notes[len(notes)-1] += " (under " + doctorBytes(doctorSpaceWarn) + ")"
			}
		}
		level = max(level, sl)
	}
	return DoctorFinding{Level: level, Check: check, Message: dir + ": " + strings.Join(notes, ", "), Hint: hint}
}

// doctorNearestExisting walks up from p to the first path that exists.
func doctorNearestExisting(p string) (string, fs.FileInfo, error) {
	for {
		parent := filepath.Dir(p)
		if parent == p {
			return "", nil, fmt.Errorf("no existing parent folder")
		}
		p = parent
		fi, err := os.Stat(p)
		if err == nil {
			return p, fi, nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return "", nil, err
		}
	}
}

// doctorUnwrapPath drops the *PathError wrapper whose path the message already
// names.
func doctorUnwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// doctorSpaceLevel classifies free bytes on the data dir's disk.
func doctorSpaceLevel(free uint64) DoctorLevel {
	switch {
	case free < doctorSpaceFail:
		return DoctorFail
	case free < doctorSpaceWarn:
		return DoctorWarn
	}
	return DoctorOK
}

func doctorBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func doctorJoinHint(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// ---- 3. QUIC port ----

func (r *doctorRun) checkPort(ctx context.Context) DoctorFinding {
	const check = "QUIC port"
	listen := r.cfg.Listen
	network := "udp"
	host, port, _ := net.SplitHostPort(listen)
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() {
		network = "udp4"
	}
	laddr, err := net.ResolveUDPAddr(network, listen)
	if err != nil {
		return doctorFailf(check, "listen must be host:port of this PC, usually 0.0.0.0:4610", "listen %s: %v", listen, err)
	}
	c, err := net.ListenUDP(network, laddr)
	if err == nil {
		c.Close()
		return doctorOKf(check, "UDP %s is free (the node is not running)", listen)
	}
	if !doctorAddrInUse(err) {
		hint := "listen must be an address of this PC, or 0.0.0.0"
		return doctorFailf(check, hint, "cannot bind UDP %s: %v", listen, doctorUnwrapOp(err))
	}
	st, apiErr := r.localStatus(ctx)
	switch {
	case apiErr == nil && st.Node == r.cfg.NodeID:
		state := st.Raft.State
		if state == "" {
			state = "unknown"
		}
		return doctorOKf(check, "UDP %s in use by the running node (%s, raft %s)", listen, st.Node, strings.ToLower(state))
	case apiErr == nil:
		return doctorFailf(check, "give each node its own listen and api ports",
			"UDP %s is taken, and the API at %s answers as node %q, not %q", listen, r.cfg.API, st.Node, r.cfg.NodeID)
	}
	return doctorFailf(check, fmt.Sprintf("stop that program or change listen: (find it with %s)", doctorPortOwner(port)),
		"UDP %s is taken by another program (the node's API at %s does not answer: %v)", listen, r.cfg.API, apiErr)
}

func doctorPortOwner(port string) string {
	if runtime.GOOS == "windows" {
		return "netstat -abno -p UDP | findstr :" + port
	}
	return "ss -ulpn 'sport = :" + port + "'"
}

func doctorUnwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return doctorUnwrapOp(oe.Err)
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}

// doctorStatus is the part of GET /v1/status the port check reads.
type doctorStatus struct {
	Node string `json:"node"`
	Raft struct {
		State string `json:"state"`
	} `json:"raft"`
}

// localStatus asks the node's own API who it is.
func (r *doctorRun) localStatus(ctx context.Context) (doctorStatus, error) {
	var st doctorStatus
	host, port, err := net.SplitHostPort(r.cfg.API)
	if err != nil {
		return st, err
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	ctx, cancel := context.WithTimeout(ctx, doctorAPITimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/v1/status", nil)
	if err != nil {
		return st, err
	}
	if r.cfg.APITokenFile != "" {
		if b, err := os.ReadFile(r.cfg.APITokenFile); err == nil {
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(b)))
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, doctorUnwrapOp(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /v1/status: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("GET /v1/status: %w", err)
	}
	if st.Node == "" {
		return st, errors.New("GET /v1/status: no node in the answer")
	}
	return st, nil
}

// ---- 4. certificates ----

func (r *doctorRun) checkCertificates() DoctorFinding {
	const check = "certificates"
	c := r.cfg
	renew := fmt.Sprintf("issue a new one at the center: stationsync ca issue --ca DIR --station %s --node %s --out DIR, and copy node.crt and node.key here", c.StationID, c.NodeID)
	if c.Role == "center" {
		renew = fmt.Sprintf("issue a new one: stationsync ca issue --ca DIR --role center --node %s --out DIR", c.NodeID)
	}
	t, err := pki.LoadTLS(c.TLS.CA, c.TLS.Cert, c.TLS.Key)
	if err != nil {
		// Say plainly when it is the validity period (LoadTLS reports it
		// as a chain error).
		if leaf, perr := doctorReadLeaf(c.TLS.Cert); perr == nil {
			now := time.Now()
			if now.After(leaf.NotAfter) {
				return doctorFailf(check, renew, "%s expired on %s (%s ago)", c.TLS.Cert, leaf.NotAfter.Local().Format(time.DateTime), doctorAge(now.Sub(leaf.NotAfter)))
			}
			if now.Before(leaf.NotBefore) {
				return doctorFailf(check, "check this PC's date, time and time zone", "%s is not valid before %s, but this PC's clock says %s", c.TLS.Cert, leaf.NotBefore.Local().Format(time.DateTime), now.Format(time.DateTime))
			}
		}
		return doctorFailf(check, "tls: names the files from `stationsync ca issue` (ca.crt, node.crt, node.key)", "%v", strings.TrimPrefix(err.Error(), "load TLS: "))
	}
	id := t.Identity()
	if c.Role == "center" {
		if id.Role != pki.RoleCenter || id.Node != c.NodeID {
			return doctorFailf(check, "issue one with ca issue --role center, or fix node_id", "%s names %s, but the config says center node %s", c.TLS.Cert, id, c.NodeID)
		}
	} else if id.Role != pki.RoleStation || id.Station != c.StationID || id.Node != c.NodeID {
		return doctorFailf(check, "copy this PC's own certificate, or fix station_id and node_id", "%s names %s %s/%s, but the config says station %s node %s", c.TLS.Cert, id.Role, id.Station, id.Node, c.StationID, c.NodeID)
	}
	r.tls = t
	leaf := t.Leaf()
	left := time.Until(leaf.NotAfter)
	days := int(math.Floor(left.Hours() / 24))
	who := fmt.Sprintf("station %s node %s", id.Station, id.Node)
	if id.Role == pki.RoleCenter {
		who = "center node " + id.Node
	}
	until := leaf.NotAfter.Local().Format(time.DateOnly)
	if left < doctorCertWarn {
		return doctorWarnf(check, strings.Replace(renew, "issue a new one", "renew it", 1)+" (the node picks it up without a restart)",
			"%s, expires on %s (%s left)", who, until, doctorAge(left))
	}
	return doctorOKf(check, "%s, valid until %s (%d days left)", who, until, days)
}

func doctorReadLeaf(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no certificate")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// doctorAge is a duration in days, or hours/minutes under a day.
func doctorAge(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	case d >= time.Minute:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	}
	return fmt.Sprintf("%d seconds", int(d.Seconds()))
}

// ---- 5. multicast ----

var doctorMDNSGroup = discovery.MDNSGroup

const doctorPeersHint = "if multicast is blocked on this network, list every PC's address under peers: (host:4610)"

func (r *doctorRun) checkMulticast(ctx context.Context) []DoctorFinding {
	const check = "multicast"
	c := r.cfg
	if c.Role == "center" {
		return nil // a center does not use mDNS: its nodes list each other in peers:
	}
	if !c.MDNS {
		if len(c.Peers) == 0 && c.Expect > 1 {
			return []DoctorFinding{doctorWarnf(check, "list every PC's address under peers:, or turn mdns on",
				"mdns is off and peers: is empty, but expect is %d: this PC can find no other PC (unless the cluster was formed before)", c.Expect)}
		}
		return []DoctorFinding{doctorOKf(check, "mdns is off; the PCs are found through peers:")}
	}
	var out []DoctorFinding
	var ifaces []net.Interface
	if len(c.MDNSInterfaces) > 0 {
		for _, name := range c.MDNSInterfaces {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				out = append(out, doctorFailf(check+" "+name, "mdns_interfaces must name interfaces of this PC (it has: "+strings.Join(doctorInterfaceNames(), ", ")+"); the node refuses to start otherwise",
					"no such interface"))
				continue
			}
			if ifi.Flags&net.FlagMulticast == 0 {
				out = append(out, doctorFailf(check+" "+name, "remove it from mdns_interfaces; the node refuses to start with it", "interface does not support multicast"))
				continue
			}
			if ifi.Flags&net.FlagUp == 0 {
				out = append(out, doctorWarnf(check+" "+name, "mDNS uses it once it comes up", "interface is down"))
				continue
			}
			ifaces = append(ifaces, *ifi)
		}
	} else {
		all, err := net.Interfaces()
		if err != nil {
			return []DoctorFinding{doctorWarnf(check, doctorPeersHint, "cannot list the network interfaces: %v", err)}
		}
		for _, ifi := range all {
			if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 ||
				ifi.Flags&net.FlagLoopback != 0 || ifi.Flags&net.FlagPointToPoint != 0 || discovery.IsVirtual(ifi.Name) {
				continue
			}
			if len(doctorIPv4Nets(ifi)) == 0 {
				continue
			}
			ifaces = append(ifaces, ifi)
		}
		if len(ifaces) == 0 {
			return []DoctorFinding{doctorWarnf(check, doctorPeersHint, "no up, multicast-capable interface with an IPv4 address")}
		}
	}
	if len(ifaces) == 0 {
		return out
	}
	return append(out, r.probeMulticast(ctx, ifaces)...)
}

func doctorInterfaceNames() []string {
	all, _ := net.Interfaces()
	var names []string
	for _, ifi := range all {
		names = append(names, ifi.Name)
	}
	return names
}

func doctorIPv4Nets(ifi net.Interface) []*net.IPNet {
	addrs, _ := ifi.Addrs()
	var out []*net.IPNet
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			out = append(out, &net.IPNet{IP: ipn.IP.To4(), Mask: ipn.Mask})
		}
	}
	return out
}

// doctorMDNSProbe is what one interface's probe saw.
type doctorMDNSProbe struct {
	ifi     net.Interface
	nets    []*net.IPNet
	query   []byte
	id      uint16
	err     error    // join or send failed
	echoed  bool     // our query came back
	ours    bool     // this PC's running node answered
	station []string // nodes of this station that answered
	others  int      // answers from nodes of other stations
	senders map[string]bool
}

// probeMulticast joins the mDNS group on ifaces, sends a DNS-SD query for
// the stationsync service out of each and listens for MulticastWait: our
// own query looped back (the interface sends and receives multicast), and
// the answers of the stationsync nodes that heard it.
func (r *doctorRun) probeMulticast(ctx context.Context, ifaces []net.Interface) []DoctorFinding {
	const check = "multicast"
	conn, err := net.ListenUDP("udp4", doctorMDNSGroup)
	if err != nil {
		return []DoctorFinding{doctorWarnf(check, doctorPeersHint, "cannot open UDP %s: %v", doctorMDNSGroup, doctorUnwrapOp(err))}
	}
	defer conn.Close()
	pc := ipv4.NewPacketConn(conn)
	_ = pc.SetMulticastLoopback(true)
	_ = pc.SetMulticastTTL(255)
	_ = pc.SetControlMessage(ipv4.FlagInterface, true) // not on Windows: answers are placed by source address then

	service := discovery.Service + "." + discovery.Domain
	probes := make([]*doctorMDNSProbe, len(ifaces))
	for i, ifi := range ifaces {
		p := &doctorMDNSProbe{ifi: ifi, nets: doctorIPv4Nets(ifi), senders: map[string]bool{}}
		probes[i] = p
		var idb [2]byte
		_, _ = rand.Read(idb[:])
		p.id = binary.BigEndian.Uint16(idb[:]) | 1 // never 0: our probes are told apart by id
		m := new(dns.Msg)
		m.Id = p.id
		m.Question = []dns.Question{{Name: service, Qtype: dns.TypePTR, Qclass: dns.ClassINET}}
		if p.query, err = m.Pack(); err != nil {
			p.err = err
			continue
		}
		if err := pc.JoinGroup(&probes[i].ifi, &net.UDPAddr{IP: doctorMDNSGroup.IP}); err != nil {
			p.err = fmt.Errorf("cannot join %s: %v", doctorMDNSGroup.IP, doctorUnwrapOp(err))
			continue
		}
		if err := pc.SetMulticastInterface(&probes[i].ifi); err != nil {
			p.err = fmt.Errorf("cannot send on it: %v", doctorUnwrapOp(err))
			continue
		}
		if _, err := pc.WriteTo(p.query, nil, doctorMDNSGroup); err != nil {
			p.err = fmt.Errorf("cannot send to %s: %v", doctorMDNSGroup, doctorUnwrapOp(err))
		}
	}
	local := map[string]bool{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				local[ipn.IP.String()] = true
			}
		}
	}
	deadline := time.Now().Add(r.opts.MulticastWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = pc.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = pc.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 9000)
	for {
		n, cm, src, err := pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			if errors.Is(err, net.ErrClosed) {
				break
			}
			continue // a transient error (ICMP) must not end the wait
		}
		pkt := buf[:n]
		srcIP := ""
		if ua, ok := src.(*net.UDPAddr); ok {
			srcIP = ua.IP.String()
		}
		var msg dns.Msg
		if err := msg.Unpack(pkt); err != nil {
			continue
		}
		if !msg.Response {
			for _, p := range probes {
				if p.err == nil && bytes.Equal(pkt, p.query) {
					p.echoed = true
				}
			}
			continue
		}
		p := doctorPlaceAnswer(probes, cm, srcIP)
		if p == nil {
			continue
		}
		for _, rr := range append(msg.Answer, msg.Extra...) {
			txt, ok := rr.(*dns.TXT)
			if !ok || !strings.HasSuffix(strings.ToLower(txt.Hdr.Name), "."+strings.ToLower(service)) {
				continue
			}
			kv := map[string]string{}
			for _, s := range txt.Txt {
				k, v, _ := strings.Cut(s, "=")
				if _, dup := kv[strings.ToLower(k)]; !dup {
					kv[strings.ToLower(k)] = v
				}
			}
			station, node := kv["station"], kv["node"]
			key := station + "/" + node
			if station == "" || node == "" || p.senders[key] {
				continue
			}
			p.senders[key] = true
			switch {
			case station == r.cfg.StationID && node == r.cfg.NodeID:
				p.ours = local[srcIP] || srcIP == ""
				if !p.ours {
					p.station = append(p.station, node+" (announced from "+srcIP+": a second PC with this node_id?)")
				}
			case station == r.cfg.StationID:
				p.station = append(p.station, node)
			default:
				p.others++
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil
	}
	var out []DoctorFinding
	for _, p := range probes {
		name := check + " " + p.ifi.Name
		if p.err != nil {
			out = append(out, doctorWarnf(name, doctorPeersHint, "%v", p.err))
			continue
		}
		if !p.echoed {
			out = append(out, doctorWarnf(name, doctorPeersHint, "joined %s and sent a probe, but it did not come back within %s: multicast does not work on this interface", doctorMDNSGroup, r.opts.MulticastWait))
			continue
		}
		slices.Sort(p.station)
		var heard []string
		if len(p.station) > 0 {
			heard = append(heard, "answered by "+strings.Join(p.station, ", "))
		} else {
			heard = append(heard, "no other PC of "+r.cfg.StationID+" answered (normal if they are off or not installed yet)")
		}
		if p.ours {
			heard = append(heard, "this PC's running node answered too")
		}
		if p.others > 0 {
			heard = append(heard, fmt.Sprintf("%d node(s) of other stations answered", p.others))
		}
		out = append(out, doctorOKf(name, "joined %s, probe sent and received back; %s", doctorMDNSGroup, strings.Join(heard, "; ")))
	}
	return out
}

// doctorPlaceAnswer picks the probe (interface) an answer arrived on: by the
// control message's interface where the OS gives one, else by source
// address; with one interface, that one.
func doctorPlaceAnswer(probes []*doctorMDNSProbe, cm *ipv4.ControlMessage, srcIP string) *doctorMDNSProbe {
	if cm != nil && cm.IfIndex != 0 {
		for _, p := range probes {
			if p.ifi.Index == cm.IfIndex {
				return p
			}
		}
	}
	if ip := net.ParseIP(srcIP); ip != nil {
		for _, p := range probes {
			for _, n := range p.nets {
				if n.Contains(ip) {
					return p
				}
			}
		}
	}
	if len(probes) == 1 {
		return probes[0]
	}
	return nil
}

// ---- 6. peers ----

// doctorTarget is one address the peers check dials.
type doctorTarget struct {
	check   string // "peer ADDR", "center ADDR", "station ID ADDR"
	addr    string
	kind    string // "peer" (same cluster), "center", "station"
	station string // kind station: the station expected there
}

func (r *doctorRun) checkPeers(ctx context.Context) []DoctorFinding {
	const check = "peers"
	c := r.cfg
	var targets []doctorTarget
	var selfSkipped []string
	var out []DoctorFinding
	seen := map[string]bool{}
	for _, p := range c.Peers {
		if seen[p] {
			continue
		}
		seen[p] = true
		if r.isSelf(ctx, p) {
			selfSkipped = append(selfSkipped, p)
			out = append(out, doctorOKf("peer "+p, "this PC's own address (listen port on one of its addresses): skipped"))
			continue
		}
		targets = append(targets, doctorTarget{check: "peer " + p, addr: p, kind: "peer"})
	}
	if c.Role == "center" {
		for _, st := range c.Stations {
			for _, a := range st.Addresses {
				targets = append(targets, doctorTarget{check: "station " + st.ID + " " + a, addr: a, kind: "station", station: st.ID})
			}
		}
	} else if c.Center != "" {
		targets = append(targets, doctorTarget{check: "center " + c.Center, addr: c.Center, kind: "center"})
	}
	if len(targets) == 0 {
		msg := "no static peers"
		if c.Role != "center" {
			msg += " and no center"
		}
		msg += " configured"
		if len(selfSkipped) > 0 {
			msg += " besides this PC"
		}
		if c.MDNS && c.Role != "center" {
			msg += "; mDNS finds the PCs"
		}
		return append(out, doctorOKf(check, "%s", msg))
	}
	if r.tls == nil {
		return append(out, doctorWarnf(check, "fix the certificates first", "not checked: the certificates did not load"))
	}
	station := c.StationID
	if c.Role == "center" {
		station = ""
	}
	listen := "0.0.0.0:0"
	if host, _, _ := net.SplitHostPort(c.Listen); host != "" {
		if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() && !ip.Is4In6() {
			listen = "[::]:0"
		}
	}
	tr, err := transport.New(transport.Config{
		Listen:      listen,
		TLS:         r.tls,
		Station:     station,
		DialTimeout: r.opts.PeerTimeout,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err == nil {
		err = tr.Open()
	}
	if err != nil {
		return append(out, doctorWarnf(check, "", "not checked: cannot open a QUIC endpoint on %s: %v", listen, err))
	}
	defer tr.Close()

	results := make([]DoctorFinding, len(targets))
	var wg sync.WaitGroup
	slots := make(chan struct{}, 16)
	for i, t := range targets {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			results[i] = r.probePeer(ctx, tr, t)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil
	}
	return append(out, results...)
}

// isSelf reports whether a static peer address is this PC's own node: the
// advertise address, or an address of this PC with the listen port.
func (r *doctorRun) isSelf(ctx context.Context, addr string) bool {
	if r.cfg.Advertise != "" && addr == r.cfg.Advertise {
		return true
	}
	host, port, err := net.SplitHostPort(addr)
	_, lport, _ := net.SplitHostPort(r.cfg.Listen)
	if err != nil || port != lport || lport == "0" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupIPAddr(lctx, host)
		if err != nil {
			return false
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		for _, ip := range ips {
			if ipn.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// probePeer dials one target and, for a peer of this cluster, asks it the
// time.
func (r *doctorRun) probePeer(ctx context.Context, tr *transport.Transport, t doctorTarget) DoctorFinding {
	c := r.cfg
	ctx, cancel := context.WithTimeout(ctx, r.opts.PeerTimeout)
	defer cancel()
	start := time.Now()
	conn, id, err := tr.Dial(ctx, t.addr, transport.KindRPC)
	handshake := time.Since(start)
	if err != nil {
		return doctorDialFinding(t, err, r.opts.PeerTimeout)
	}
	defer conn.Close()
	hs := "handshake " + doctorMs(handshake)
	who := id.Node
	// Is the node that answered the one the config means?
	switch t.kind {
	case "center":
		if id.Role != pki.RoleCenter {
			return doctorFailf(t.check, "center: must be the district center's QUIC address",
				"answers as %s %s/%s, not as the center", id.Role, id.Station, id.Node)
		}
		return doctorOKf(t.check, "center node %s reachable, %s (the center answers no clock probe to stations)", id.Node, hs)
	case "station":
		if id.Role != pki.RoleStation || id.Station != t.station {
			return doctorFailf(t.check, "fix the station's addresses under stations:",
				"answers as %s %s/%s, not as a PC of %s", id.Role, id.Station, id.Node, t.station)
		}
		return doctorOKf(t.check, "%s reachable, %s", id.Node, hs)
	}
	switch {
	case c.Role == "center" && id.Role != pki.RoleCenter:
		return doctorFailf(t.check, "peers: of a center lists the other center nodes; stations go under stations:",
			"answers as %s %s/%s, not as a center node", id.Role, id.Station, id.Node)
	case c.Role != "center" && id.Role == pki.RoleCenter:
		return doctorWarnf(t.check, "list the center under center:, not peers:",
			"is the district center (node %s), not a PC of this station", id.Node)
	}
	if id.Node == c.NodeID {
		return doctorOKf(t.check, "this PC's own node (%s), %s", id.Node, hs)
	}
	// The info probe: round trip and the peer's clock.
	t0 := time.Now()
	info, err := doctorInfo(conn, t0.Add(r.opts.PeerTimeout))
	t1 := time.Now()
	if err != nil {
		return doctorWarnf(t.check, "",
			"%s reachable, %s, but its info probe failed: %v (clock not compared)", who, hs, err)
	}
	if info.code != "" {
		return doctorOKf(t.check, "%s reachable, %s; it answered %q (%s): clock not compared", who, hs, info.code, info.message)
	}
	rtt := t1.Sub(t0)
	mid := t0.Add(rtt / 2)
	offset := time.UnixMilli(info.unixMilli).Sub(mid)
	maxSkew := time.Duration(c.MaxClockSkew)
	clock := fmt.Sprintf("clock offset %+.1fs", offset.Seconds())
	if doctorAbs(offset) < time.Second {
		clock = fmt.Sprintf("clock offset %+dms", offset.Milliseconds())
	}
	if doctorAbs(offset)-rtt/2 > maxSkew {
		dir := "ahead of"
		if offset < 0 {
			dir = "behind"
		}
		return doctorWarnf(t.check, "sync both PCs' clocks (NTP; w32time on Windows)",
			"%s reachable, round trip %s, but its clock is %.1fs %s this PC's (max_clock_skew %s)", who, doctorMs(rtt), doctorAbs(offset).Seconds(), dir, maxSkew)
	}
	return doctorOKf(t.check, "%s reachable, %s, round trip %s, %s", who, hs, doctorMs(rtt), clock)
}

// doctorDialFinding says why a dial failed: a refused handshake is a FAIL (it
// will not fix itself), no answer a WARN.
func doctorDialFinding(t doctorTarget, err error, timeout time.Duration) DoctorFinding {
	var te *quic.TransportError
	if errors.As(err, &te) && te.ErrorCode.IsCryptoError() {
		who := "the peer refused this PC's certificate"
		if !te.Remote {
			who = "this PC refused the peer's certificate"
		}
		hint := "both must have certificates of the same district CA, and a peer must be of this station"
		switch t.kind {
		case "center":
			hint = "center: must be the district center's QUIC address, and both certificates of the same district CA"
		case "station":
			hint = "both must have certificates of the same district CA; check the station's addresses under stations:"
		}
		msg := te.Error() // "CRYPTO_ERROR 0x12a (local): tls: ..."
		if _, rest, ok := strings.Cut(msg, "): "); ok {
			msg = rest
		}
		return doctorFailf(t.check, hint, "handshake refused: %s: %s", who, msg)
	}
	port := "4610"
	if _, p, e := net.SplitHostPort(t.addr); e == nil {
		port = p
	}
	var idle *quic.IdleTimeoutError
	var hto *quic.HandshakeTimeoutError
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &idle) || errors.As(err, &hto) || strings.Contains(err.Error(), "no QUIC handshake") {
		return doctorWarnf(t.check, "is stationsync running there, and UDP "+port+" open in both firewalls?", "no answer within %s", timeout)
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "dial "+t.addr+": ")
	return doctorWarnf(t.check, "check the address and the network", "unreachable: %s", msg)
}

func doctorMs(d time.Duration) string {
	if d < time.Millisecond {
		return "<1ms"
	}
	return d.Round(time.Millisecond).String()
}

func doctorAbs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// doctorInfoAnswer is the part of the rpc info answer the doctor reads.
type doctorInfoAnswer struct {
	unixMilli int64
	code      string // the peer's refusal code ("refused", "starting"); "" when it answered
	message   string
}

// doctorInfo sends the replication rpc "info" request on an rpc stream and
// reads the peer's clock.
func doctorInfo(c net.Conn, deadline time.Time) (doctorInfoAnswer, error) {
	p, err := replication.ProbeInfo(c, deadline)
	return doctorInfoAnswer{unixMilli: p.UnixMilli, code: p.Code, message: p.Error}, err
}
