package daemon

import (
	"testing"
	"time"
)

func TestIdleStateEntersAndLeaves(t *testing.T) {
	var s idleState
	t0 := time.Unix(1_000_000, 0)
	steps := []struct {
		at           time.Duration
		applied      uint64
		enter, leave bool
	}{
		{0, 5, false, false},
		{time.Minute, 5, false, false},
		{idleTrimAfter - time.Second, 5, false, false},
		{idleTrimAfter, 5, true, false}, // idle: once
		{idleTrimAfter + time.Second, 5, false, false},
		{idleTrimAfter + 2*time.Second, 6, false, true}, // an entry applied: busy
		{idleTrimAfter + 3*time.Second, 6, false, false},
		{2*idleTrimAfter + time.Second, 6, false, false},
		{2*idleTrimAfter + 2*time.Second, 6, true, false}, // idle again
	}
	for i, st := range steps {
		enter, leave := s.observe(st.applied, t0.Add(st.at))
		if enter != st.enter || leave != st.leave {
			t.Errorf("step %d (%v, applied %d): enter, leave = %v, %v; want %v, %v", i, st.at, st.applied, enter, leave, st.enter, st.leave)
		}
	}
}

// Several nodes in one process (the demo): one core only while all of
// them are idle; back to the default when one is busy or stops.
func TestIdleProcsOnlyWhenAllIdle(t *testing.T) {
	var calls []string
	p := &idleProcs{
		set:     func(n int) { calls = append(calls, "one") },
		restore: func() { calls = append(calls, "default") },
	}
	want := func(step string, w ...string) {
		t.Helper()
		if len(calls) != len(w) {
			t.Fatalf("after %s: calls %v, want %v", step, calls, w)
		}
		for i := range w {
			if calls[i] != w[i] {
				t.Fatalf("after %s: calls %v, want %v", step, calls, w)
			}
		}
	}
	p.start()
	p.start()
	p.idle()
	want("one of two idle")
	p.idle()
	want("both idle", "one")
	p.busy()
	want("one busy again", "one", "default")
	p.idle()
	want("both idle again", "one", "default", "one")
	p.start()
	want("a third node starts", "one", "default", "one", "default")
	p.stop(false)
	want("it stops", "one", "default", "one", "default", "one")
	p.stop(true)
	p.stop(true)
	want("all stop", "one", "default", "one", "default", "one", "default")

	fixed := &idleProcs{fixed: true, set: func(int) { t.Fatal("GOMAXPROCS from the environment changed") }}
	fixed.start()
	fixed.idle()
}

// While every node is idle the collector runs at idleGCPercent, and the
// GOGC from before comes back when one is busy again; a GOGC from the
// environment is left alone.
func TestIdleProcsLowerTheHeapGoal(t *testing.T) {
	gogc := 100
	p := &idleProcs{
		set: func(int) {}, restore: func() {},
		gc: func(n int) int { prev := gogc; gogc = n; return prev },
	}
	p.start()
	p.start()
	p.idle()
	if gogc != 100 {
		t.Fatalf("one of two idle: GOGC %d, want 100", gogc)
	}
	p.idle()
	if gogc != idleGCPercent {
		t.Fatalf("both idle: GOGC %d, want %d", gogc, idleGCPercent)
	}
	p.busy()
	if gogc != 100 {
		t.Fatalf("one busy again: GOGC %d, want 100", gogc)
	}
	p.idle()
	p.stop(true)
	p.stop(true)
	if gogc != 100 {
		t.Fatalf("all stopped: GOGC %d, want 100", gogc)
	}

	fixed := &idleProcs{gcFixed: true, set: func(int) {}, restore: func() {}, gc: func(int) int { t.Fatal("GOGC from the environment changed"); return 0 }}
	fixed.start()
	fixed.idle()
	fixed.stop(true)
}
