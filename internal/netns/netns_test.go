//go:build linux

package netns

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv selects a helper mode of the test binary: started inside a
// host with Host.Command, it does one small network job instead of
// running tests.
const helperEnv = "NETNS_TEST_HELPER"

// mdnsGroup is where mDNS speaks.
const mdnsGroup = "224.0.0.251:5353"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helper modes (args after the test binary's name):
//
//	udpecho ADDR   answer every UDP datagram on ADDR with "echo:" + it
//	tcpecho ADDR   answer every TCP line on ADDR with "echo:" + it
//	mrecv          join 224.0.0.251 on eth0, print "got PAYLOAD" per datagram to :5353
//
// Each prints "ready" once listening and runs until killed or stdin closes.
func helper(mode string, args []string) int {
	go func() { // the test closes our stdin (or dies): stop
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "helper:", err); return 1 }
	switch mode {
	case "udpecho":
		pc, err := net.ListenPacket("udp4", args[0])
		if err != nil {
			return fail(err)
		}
		fmt.Println("ready")
		buf := make([]byte, 1500)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return fail(err)
			}
			_, _ = pc.WriteTo(append([]byte("echo:"), buf[:k]...), from)
		}
	case "tcpecho":
		l, err := net.Listen("tcp", args[0])
		if err != nil {
			return fail(err)
		}
		fmt.Println("ready")
		for {
			c, err := l.Accept()
			if err != nil {
				return fail(err)
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "echo:%s\n", sc.Text())
				}
			}()
		}
	case "mrecv":
		ifc, err := net.InterfaceByName(HostIfName)
		if err != nil {
			return fail(err)
		}
		group, _ := net.ResolveUDPAddr("udp4", mdnsGroup)
		c, err := net.ListenMulticastUDP("udp4", ifc, group)
		if err != nil {
			return fail(err)
		}
		fmt.Println("ready")
		buf := make([]byte, 1500)
		for {
			k, _, err := c.ReadFrom(buf)
			if err != nil {
				return fail(err)
			}
			fmt.Printf("got %s\n", buf[:k])
		}
	}
	return fail(fmt.Errorf("unknown mode %q", mode))
}

// helperProc is a helper mode running inside a host.
type helperProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout lines after "ready"; closed at EOF
}

// startHelper runs a helper mode in h and waits for its "ready". It is
// stopped when the test ends.
func startHelper(t *testing.T, h *Host, mode string, args ...string) *helperProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.Command(context.Background(), exe, args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &helperProc{cmd: cmd, stdin: stdin, lines: make(chan string, 100)}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				ready <- sc.Text() == "ready"
				first = false
				continue
			}
			p.lines <- sc.Text()
		}
		if first {
			ready <- false
		}
		close(p.lines)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("helper %s in %s did not start", mode, h.Name())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("helper %s in %s: no ready within 10s", mode, h.Name())
	}
	return p
}

// udpExchange sends "ping" from inside from to addr and reports whether
// "echo:ping" comes back within wait.
func udpExchange(t *testing.T, from *Host, addr string, wait time.Duration) bool {
	t.Helper()
	var c net.Conn
	if err := from.Do(func() error {
		var err error
		c, err = net.Dial("udp4", addr)
		return err
	}); err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from.Name(), err)
	}
	defer c.Close()
	deadline := time.Now().Add(wait)
	buf := make([]byte, 100)
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte("ping")); err != nil {
			// ICMP errors surface here (e.g. no ARP answer): retry.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		k, err := c.Read(buf)
		if err == nil && string(buf[:k]) == "echo:ping" {
			return true
		}
		if err != nil && !os.IsTimeout(err) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return false
}

