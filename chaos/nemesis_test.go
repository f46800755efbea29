//go:build linux

package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stationsync/stationsync/internal/netns"
)

// A fault is applied, held for a few seconds while the clerks keep
// writing, then healed; a short calm follows. One fault at a time keeps
// every fault's effect visible in the logs; the station still sees them
// overlap with its own recovery (elections, outbox delivery, catch-up).
type fault struct {
	name  string
	apply func(e *env) (heal func(), what string)
}

var faults = []fault{
	{"partition-halves", (*env).partitionHalves},
	{"partition-leader", (*env).partitionLeader},
	{"partition-bridge", (*env).partitionBridge},
	{"kill", (*env).killNode},
	{"pause", (*env).pauseNode},
	{"restart-center", (*env).restartCenter},
	{"cut-center", (*env).cutCenter},
	{"clock-skew", (*env).skewClock},
	{"disk-full", (*env).fillDisk},
}

// nemesis injects random faults for d. It runs on the test's goroutine
// (the harness's process control may fail the test).
func (e *env) nemesis(d time.Duration) {
	end := time.Now().Add(d)
	// Rounds of every kind in a random order: even a short run injects
	// each kind once.
	var round []int
	for time.Now().Before(end) {
		if len(round) == 0 {
			round = e.rng.Perm(len(faults))
		}
		f := faults[round[0]]
		round = round[1:]
		heal, what := f.apply(e)
		e.faults[f.name]++
		hold := 2*time.Second + time.Duration(e.rng.IntN(6000))*time.Millisecond
		e.t.Logf("nemesis %s: %s for %v", time.Now().Format("15:04:05.000"), what, hold)
		time.Sleep(hold)
		heal()
		time.Sleep(time.Second + time.Duration(e.rng.IntN(2000))*time.Millisecond)
	}
}

// healAll undoes whatever may still be in effect (a fault is healed after
// its hold, so normally nothing is; this is also the failure path's
// safety net).
func (e *env) healAll() {
	if err := e.nw.Heal(); err != nil {
		e.t.Fatal(err)
	}
	for i := range e.paused {
		e.cont(i)
	}
	for i := range e.killed {
		e.st.Start(i)
		delete(e.killed, i)
	}
	for i := range e.skewed {
		e.setSkew(i, 0)
	}
	if e.filled {
		e.freeDisk()
	}
	if !e.center.Node(0).Running() {
		e.center.Start(0)
	}
}

func (e *env) heal() {
	if err := e.nw.Heal(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) shuffledHosts() []int {
	return e.rng.Perm(nodes)
}

func (e *env) hostsOf(idx []int) []*netns.Host {
	var hs []*netns.Host
	for _, i := range idx {
		hs = append(hs, e.hosts[i])
	}
	return hs
}

func names(idx []int) []string {
	var s []string
	for _, i := range idx {
		s = append(s, fmt.Sprintf("pc-%d", i+1))
	}
	return s
}

// partitionHalves splits the station into a majority of 3 and a minority
// of 2, chosen at random.
func (e *env) partitionHalves() (func(), string) {
	p := e.shuffledHosts()
	a, b := p[:2], p[2:]
	if err := e.nw.Partition(e.hostsOf(a), e.hostsOf(b)); err != nil {
		e.t.Fatal(err)
	}
	return e.heal, fmt.Sprintf("partition %v | %v", names(a), names(b))
}

// partitionLeader isolates the current leader (as a running node sees
// it; a random PC when there is none) from the rest of the station.
func (e *env) partitionLeader() (func(), string) {
	li := -1
	for _, i := range e.st.Running() {
		if e.paused[i] {
			continue
		}
		s, err := e.st.Node(i).Status()
		if err != nil {
			continue
		}
		for j, n := range e.st.Nodes() {
			if n.ID == s.Raft.Leader {
				li = j
			}
		}
		if li >= 0 {
			break
		}
	}
	if li < 0 {
		li = e.rng.IntN(nodes)
	}
	var rest []int
	for i := range nodes {
		if i != li {
			rest = append(rest, i)
		}
	}
	if err := e.nw.Partition(e.hostsOf([]int{li}), e.hostsOf(rest)); err != nil {
		e.t.Fatal(err)
	}
	return e.heal, fmt.Sprintf("isolate the leader pc-%d", li+1)
}

// partitionBridge splits the station in two pairs that only one bridge
// PC reaches both of: neither pair has a majority without it.
func (e *env) partitionBridge() (func(), string) {
	p := e.shuffledHosts()
	bridge, a, b := p[0], p[1:3], p[3:]
	ga := append([]int{bridge}, a...)
	gb := append([]int{bridge}, b...)
	if err := e.nw.Partition(e.hostsOf(ga), e.hostsOf(gb)); err != nil {
		e.t.Fatal(err)
	}
	return e.heal, fmt.Sprintf("bridge pc-%d between %v and %v", bridge+1, names(a), names(b))
}

// killNode SIGKILLs a random PC and starts it again after the hold.
func (e *env) killNode() (func(), string) {
	i := e.rng.IntN(nodes)
	if e.paused[i] {
		e.cont(i)
	}
	e.st.Kill(i)
	e.killed[i] = true
	return func() {
		e.st.Start(i)
		delete(e.killed, i)
	}, fmt.Sprintf("SIGKILL pc-%d", i+1)
}

// pauseNode SIGSTOPs a random PC (a frozen PC, or one swapping hard) and
// SIGCONTs it after the hold.
func (e *env) pauseNode() (func(), string) {
	i := e.rng.IntN(nodes)
	pid := e.st.Node(i).PID()
	if pid <= 0 {
		return func() {}, fmt.Sprintf("pause pc-%d: not running", i+1)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		e.t.Fatalf("SIGSTOP pc-%d: %v", i+1, err)
	}
	e.paused[i] = true
	return func() { e.cont(i) }, fmt.Sprintf("SIGSTOP pc-%d", i+1)
}

func (e *env) cont(i int) {
	if pid := e.st.Node(i).PID(); pid > 0 {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			e.t.Fatalf("SIGCONT pc-%d: %v", i+1, err)
		}
	}
	delete(e.paused, i)
}

