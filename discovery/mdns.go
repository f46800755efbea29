package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/grandcat/zeroconf"
	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
)

// minServerLife is how long a zeroconf server lives at least before
// Shutdown (see registration.close).
const minServerLife = 300 * time.Millisecond

var mdnsGroup = MDNSGroup

// virtualPrefixes name interfaces left out of the default selection: their
// addresses are host-internal and repeat across PCs (docker0 is
// 172.17.0.1/16 everywhere), so a peer's address on them would look like
// "same subnet" and be dialled in vain.
var virtualPrefixes = []string{
	"docker", "br-", "veth", "virbr", "vboxnet", "vmnet", "cni", "flannel",
	"podman", "lxcbr", "lxdbr", "tailscale", "zt",
	"virtualbox host-only", "vmware network adapter", "vethernet (wsl",
	"vethernet (default switch)",
}

// IsVirtual says whether an interface is one mDNS leaves out by default
// (host-internal: docker, VM and VPN adapters).
func IsVirtual(name string) bool { return isVirtual(name) }

// MDNSGroup is the mDNS multicast group and port.
var MDNSGroup = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}

func isVirtual(name string) bool {
	name = strings.ToLower(name)
	for _, p := range virtualPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// netState is what the loop derives from the interfaces each round.
type netState struct {
	ifaces []net.Interface
	ips    []string     // IPv4 addresses to announce
	nets   []*net.IPNet // IPv4 nets of ifaces
	sig    string       // changes when registration must be redone
}

// currentNet lists the interfaces to use now and their IPv4 addresses.
func (d *Discovery) currentNet() (netState, error) {
	var st netState
	var cands []net.Interface
	if len(d.named) > 0 {
		var missing []error
		for _, name := range d.named {
			ifi, err := net.InterfaceByName(name)
			if err != nil { // unplugged since Open: use the others
				missing = append(missing, fmt.Errorf("interface %q: %w", name, err))
				continue
			}
			if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 {
				cands = append(cands, *ifi)
			}
		}
		if len(cands) == 0 && len(missing) > 0 {
			return st, errors.Join(missing...)
		}
	} else {
		all, err := net.Interfaces()
		if err != nil {
			return st, err
		}
		for _, ifi := range all {
			if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 ||
				ifi.Flags&net.FlagLoopback != 0 || ifi.Flags&net.FlagPointToPoint != 0 || isVirtual(ifi.Name) {
				continue
			}
			cands = append(cands, ifi)
		}
	}
	var sig strings.Builder
	for _, ifi := range cands {
		addrs, _ := ifi.Addrs()
		var v4 []string
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() == nil || ipn.IP.IsLoopback() {
				continue
			}
			v4 = append(v4, ipn.IP.To4().String())
			st.nets = append(st.nets, &net.IPNet{IP: ipn.IP.To4().Mask(ipn.Mask), Mask: ipn.Mask})
		}
		if len(v4) == 0 && len(d.named) == 0 {
			continue // default selection: IPv4 interfaces only
		}
		st.ifaces = append(st.ifaces, ifi)
		st.ips = append(st.ips, v4...)
		fmt.Fprintf(&sig, "%d/%s;", ifi.Index, ifi.Name)
	}
	if d.cfg.AdvertiseIP != "" {
		st.ips = []string{d.cfg.AdvertiseIP}
	}
	slices.Sort(st.ips)
	st.ips = slices.Compact(st.ips)
	sig.WriteString(strings.Join(st.ips, ","))
	st.sig = sig.String()
	return st, nil
}

