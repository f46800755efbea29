package main

// Optional part of the footprint section (BENCH_FOOTPRINT_PROFILE=DIR):
// the daemon has no pprof endpoint, so the loaded station is opened again
// in this process, each node's goroutines labelled node=<id> (goroutines
// inherit the labels of the one that started them), and the idle process
// is profiled (CPU, then an execution trace, then the heap). `go tool
// pprof -tagfocus node=pc-1 DIR/idle-cpu.pprof` shows one node. The
// nodes share one Go runtime here, so the process costs less than three
// processes do (the runtime's own wakeups are paid once).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"
)

func fpProfileIdle(s *station, dir string, idle time.Duration) error {
	settle, window := 30*time.Second, min(idle, 3*time.Minute)
	if idle < 30*time.Second {
		settle = time.Second
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	wrap := func(i int, open func()) {
		pprof.Do(context.Background(), pprof.Labels("node", s.nodes[i].id), func(context.Context) { open() })
	}
	ds, closeAll, li, err := fpOpenStation(s, 0, wrap)
	if err != nil {
		return err
	}
	defer closeAll()
	fmt.Printf("bench: footprint: profiling the idle station in-process (leader %s): %v to settle, then %v\n", s.nodes[li].id, settle, window)
	time.Sleep(settle)
	f, err := os.Create(filepath.Join(dir, "idle-cpu.pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	self := os.Getpid()
	t0, _ := cpuTicks(self)
	start := time.Now()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	time.Sleep(window)
	pprof.StopCPUProfile()
	t1, _ := cpuTicks(self)
	el := time.Since(start)
	// An execution trace: `go tool trace -pprof=sync idle-trace.out`
	// counts the times goroutines blocked, by stack, i.e. what wakes the
	// idle process (tickers, packets).
	if tf, err := os.Create(filepath.Join(dir, "idle-trace.out")); err == nil {
		if trace.Start(tf) == nil {
			time.Sleep(min(window, 20*time.Second))
			trace.Stop()
		}
		tf.Close()
	}
	runtime.GC()
	if h, err := os.Create(filepath.Join(dir, "idle-heap.pprof")); err == nil {
		pprof.WriteHeapProfile(h)
		h.Close()
	}
	leader := "?"
	for i, d := range ds {
		if d.node.IsLeader() {
			leader = s.nodes[i].id
		}
	}
	rss, _ := rssBytes(self)
	note := fmt.Sprintf("3 nodes in one process, leader %s at the end; %v window after %v to settle: process CPU %.2f %% of one core (all three nodes), RSS %s\n",
		leader, window, settle, float64(t1-t0)/userHZ/el.Seconds()*100, mib(rss))
	fmt.Print("bench: footprint: profile: ", note)
	return os.WriteFile(filepath.Join(dir, "README.txt"), []byte(note), 0o644)
}
