// Package harness runs stationsync as real processes for end-to-end tests.
//
// It builds the stationsync binary once per test process ([Binary]),
// generates a district CA and one certificate per node with the binary's
// own `ca init` and `ca issue` commands, writes one YAML config per node
// (the same keys `stationsync demo` writes: static peers, no mDNS, free
// loopback ports) and starts each node with `stationsync run --config`.
// Nodes are driven through their local HTTP API only, so what a test sees
// is what a window client, a kiosk or an admin sees.
//
// A typical test:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		st := harness.NewStation(t, "XC-E2E-01", 3)
//		st.StartAll()
//		li := st.WaitLeader(20 * time.Second)
//		if err := st.Node(li).PutItem("XC-L-0001", "企业开办"); err != nil {
//			t.Fatal(err)
//		}
//		st.Kill(li)
//		...
//	}
//
// Rules the harness keeps, so tests built on it stay reliable:
//   - every wait polls against a deadline (no blind sleeps) and every HTTP
//     call has a timeout;
//   - no node process outlives its test: t.Cleanup kills what is still
//     running, and on Linux each node also gets SIGKILL if the test process
//     itself dies (Pdeathsig);
//   - when a test fails, the tail of every node's log is printed with t.Log.
//
// Methods that take a testing.TB, and the methods of [Station], call
// t.Fatal on failure and must be called from the test's goroutine (in a
// subtest, use [Station.WithT]). The HTTP helpers on [Node] return errors
// instead, so they are safe from any goroutine.
//
// To simulate separate PCs on a LAN, put the nodes in Linux network
// namespaces (root only; see package internal/netns):
//
//	nw := netns.New(t, "10.231.0.0/24") // skips unless root (fails under CI)
//	st := harness.NewStation(t, "XC-E2E-02", 3, harness.WithNetwork(nw), harness.WithStaticPeers())
//	st.StartAll()
//	st.WaitLeader(30 * time.Second)
//	st.Host(1).Disconnect() // partition pc-2
//
// Node i then runs in host "h<i>" with QUIC on <host IP>:4610 and its API
// on 127.0.0.1:4680 inside the namespace; the Node helpers reach that API
// through a dialer that enters the namespace ([WithNetwork]).
//
// The harness is meant to grow with the project: later tests put nodes in
// network namespaces, add a district center, or cut links. Keep its pieces
// general (a station is N nodes with configs the test may edit with
// [WithConfig] or [Station.WriteConfig]) rather than shaped to one test.
package harness