// sendMulticast sends payload to 224.0.0.251:5353 from inside h, count
// times, spaced by 50ms.
func sendMulticast(t *testing.T, h *Host, payload string, count int) {
	t.Helper()
	var c net.Conn
	if err := h.Do(func() error {
		var err error
		c, err = net.Dial("udp4", mdnsGroup)
		return err
	}); err != nil {
		t.Fatalf("multicast socket in %s: %v", h.Name(), err)
	}
	defer c.Close()
	for range count {
		if _, err := c.Write([]byte(payload)); err != nil {
			t.Fatalf("multicast from %s: %v", h.Name(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// heard reports whether the receiver prints "got payload" within wait.
func heard(p *helperProc, payload string, wait time.Duration) bool {
	timeout := time.After(wait)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return false
			}
			if l == "got "+payload {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

func namespaces(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func withPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

func TestTwoHostsReachEachOther(t *testing.T) {
	t.Parallel()
	n := New(t, "10.231.0.0/24")
	a, b := n.AddHost("a"), n.AddHost("b")
	if a.IP() != "10.231.0.1" || b.IP() != "10.231.0.2" {
		t.Fatalf("addresses %s %s, want 10.231.0.1 and 10.231.0.2", a.IP(), b.IP())
	}
	if n.Host("b") != b || n.Host("c") != nil || len(n.Hosts()) != 2 {
		t.Fatal("Host/Hosts lookup")
	}
	startHelper(t, a, "udpecho", a.IP()+":7000")
	startHelper(t, b, "udpecho", b.IP()+":7000")
	if !udpExchange(t, a, b.IP()+":7000", 5*time.Second) {
		t.Fatal("a cannot reach b")
	}
	if !udpExchange(t, b, a.IP()+":7000", 5*time.Second) {
		t.Fatal("b cannot reach a")
	}

	// The address lives only inside the host, not in the root namespace.
	if ifs, err := net.InterfaceAddrs(); err == nil {
		for _, ad := range ifs {
			if strings.HasPrefix(ad.String(), a.IP()+"/") {
				t.Fatalf("root namespace has %s", ad)
			}
		}
	}

	// Partition and heal.
	if err := b.Disconnect(); err != nil {
		t.Fatal(err)
	}
	if udpExchange(t, a, b.IP()+":7000", time.Second) {
		t.Fatal("a reaches b while b is disconnected")
	}
	if err := b.Reconnect(); err != nil {
		t.Fatal(err)
	}
	if !udpExchange(t, a, b.IP()+":7000", 5*time.Second) {
		t.Fatal("a cannot reach b after Reconnect")
	}
}

// TestDialContext reaches a TCP listener on a host's own 127.0.0.1 from
// the test process, which is in the root namespace.
func TestDialContext(t *testing.T) {
	t.Parallel()
	n := New(t, "10.231.0.0/24")
	a := n.AddHost("a")
	startHelper(t, a, "tcpecho", "127.0.0.1:7001")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := a.DialContext(ctx, "tcp", "127.0.0.1:7001")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Use the connection from another goroutine than the one that dialed.
	done := make(chan string, 1)
	go func() {
		fmt.Fprintln(c, "hello")
		l, _ := bufio.NewReader(c).ReadString('\n')
		done <- l
	}()
	if l := <-done; l != "echo:hello\n" {
		t.Fatalf("answer %q", l)
	}
	if _, err := a.DialContext(ctx, "tcp", "localhost:7001"); err == nil {
		t.Fatal("dial by name accepted")
	}
	// The caller's thread was not moved: this goroutine still sees the
	// root namespace, which has no eth0 address of the network.
	if ifc, err := net.InterfaceByName(HostIfName); err == nil {
		if as, _ := ifc.Addrs(); len(as) > 0 {
			for _, ad := range as {
				if strings.HasPrefix(ad.String(), a.IP()+"/") {
					t.Fatal("test goroutine left inside the host namespace")
				}
			}
		}
	}
}

func TestReaddress(t *testing.T) {
	t.Parallel()
	n := New(t, "10.232.0.0/24")
	a, b := n.AddHost("a"), n.AddHost("b")
	startHelper(t, b, "udpecho", "0.0.0.0:7000")
	old := b.IP()
	if !udpExchange(t, a, old+":7000", 5*time.Second) {
		t.Fatal("a cannot reach b")
	}
	if err := b.Readdress("10.232.0.77"); err != nil {
		t.Fatal(err)
	}
	if b.IP() != "10.232.0.77" {
		t.Fatalf("IP after Readdress %s", b.IP())
	}
	if !udpExchange(t, a, "10.232.0.77:7000", 5*time.Second) {
		t.Fatal("a cannot reach b at its new address")
	}
	if udpExchange(t, a, old+":7000", time.Second) {
		t.Fatal("b still answers at its old address")
	}
	if err := a.Readdress("10.232.0.77"); err == nil {
		t.Fatal("Readdress to another host's address accepted")
	}
	// The old address is free again for the next host.
	if c := n.AddHost("c"); c.IP() != old {
		t.Fatalf("next host got %s, want the freed %s", c.IP(), old)
	}
}

// TestSetMulticast checks that SetMulticast(false) stops mDNS datagrams
// in both directions while unicast still works, and that
// `ip link set multicast off` would not have.
func TestSetMulticast(t *testing.T) {
	t.Parallel()
	n := New(t, "10.233.0.0/24")
	a, b := n.AddHost("a"), n.AddHost("b")
	recvB := startHelper(t, b, "mrecv")
	recvA := startHelper(t, a, "mrecv")
	startHelper(t, b, "udpecho", b.IP()+":7000")

	// Baseline: multicast flows (else the checks below prove nothing).
	sendMulticast(t, a, "m1", 5)
	if !heard(recvB, "m1", 3*time.Second) {
		t.Fatal("baseline: b did not hear a's multicast")
	}
	sendMulticast(t, b, "m1b", 5)
	if !heard(recvA, "m1b", 3*time.Second) {
		t.Fatal("baseline: a did not hear b's multicast")
	}

	// The link flag is not enough: Linux still sends and delivers.
	if err := run("ip", "-n", a.Namespace(), "link", "set", HostIfName, "multicast", "off"); err != nil {
		t.Fatal(err)
	}
	sendMulticast(t, a, "flag", 5)
	if !heard(recvB, "flag", 3*time.Second) {
		t.Log("note: `multicast off` on the link did stop multicast on this kernel")
	}
	if err := run("ip", "-n", a.Namespace(), "link", "set", HostIfName, "multicast", "on"); err != nil {
		t.Fatal(err)
	}

	if err := a.SetMulticast(false); err != nil {
		t.Fatal(err)
	}
	if err := a.SetMulticast(false); err != nil { // idempotent
		t.Fatal(err)
	}
	sendMulticast(t, a, "m2", 10)
	if heard(recvB, "m2", time.Second) {
		t.Fatal("b heard a's multicast after a.SetMulticast(false)")
	}
	sendMulticast(t, b, "m2b", 10)
	if heard(recvA, "m2b", time.Second) {
		t.Fatal("a heard b's multicast after a.SetMulticast(false)")
	}
	if !udpExchange(t, a, b.IP()+":7000", 5*time.Second) {
		t.Fatal("unicast a -> b broken by SetMulticast(false)")
	}

	if err := a.SetMulticast(true); err != nil {
		t.Fatal(err)
	}
	sendMulticast(t, a, "m3", 5)
	if !heard(recvB, "m3", 3*time.Second) {
		t.Fatal("b did not hear a's multicast after SetMulticast(true)")
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	t.Parallel()
	var prefix string
	t.Run("network", func(t *testing.T) {
		n := New(t, "10.234.0.0/24")
		prefix = n.Prefix()
		n.AddHost("a")
		n.AddHost("b")
		if got := withPrefix(namespaces(t), prefix); len(got) != 3 {
			t.Fatalf("namespaces %v, want hub, a and b", got)
		}
		n.Close()
		if got := withPrefix(namespaces(t), prefix); len(got) != 0 {
			t.Fatalf("left after Close: %v", got)
		}
		n.Close() // idempotent; t.Cleanup calls it once more
	})
	if prefix == "" {
		t.Skip("subtest skipped")
	}
	if got := withPrefix(namespaces(t), prefix); len(got) != 0 {
		t.Fatalf("left after cleanup: %v", got)
	}
}

func TestCleanupStale(t *testing.T) {
	t.Parallel()
	live := New(t, "10.235.0.0/24")
	live.AddHost("a")
	// pid 4194305 is above the largest pid_max: never a live process.
	stale := Prefix + "4194305-1-hub"
	if err := run("ip", "netns", "add", stale); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deleteNamespace(stale) })
	CleanupStale(Prefix)
	names := namespaces(t)
	if len(withPrefix(names, stale)) != 0 {
		t.Fatalf("stale namespace %s not removed", stale)
	}
	if len(withPrefix(names, live.Prefix())) != 2 {
		t.Fatalf("CleanupStale removed a live network's namespaces: %v", withPrefix(names, Prefix))
	}
}

func TestLastAddr(t *testing.T) {
	for _, c := range []struct{ p, want string }{
		{"10.231.0.0/24", "10.231.0.255"},
		{"10.0.0.0/8", "10.255.255.255"},
		{"192.168.4.8/30", "192.168.4.11"},
	} {
		if got := lastAddr(mustPrefix(t, c.p)).String(); got != c.want {
			t.Errorf("lastAddr(%s) = %s, want %s", c.p, got, c.want)
		}
	}
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