// restartCenter SIGKILLs the center and starts it after the hold.
func (e *env) restartCenter() (func(), string) {
	e.center.Kill(0)
	return func() { e.center.Start(0) }, "SIGKILL the center"
}

// cutCenter cuts the station's LAN from the center (the WAN link).
func (e *env) cutCenter() (func(), string) {
	if err := e.nw.Partition([]*netns.Host{e.chost}, e.hosts); err != nil {
		e.t.Fatal(err)
	}
	return e.heal, "cut the station from the center"
}

// skewClock sets a random PC's clock 30 s to 10 min off, either way.
func (e *env) skewClock() (func(), string) {
	i := e.rng.IntN(nodes)
	d := time.Duration(30+e.rng.IntN(570)) * time.Second
	if e.rng.IntN(2) == 0 {
		d = -d
	}
	e.setSkew(i, d)
	return func() { e.setSkew(i, 0) }, fmt.Sprintf("skew pc-%d's clock by %v", i+1, d)
}

func (e *env) setSkew(i int, d time.Duration) {
	// Written whole and renamed into place: the node never reads half.
	path := skewFile(e.st.Node(i))
	if err := os.WriteFile(path+".tmp", []byte(d.String()), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		e.t.Fatal(err)
	}
	if d == 0 {
		delete(e.skewed, i)
	} else {
		e.skewed[i] = true
	}
}

// mountDisk mounts a tmpfs of size bytes on a new folder and unmounts it
// when the test ends.
func mountDisk(t *testing.T, size int) string {
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs for pc-%d's data: %v: %s", diskNode+1, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// diskFree is the space left on the data disk.
func (e *env) diskFree() uint64 {
	var s unix.Statfs_t
	if err := unix.Statfs(e.disk, &s); err != nil {
		e.t.Fatal(err)
	}
	return s.Bavail * uint64(s.Bsize)
}

// fillDisk fills the data disk of diskNode up to 40 MiB free, below the
// node's disk reserve (64 MiB by default): the node must stop taking
// writes (507) without corrupting anything, and take them again once the
// filler is deleted.
func (e *env) fillDisk() (func(), string) {
	free := e.diskFree()
	const leave = 40 << 20
	if free <= leave {
		e.t.Fatalf("pc-%d's data disk has only %d MiB free before the nemesis fills it: make diskSize larger", diskNode+1, free>>20)
	}
	f, err := os.Create(e.filler())
	if err != nil {
		e.t.Fatal(err)
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, int64(free-leave))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		e.t.Fatalf("fill pc-%d's data disk: %v", diskNode+1, err)
	}
	e.filled = true
	return e.freeDisk, fmt.Sprintf("fill pc-%d's data disk (%d MiB free of %d MiB)", diskNode+1, e.diskFree()>>20, diskSize>>20)
}

func (e *env) filler() string { return filepath.Join(e.disk, "filler") }

func (e *env) freeDisk() {
	if err := os.Remove(e.filler()); err != nil {
		e.t.Fatal(err)
	}
	e.filled = false
}
