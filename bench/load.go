package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is one workload at one concurrency.
type loadResult struct {
	Name        string
	Clients     int
	Via         string        // 1-client rows: "leader" or "follower", the role of the node the client writes to ("": clients spread over the nodes)
	Duration    time.Duration // measured window (after warm-up)
	OK          int           // successful ops in the window
	Errors      int           // failed ops in the window
	Pending     int           // stationsync only: 202 "pending" answers (not counted as OK)
	P50, P99    time.Duration
	Max         time.Duration
	PeakRSS     int64  // bytes, max over the server processes during the run (0: not sampled)
	FirstErr    string // the first error seen, for the report
	SampleCount int
	// AllOK counts the ops answered OK from the first to the last (warmup
	// and the drain after the window included), Entries the raft entries
	// appended meanwhile (0: not known): their ratio is how many writes
	// group commit put in one entry. The untimed prepare steps (a new case
	// every 16 events) take entries too, so one client shows 16/17.
	AllOK   int
	Entries uint64
}

func (r loadResult) OpsPerSec() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.OK) / r.Duration.Seconds()
}

// opFunc performs one op for client w. It returns pending=true for a write
// the server accepted but did not commit (stationsync 202).
type opFunc func(ctx context.Context, w int) (pending bool, err error)

// prepareFunc runs before each op of client w, untimed (nil: none).
type prepareFunc func(ctx context.Context, w int) error

// runLoad runs clients goroutines calling op back to back for warmup, then
// measures for dur.
func runLoad(name string, clients int, warmup, dur time.Duration, prepare prepareFunc, op opFunc) loadResult {
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		mu        sync.Mutex
		lat       []time.Duration
		okN, errN int
		allN      int
		pendN     int
		firstErr  string
		wg        sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			var lok, lerr, lpend, lall int
			var lfirst string
			for !stop.Load() {
				m := measuring.Load()
				var err error
				var pending bool
				if prepare != nil {
					err = prepare(ctx, w)
				}
				t0 := time.Now()
				if err == nil {
					pending, err = op(ctx, w)
				}
				d := time.Since(t0)
				if err == nil && !pending {
					lall++
				}
				if err != nil && !stop.Load() {
					time.Sleep(10 * time.Millisecond) // no busy loop against a failing server
				}
				if stop.Load() && errors.Is(err, context.Canceled) {
					break
				}
				if !m || !measuring.Load() {
					continue
				}
				switch {
				case err != nil:
					lerr++
					if lfirst == "" {
						lfirst = err.Error()
					}
				case pending:
					lpend++
				default:
					lok++
					local = append(local, d)
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			okN += lok
			allN += lall
			errN += lerr
			pendN += lpend
			if firstErr == "" {
				firstErr = lfirst
			}
			mu.Unlock()
		}(w)
	}
	time.Sleep(warmup)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(dur)
	measuring.Store(false)
	elapsed := time.Since(start)
	stop.Store(true)
	// Let in-flight ops finish (they are not counted); cancel stragglers.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cancel()
		<-done
	}
	slices.Sort(lat)
	r := loadResult{Name: name, Clients: clients, Duration: elapsed, OK: okN, Errors: errN, Pending: pendN, FirstErr: firstErr, SampleCount: len(lat), AllOK: allN}
	if len(lat) > 0 {
		r.P50 = pct(lat, 0.50)
		r.P99 = pct(lat, 0.99)
		r.Max = lat[len(lat)-1]
	}
	return r
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func (r loadResult) String() string {
	s := fmt.Sprintf("%-22s c=%-3d ok=%-7d err=%-4d pending=%-4d p50=%-9s p99=%-9s max=%-9s %8.0f ops/s",
		r.Name, r.Clients, r.OK, r.Errors, r.Pending, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond), r.OpsPerSec())
	if r.Via != "" {
		s += " via " + r.Via
	}
	if r.Entries > 0 {
		s += " ops/entry=" + perEntry(r)
	}
	if r.PeakRSS > 0 {
		s += fmt.Sprintf(" peakRSS=%.1fMiB", float64(r.PeakRSS)/(1<<20))
	}
	if r.FirstErr != "" {
		s += " first error: " + r.FirstErr
	}
	return s
}

// writeRun is one write row: its concurrency and the node its first
// client writes to.
type writeRun struct {
	clients, first int
	via            string
}

// writeRuns lays out the write rows: one client writes once through the
// leader and once through a follower (a clerk's PC is either, and the two
// differ by the forwarding hop and the follower's wait to apply the
// write; writing through node 0 alone measured whichever role it had won),
// more clients spread over all nodes.
func writeRuns(clients []int, nodes int, leader func() (int, error)) ([]writeRun, error) {
	rows := writeRows(clients)
	for i := range rows {
		if rows[i].via == "" {
			continue
		}
		li, err := leader()
		if err != nil {
			return nil, err
		}
		rows[i].first = li
		if rows[i].via == "follower" {
			rows[i].first = (li + 1) % nodes
		}
	}
	return rows, nil
}

// writeRows are the write rows, in order, without their first node.
func writeRows(clients []int) []writeRun {
	var out []writeRun
	for _, c := range clients {
		if c == 1 {
			out = append(out, writeRun{clients: 1, via: "leader"}, writeRun{clients: 1, via: "follower"})
		} else {
			out = append(out, writeRun{clients: c})
		}
	}
	return out
}

// perEntry is r's writes per raft entry for the report ("-": not known).
func perEntry(r loadResult) string {
	if r.Entries == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(r.AllOK)/float64(r.Entries))
}

// entriesBetween is the number of raft entries from last index first to
// last index last (0, unknown, when either is unknown or the log went
// back, as after a restore).
func entriesBetween(first, last uint64) uint64 {
	if first == 0 || last <= first {
		return 0
	}
	return last - first
}
