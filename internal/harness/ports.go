package harness

import (
	"fmt"
	"net"
	"sync"
)

// handedOut remembers the ports this process gave to nodes, so two
// stations of parallel tests never get the same one.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreePorts returns n distinct ports on host that were free for both UDP
// (QUIC) and TCP (HTTP) when asked, and that this process has not handed
// out before. The ports are closed again, so another process may take one
// before the node binds it; in practice the kernel does not reuse them
// that quickly.
func FreePorts(host string, n int) ([]int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 100*n {
			return nil, fmt.Errorf("no free port pair on %s after %d tries", host, tries)
		}
		p, err := freePort(host)
		if err != nil {
			return nil, err
		}
		if handedOut.ports[p] {
			continue
		}
		handedOut.ports[p] = true
		out = append(out, p)
	}
	return out, nil
}

// freePort binds UDP port 0, then TCP on the same port, and closes both.
func freePort(host string) (int, error) {
	for range 50 {
		u, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
		u.Close()
		if err != nil {
			continue // taken for TCP: try another
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no port on %s free for both UDP and TCP", host)
}
