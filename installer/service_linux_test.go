//go:build linux

package installer_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stationsync/stationsync/installer"
	"github.com/stationsync/stationsync/internal/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// TestServiceLifecycle installs the real binary as the OS service with the
// service manager kardianos picks on this machine, and drives it through
// its CLI: install, status, start, status with the node's API answering,
// stop, uninstall (keeping config and data), install again, start, and
// uninstall --purge of the running service. Root only: it writes the init
// script or unit of the service "stationsync".
func TestServiceLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installs an OS service: needs root")
	}
	platform := installer.Platform()
	t.Logf("kardianos chose %s", platform)
	bin := harness.Binary(t)
	cli := func(args ...string) harness.CLIResult {
		t.Helper()
		return harness.RunCLI(t, args...)
	}
	must := func(args ...string) string {
		t.Helper()
		r := cli(args...)
		if r.ExitCode != 0 {
			t.Fatalf("stationsync %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.ExitCode, r.Stdout, r.Stderr)
		}
		return r.Stdout
	}
	removeLeftover(t)

	// A station of one PC: certificates in a sub-folder and a relative
	// data_dir, so install has paths to rewrite.
	work := t.TempDir()
	src := filepath.Join(work, "pc-1")
	confDir := filepath.Join(work, "etc", "stationsync")
	must("ca", "init", "--dir", filepath.Join(work, "ca"))
	must("ca", "issue", "--ca", filepath.Join(work, "ca"), "--station", "XC-SVC-01", "--node", "pc-1", "--out", filepath.Join(src, "certs"))
	ports, err := harness.FreePorts("127.0.0.1", 2)
	if err != nil {
		t.Fatal(err)
	}
	api := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	conf := fmt.Sprintf(`role: station
station_id: XC-SVC-01
node_id: pc-1
data_dir: data
listen: 127.0.0.1:%d
api: 127.0.0.1:%d
expect: 1
mdns: false
tls: {ca: certs/ca.crt, cert: certs/node.crt, key: certs/node.key}
`, ports[0], ports[1])
	if err := os.WriteFile(filepath.Join(src, "station.yaml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(src, "data")
	t.Cleanup(func() {
		if installer.QueryStatus().State != installer.NotInstalled {
			r := harness.RunCLI(t, "uninstall", "--purge", "--config-dir", confDir)
			t.Logf("cleanup: uninstall: exit %d %s%s", r.ExitCode, r.Stdout, r.Stderr)
		}
		killBinary(t, bin)
	})
	logOnFailure(t, dataDir)

	out := must("install", "--config", filepath.Join(src, "station.yaml"), "--config-dir", confDir)
	t.Logf("install:\n%s", out)
	if r := cli("install", "--config", filepath.Join(src, "station.yaml"), "--config-dir", confDir); r.ExitCode == 0 || !strings.Contains(r.Stderr, "uninstall first") {
		t.Errorf("second install: exit %d %s", r.ExitCode, r.Stderr)
	}
	installed, err := os.ReadFile(filepath.Join(confDir, "station.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cert: 'node.crt'", "data_dir: '" + dataDir + "'"} {
		if !strings.Contains(string(installed), want) {
			t.Errorf("installed config lacks %q:\n%s", want, installed)
		}
	}
	for _, f := range []string{"ca.crt", "node.crt", "node.key"} {
		if _, err := os.Stat(filepath.Join(confDir, f)); err != nil {
			t.Errorf("not copied: %v", err)
		}
	}
	if r := cli("status", "--api", api); r.ExitCode == 0 || !strings.HasPrefix(r.Stdout, "service stationsync ("+platform+"): stopped") {
		t.Errorf("status after install: exit %d\n%s%s", r.ExitCode, r.Stdout, r.Stderr)
	}

	t.Logf("start: %s", must("start"))
	node := waitRunning(t, api)
	if node["node"] != "pc-1" || node["station"] != "XC-SVC-01" {
		t.Errorf("the API of the service answers for %v/%v", node["station"], node["node"])
	}
	pid := servicePID(t, bin)
	// It runs as a service: its log is the rotating file in the data
	// folder, and the encryption key was made in the config folder.
	waitFor(t, 10*time.Second, "the service's log file", func() bool {
		b, _ := os.ReadFile(filepath.Join(dataDir, installer.LogFile))
		return strings.Contains(string(b), "stationsync service starting") && strings.Contains(string(b), "platform="+platform)
	})
	if st, err := os.Stat(filepath.Join(confDir, "data.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("data.key in the config folder: %v %v", st, err)
	}

	t.Logf("stop: %s", must("stop"))
	if alive(pid) {
		t.Errorf("process %d still runs after stop", pid)
	}
	if r := cli("status", "--api", api); r.ExitCode == 0 || !strings.HasPrefix(r.Stdout, "service stationsync ("+platform+"): stopped") {
		t.Errorf("status after stop: exit %d\n%s%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	logText, _ := os.ReadFile(filepath.Join(dataDir, installer.LogFile))
	if !strings.Contains(string(logText), `msg="stationsync node stopped"`) || !strings.Contains(string(logText), `msg="stationsync service stopped"`) {
		t.Errorf("the node did not close cleanly on stop:\n%s", logText)
	}

	t.Logf("uninstall: %s", must("uninstall", "--config-dir", confDir))
	if r := cli("status", "--api", api); !strings.HasPrefix(r.Stdout, "service stationsync ("+platform+"): not installed") {
		t.Errorf("status after uninstall:\n%s%s", r.Stdout, r.Stderr)
	}
	for _, kept := range []string{filepath.Join(confDir, "station.yaml"), filepath.Join(confDir, "data.key"), filepath.Join(dataDir, "raft")} {
		if _, err := os.Stat(kept); err != nil {
			t.Errorf("uninstall without --purge removed %s", kept)
		}
	}

	// Again, with the config kept in the config folder (as enroll --out
	// writes it): used in place. Then purge the running service: it stops
	// first, then its config and data folders go.
	out = must("install", "--config", filepath.Join(confDir, "station.yaml"), "--config-dir", confDir)
	if !strings.Contains(out, "used as it is, nothing copied") {
		t.Errorf("install of the config in the config folder:\n%s", out)
	}
	must("start")
	waitRunning(t, api)
	pid = servicePID(t, bin)
	t.Logf("uninstall --purge: %s", must("uninstall", "--purge", "--config-dir", confDir))
	if alive(pid) {
		t.Errorf("process %d still runs after uninstall", pid)
	}
	for _, gone := range []string{confDir, dataDir} {
		if _, err := os.Stat(gone); err == nil {
			t.Errorf("uninstall --purge left %s", gone)
		}
	}
	if _, err := os.Stat(filepath.Join(src, "certs", "node.key")); err != nil {
		t.Errorf("uninstall --purge removed the original certificate files: %v", err)
	}
	if st := installer.QueryStatus(); st.State != installer.NotInstalled {
		t.Errorf("after uninstall --purge: %s", st)
	}
}

// waitRunning waits until status says running and the node's API answers,
// and returns the node's /v1/status.
func waitRunning(t *testing.T, api string) map[string]any {
	t.Helper()
	var last harness.CLIResult
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		last = harness.RunCLI(t, "status", "--api", api)
		head, body, _ := strings.Cut(last.Stdout, "\n")
		if last.ExitCode == 0 && strings.HasSuffix(head, ": running") {
			var st map[string]any
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				t.Fatalf("status: %v\n%s", err, last.Stdout)
			}
			return st
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("the service did not run with its API answering within 30s: exit %d\n%s%s", last.ExitCode, last.Stdout, last.Stderr)
	return nil
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("no %s within %v", what, d)
}

// binaryPIDs are the processes running bin (the service this test
// started, found by its executable rather than by name).
func binaryPIDs(bin string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == bin {
			pids = append(pids, pid)
		}
	}
	return pids
}

func servicePID(t *testing.T, bin string) int {
	t.Helper()
	pids := binaryPIDs(bin)
	if len(pids) != 1 {
		t.Fatalf("%d processes run %s, want the service alone", len(pids), bin)
	}
	return pids[0]
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie (state Z) has exited; it only waits for its parent.
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// killBinary kills whatever still runs the test's binary.
func killBinary(t *testing.T, bin string) {
	for _, pid := range binaryPIDs(bin) {
		t.Logf("cleanup: killing leftover process %d", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// removeLeftover uninstalls a stationsync service a killed earlier run of
// this test left (its definition names a harness binary) and refuses to
// touch any other.
func removeLeftover(t *testing.T) {
	t.Helper()
	st := installer.QueryStatus()
	if st.State == installer.NotInstalled {
		return
	}
	var def []byte
	for _, f := range []string{"/etc/init.d/stationsync", "/etc/systemd/system/stationsync.service", "/etc/init.d/stationsync.sh"} {
		if b, err := os.ReadFile(f); err == nil {
			def = b
		}
	}
	if !strings.Contains(string(def), "stationsync-harness-") {
		t.Fatalf("a stationsync service is installed on this machine (%s) and it is not a test's: uninstall it before running this test", st)
	}
	r := harness.RunCLI(t, "uninstall")
	t.Logf("removed a leftover test service: exit %d %s%s", r.ExitCode, r.Stdout, r.Stderr)
	if installer.QueryStatus().State != installer.NotInstalled {
		t.Fatalf("could not remove the leftover test service")
	}
}

// logOnFailure prints the service's log when the test fails.
func logOnFailure(t *testing.T, dataDir string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, f := range []string{filepath.Join(dataDir, installer.LogFile), "/var/log/stationsync.err", "/var/log/stationsync.log"} {
			if b, err := os.ReadFile(f); err == nil {
				t.Logf("--- %s\n%s", f, b)
			}
		}
	})
}
