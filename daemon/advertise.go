package daemon

import (
	"net"
	"slices"
)

// detectAdvertise picks the QUIC address peers should dial when the config
// leaves advertise empty and listen is on all interfaces: an address of
// this machine listed among the static peers with the listen port (the
// station's shared config names every PC), else the first IPv4 address of
// an interface that is up and not loopback. It returns "" when listen
// already names one address.
func detectAdvertise(listen string, peers []string, localAddrs func() ([]net.Addr, error)) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return ""
	}
	addrs, err := localAddrs()
	if err != nil {
		return ""
	}
	var own []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			own = append(own, ipn.IP.String())
		}
	}
	for _, p := range peers {
		ph, pp, err := net.SplitHostPort(p)
		if err == nil && pp == port && slices.Contains(own, ph) {
			return p
		}
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			return net.JoinHostPort(ipn.IP.String(), port)
		}
	}
	return ""
}

// upInterfaceAddrs lists the addresses of interfaces that are up.
func upInterfaceAddrs() ([]net.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []net.Addr
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		as, err := ifc.Addrs()
		if err != nil {
			continue
		}
		out = append(out, as...)
	}
	return out, nil
}