// run owns the mDNS side: registration, goodbye listener, browse rounds.
func (d *Discovery) run(ctx context.Context) {
	defer d.wg.Done()
	var reg *registration
	defer func() { reg.close() }()
	lastErr := ""
	warn := func(msg string, err error) {
		if err.Error() != lastErr {
			lastErr = err.Error()
			d.logger.Warn(msg+"; retrying", "error", err)
		}
	}
	for ctx.Err() == nil {
		st, err := d.currentNet()
		if err == nil && len(st.ifaces) == 0 {
			err = errors.New("no up, multicast-capable interface with an IPv4 address")
		}
		if err != nil {
			warn("mDNS has no interface", err)
			if reg != nil {
				reg.close() // goodbye while we still can
				reg = nil
			}
			sleep(ctx, d.cfg.BrowseInterval)
			d.expire(time.Now())
			continue
		}
		d.mu.Lock()
		d.nets = st.nets
		d.local = localIPs()
		d.mu.Unlock()

		if reg == nil || reg.sig != st.sig {
			if reg != nil {
				d.logger.Info("network changed; registering again", "interfaces", ifaceNames(st.ifaces), "ips", st.ips)
				reg.close()
				reg = nil
			}
			reg, err = d.register(st)
			if err != nil {
				warn("mDNS registration failed", err)
			} else {
				lastErr = ""
				d.logger.Info("mDNS service registered", "instance", instanceName(d.cfg.Station, d.cfg.Node),
					"interfaces", ifaceNames(st.ifaces), "ips", st.ips, "port", d.cfg.Port)
			}
		}
		d.browseRound(ctx, st.ifaces)
		d.expire(time.Now())
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func ifaceNames(ifaces []net.Interface) []string {
	out := make([]string, len(ifaces))
	for i, ifi := range ifaces {
		out[i] = ifi.Name
	}
	return out
}

// browseRound runs one Browse with a fresh resolver for BrowseInterval and
// drains its entries until zeroconf closes the channel (an unread channel
// blocks zeroconf's main loop forever, with its sockets).
func (d *Discovery) browseRound(ctx context.Context, ifaces []net.Interface) {
	rctx, cancel := context.WithTimeout(ctx, d.cfg.BrowseInterval)
	defer cancel()
	res, err := zeroconf.NewResolver(zeroconf.SelectIfaces(ifaces), zeroconf.SelectIPTraffic(zeroconf.IPv4))
	if err != nil {
		d.logger.Debug("mDNS resolver", "error", err)
		<-rctx.Done()
		return
	}
	entries := make(chan *zeroconf.ServiceEntry, 16)
	if err := res.Browse(rctx, Service, Domain, entries); err != nil {
		d.logger.Debug("mDNS browse", "error", err)
		cancel() // zeroconf closes entries once its loop sees the cancel
	}
	for e := range entries {
		d.handleEntry(e, time.Now())
	}
}

// registration is a registered service and its goodbye listener.
type registration struct {
	sig     string
	started time.Time
	server  *zeroconf.Server
	conn    *ipv4.PacketConn
	done    chan struct{}
	logger  *slog.Logger
}

func (d *Discovery) register(st netState) (*registration, error) {
	if len(st.ips) == 0 {
		return nil, errors.New("no IPv4 address to announce on " + strings.Join(ifaceNames(st.ifaces), ","))
	}
	r := &registration{sig: st.sig, started: time.Now(), done: make(chan struct{}), logger: d.logger}
	conn, err := d.listenGoodbyes(st.ifaces)
	if err != nil {
		// Goodbyes are an optimisation over Expiry: go on without them.
		d.logger.Warn("mDNS goodbye listener unavailable; departed peers go after the expiry", "error", err)
		close(r.done)
	} else {
		r.conn = conn
		go func() {
			defer close(r.done)
			d.readGoodbyes(conn)
		}()
	}
	srv, err := zeroconf.RegisterProxy(instanceName(d.cfg.Station, d.cfg.Node), Service, Domain, d.cfg.Port,
		hostName(d.cfg.Station, d.cfg.Node), st.ips, d.txt(), st.ifaces)
	if err != nil {
		r.close()
		return nil, err
	}
	r.server = srv
	return r, nil
}

// close sends the goodbye (zeroconf's Shutdown) and stops the listener.
// Shutdown only writes to UDP sockets and closes them, which does not
// block even without a network; it is still bounded here.
func (r *registration) close() {
	if r == nil {
		return
	}
	if r.server != nil {
		// zeroconf's receive goroutines call shutdownEnd.Add(1) only once
		// running: a Shutdown right after RegisterProxy can Wait before that
		// Add (a data race, and Shutdown returning with them still alive).
		// Give them time to start and block in ReadFrom.
		if wait := time.Until(r.started.Add(minServerLife)); wait > 0 {
			time.Sleep(wait)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.server.Shutdown()
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			r.logger.Warn("mDNS unregister did not finish in 2s")
		}
	}
	if r.conn != nil {
		r.conn.Close()
	}
	select {
	case <-r.done:
	case <-time.After(time.Second):
		r.logger.Warn("mDNS goodbye listener did not stop in 1s")
	}
}

// listenGoodbyes joins the mDNS group on ifaces with its own socket
// (port 5353 is shared: Go sets SO_REUSEADDR for a multicast address).
func (d *Discovery) listenGoodbyes(ifaces []net.Interface) (*ipv4.PacketConn, error) {
	c, err := net.ListenUDP("udp4", mdnsGroup)
	if err != nil {
		return nil, err
	}
	pc := ipv4.NewPacketConn(c)
	joined := 0
	var errs []error
	for i := range ifaces {
		if err := pc.JoinGroup(&ifaces[i], &net.UDPAddr{IP: mdnsGroup.IP}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ifaces[i].Name, err))
			continue
		}
		joined++
	}
	if joined == 0 {
		pc.Close()
		return nil, fmt.Errorf("join %v: %w", mdnsGroup.IP, errors.Join(errs...))
	}
	return pc, nil
}

// readGoodbyes removes peers whose records arrive with TTL 0.
func (d *Discovery) readGoodbyes(pc *ipv4.PacketConn) {
	buf := make([]byte, 9000)
	for {
		n, _, _, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient error (e.g. ICMP-induced) must not spin.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for _, inst := range goodbyeInstances(buf[:n]) {
			d.handleGoodbye(inst, time.Now())
		}
	}
}

var serviceFQDN = strings.ToLower(Service + "." + Domain)

// goodbyeInstances returns the instances of our service that a packet
// says goodbye for: a response with a PTR (service -> instance) or an SRV
// of an instance, with TTL 0.
func goodbyeInstances(pkt []byte) []string {
	var msg dns.Msg
	if err := msg.Unpack(pkt); err != nil || !msg.Response {
		return nil
	}
	var out []string
	add := func(fqdn string) {
		name := strings.ToLower(fqdn)
		if !strings.HasSuffix(name, "."+serviceFQDN) {
			return
		}
		inst := strings.TrimSuffix(name, "."+serviceFQDN)
		if inst != "" && !slices.Contains(out, inst) {
			out = append(out, inst)
		}
	}
	for _, rr := range append(msg.Answer, msg.Extra...) {
		if rr.Header().Ttl != 0 {
			continue
		}
		switch rr := rr.(type) {
		case *dns.PTR:
			if strings.EqualFold(rr.Hdr.Name, serviceFQDN) {
				add(rr.Ptr)
			}
		case *dns.SRV:
			add(rr.Hdr.Name)
		}
	}
	return out
}
