package main

// etcd side of the footprint section: bulk load, stop and restart of the
// members on their data, cold start, failover, and a binary to weigh.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/stationsync/stationsync/records"
)

const (
	fpEtcdTxnOps  = 128 // etcd's default --max-txn-ops
	fpEtcdLoaders = 8
)

// fpLoadEtcd puts res.Events keys: values are stored events (the JSON of
// records.Event with fpDataBytes of random data), keys
// cases/<case id>/<event id>, as many per case as the station has.
func fpLoadEtcd(c *etcdCluster, res *footprintResult) error {
	var next, done atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range fpEtcdLoaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w)+100, uint64(time.Now().UnixNano())))
			clock := records.NewClock(nil)
			cl := c.clients[w%len(c.clients)]
			for {
				first := int(next.Add(fpEtcdTxnOps)) - fpEtcdTxnOps
				if first >= res.Events {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				var ops []clientv3.Op
				for k := first; k < min(first+fpEtcdTxnOps, res.Events); k++ {
					caseID := fmt.Sprintf("fp-%07d", k/eventsPerCase)
					ev := fpEvent(fpEventType(k%eventsPerCase), caseID, "pc-1", clock, rnd)
					b, _ := json.Marshal(ev)
					ops = append(ops, clientv3.OpPut("cases/"+caseID+"/"+ev.ID, string(b)))
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_, err := cl.Txn(ctx).Then(ops...).Commit()
				cancel()
				if err != nil {
					once.Do(func() { firstErr = err; close(stop) })
					return
				}
				done.Add(int64(len(ops)))
			}
		}()
	}
	wg.Wait()
	res.Etcd.Keys = int(done.Load())
	return firstErr
}

func fpArgAfter(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// fpStop signals member i and waits for it to exit (SIGKILL after 15 s).
func (c *etcdCluster) fpStop(i int, sig syscall.Signal) {
	c.cmds[i].Process.Signal(sig)
	select {
	case <-c.done[i]:
	case <-time.After(15 * time.Second):
		c.cmds[i].Process.Kill()
		<-c.done[i]
	}
}

// fpStopAll stops every member gracefully (SIGTERM), closing the clients.
func (c *etcdCluster) fpStopAll() {
	for _, cl := range c.clients {
		cl.Close()
	}
	c.clients = nil
	var wg sync.WaitGroup
	for i := range c.cmds {
		wg.Add(1)
		go func() { defer wg.Done(); c.fpStop(i, syscall.SIGTERM) }()
	}
	wg.Wait()
}

// fpRestart starts member i again on its data folder, with the
// arguments of its first start, and returns when the process started.
func (c *etcdCluster) fpRestart(i int) (time.Time, error) {
	old := c.cmds[i]
	dir := fpArgAfter(old.Args, "-etcd-dir")
	logf, err := os.OpenFile(dir+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return time.Time{}, err
	}
	defer logf.Close()
	cmd := exec.Command(old.Path, old.Args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t := time.Now()
	if err := cmd.Start(); err != nil {
		return t, err
	}
	d := make(chan struct{})
	go func() { cmd.Wait(); close(d) }()
	c.cmds[i], c.done[i] = cmd, d
	return t, nil
}

func (c *etcdCluster) fpRunning(i int) bool {
	select {
	case <-c.done[i]:
		return false
	default:
		return true
	}
}

// fpEtcdTry runs fn with a new client of endpoint ep (a new client each
// time: a client that failed to connect backs off for a second or more
// before trying again, which would blur a cold start).
func fpEtcdTry(ep string, timeout time.Duration, fn func(ctx context.Context, cl *clientv3.Client) error) error {
	cl, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: timeout, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return fn(ctx, cl)
}

// fpWait polls member i until fn succeeds; it returns the time from
// start.
func (c *etcdCluster) fpWait(i int, start time.Time, timeout time.Duration, fn func(ctx context.Context, cl *clientv3.Client) error) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if !c.fpRunning(i) {
			return 0, fmt.Errorf("e%d exited (log %s.log)", i+1, fpArgAfter(c.cmds[i].Args, "-etcd-dir"))
		}
		if err = fpEtcdTry(c.endpoints[i], time.Second, fn); err == nil {
			return time.Since(start), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("e%d: %v within %v", i+1, err, timeout)
}

func fpEtcdStatus(ep string) func(ctx context.Context, cl *clientv3.Client) error {
	return func(ctx context.Context, cl *clientv3.Client) error { _, err := cl.Status(ctx, ep); return err }
}

func fpEtcdGetSerializable(ctx context.Context, cl *clientv3.Client) error {
	_, err := cl.Get(ctx, "bench/ready", clientv3.WithSerializable())
	return err
}

func fpEtcdGet(ctx context.Context, cl *clientv3.Client) error {
	_, err := cl.Get(ctx, "bench/ready")
	return err
}

// fpColdEtcd starts the three stopped members together and measures, per
// member, start until Status answers, until a serializable Get answers,
// then until a linearizable Get does (a leader and the read index).
func fpColdEtcd(c *etcdCluster, res *footprintResult) error {
	res.Etcd.Procs = make([]fpProc, len(c.cmds))
	starts := make([]time.Time, len(c.cmds))
	for i := range c.cmds {
		t, err := c.fpRestart(i)
		if err != nil {
			return err
		}
		starts[i] = t
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.cmds))
	for i := range c.cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &res.Etcd.Procs[i]
			p.Name = fmt.Sprintf("etcd e%d", i+1)
			var err error
			if p.ColdAPI, err = c.fpWait(i, starts[i], 5*time.Minute, fpEtcdStatus(c.endpoints[i])); err != nil {
				errs[i] = err
				return
			}
			if p.ColdRead, err = c.fpWait(i, starts[i], 5*time.Minute, fpEtcdGetSerializable); err != nil {
				errs[i] = err
				return
			}
			if p.ColdQuorum, err = c.fpWait(i, starts[i], 5*time.Minute, fpEtcdGet); err != nil {
				errs[i] = err
				return
			}
			p.StartRSS, _ = rssBytes(c.cmds[i].Process.Pid)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.fpReconnect()
}

// fpReconnect replaces the clients with new ones (one endpoint each).
func (c *etcdCluster) fpReconnect() error {
	for _, cl := range c.clients {
		cl.Close()
	}
	c.clients = nil
	for _, ep := range c.endpoints {
		cl, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return err
		}
		c.clients = append(c.clients, cl)
	}
	return nil
}

// leader returns the index of the member every member names as leader.
func (c *etcdCluster) fpLeader(timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ids := map[uint64]int{}
		var leader uint64
		ok := true
		for i, cl := range c.clients {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cl.Status(ctx, c.endpoints[i])
			cancel()
			if err != nil || st.Leader == 0 || (leader != 0 && st.Leader != leader) {
				ok, last = false, fmt.Errorf("e%d: leader %v, %v", i+1, st, err)
				break
			}
			leader = st.Leader
			ids[st.Header.MemberId] = i
		}
		if i, found := ids[leader]; ok && found {
			return i, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return -1, fmt.Errorf("no agreed etcd leader within %v: %v", timeout, last)
}

// failover kills the leader with SIGKILL and measures until a Put through
// a surviving member succeeds: puts are launched every 20 ms, alternating
// survivors, each on its own, as the station's failover does with case
// writes. The killed member is restarted and caught up before it returns.
func (c *etcdCluster) fpFailover() (took time.Duration, errs int, killed string, err error) {
	li, err := c.fpLeader(30 * time.Second)
	if err != nil {
		return 0, 0, "", err
	}
	killed = fmt.Sprintf("e%d", li+1)
	var survivors []*clientv3.Client
	for i, cl := range c.clients {
		if i != li {
			survivors = append(survivors, cl)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := cl.Get(ctx, "bench/ready") // warm the connection
			cancel()
			if err != nil {
				return 0, 0, killed, fmt.Errorf("before the kill: %w", err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	success := make(chan time.Duration, 1)
	var wg sync.WaitGroup
	c.cmds[li].Process.Signal(syscall.SIGKILL)
	t0 := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(30 * time.Second)
	for k := 0; took == 0; k++ {
		cl := survivors[k%len(survivors)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			defer pcancel()
			_, err := cl.Put(pctx, fmt.Sprintf("bench/failover/%d", k), "1")
			if err != nil {
				if ctx.Err() == nil {
					mu.Lock()
					errs++
					mu.Unlock()
				}
				return
			}
			select {
			case success <- time.Since(t0):
			default:
			}
		}()
		select {
		case took = <-success:
		case <-timeout:
			cancel()
			wg.Wait()
			return 0, errs, killed, errors.New("no put succeeded within 30 s of killing the leader")
		case <-tick.C:
		}
	}
	cancel()
	wg.Wait()
	<-c.done[li]
	// Restart the killed member and wait until it serves a linearizable
	// read (it rejoined and caught up).
	start, err := c.fpRestart(li)
	if err != nil {
		return took, errs, killed, err
	}
	if _, err := c.fpWait(li, start, 5*time.Minute, fpEtcdGet); err != nil {
		return took, errs, killed, fmt.Errorf("restart %s: %w", killed, err)
	}
	c.clients[li].Close()
	cl, err := clientv3.New(clientv3.Config{Endpoints: []string{c.endpoints[li]}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return took, errs, killed, err
	}
	c.clients[li] = cl
	return took, errs, killed, nil
}

// fpBuildEtcd builds a program that only runs embed.StartEtcd, with the
// flags the station's binary is built with, and returns its size. It uses
// this module's requirements (same etcd version), offline.
func fpBuildEtcd(dir string) (int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		return 0, err
	}
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		return 0, err
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		return 0, err
	}
	m := strings.Replace(string(mod), "module github.com/stationsync/stationsync/bench", "module etcdsize", 1)
	m = strings.Replace(m, "=> ../", "=> "+repo, 1)
	const main = `package main

import (
	"flag"
	"log"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	dir := flag.String("data-dir", "default.etcd", "")
	flag.Parse()
	cfg := embed.NewConfig()
	cfg.Dir = *dir
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		log.Fatal(err)
	}
	<-e.Server.ReadyNotify()
	log.Fatal(<-e.Err())
}
`
	for name, content := range map[string]string{"go.mod": m, "go.sum": string(sum), "main.go": main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return 0, err
		}
	}
	out := filepath.Join(dir, "etcd-embed")
	cmd := exec.Command("go", "build", "-mod=mod", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("go build: %v\n%s", err, buf.String())
	}
	fi, err := os.Stat(out)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
