package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// etcdMember runs one member of a 3-member etcd cluster in this process
// (the bench binary re-executed with -etcd-member): embed.Etcd with
// defaults (fsync on), plain HTTP on loopback. It returns when signalled.
func etcdMember(name, dir, peerURL, clientURL, cluster string) error {
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dir
	pu, err := url.Parse(peerURL)
	if err != nil {
		return err
	}
	cu, err := url.Parse(clientURL)
	if err != nil {
		return err
	}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.InitialCluster = cluster
	cfg.InitialClusterToken = "bench"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return errors.New("etcd member not ready within 60 s")
	case s := <-sig:
		e.Close()
		return fmt.Errorf("signalled: %v", s)
	}
	select {
	case err := <-e.Err():
		e.Close()
		return err
	case <-sig:
		e.Close()
		return nil
	}
}

type etcdCluster struct {
	cmds      []*exec.Cmd
	done      []chan struct{}
	endpoints []string
	clients   []*clientv3.Client
}

func startEtcd(root string) (*etcdCluster, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	const n = 3
	var peers, clients, parts []string
	for i := range n {
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		cp, err := freePort()
		if err != nil {
			return nil, err
		}
		peers = append(peers, fmt.Sprintf("http://127.0.0.1:%d", pp))
		clients = append(clients, fmt.Sprintf("http://127.0.0.1:%d", cp))
		parts = append(parts, fmt.Sprintf("e%d=%s", i+1, peers[i]))
	}
	cluster := strings.Join(parts, ",")
	c := &etcdCluster{endpoints: clients}
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("e%d", i+1))
		logf, err := os.Create(dir + ".log")
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(self, "-etcd-member", fmt.Sprintf("e%d", i+1), "-etcd-dir", dir, "-etcd-peer", peers[i], "-etcd-client", clients[i], "-etcd-cluster", cluster)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			logf.Close()
			c.Close()
			return nil, err
		}
		logf.Close()
		d := make(chan struct{})
		go func() { cmd.Wait(); close(d) }()
		c.cmds = append(c.cmds, cmd)
		c.done = append(c.done, d)
	}
	for i := range n {
		cl, err := clientv3.New(clientv3.Config{Endpoints: []string{clients[i]}, DialTimeout: 5 * time.Second})
		if err != nil {
			c.Close()
			return nil, err
		}
		c.clients = append(c.clients, cl)
	}
	// Ready: a put through every endpoint succeeds.
	deadline := time.Now().Add(60 * time.Second)
	for i, cl := range c.clients {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := cl.Put(ctx, "bench/ready", "1")
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				return nil, fmt.Errorf("etcd endpoint %s not ready: %v (logs in %s)", clients[i], err, root)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return c, nil
}

func (c *etcdCluster) pids() []int {
	var out []int
	for _, cmd := range c.cmds {
		out = append(out, cmd.Process.Pid)
	}
	return out
}

func (c *etcdCluster) Close() {
	for _, cl := range c.clients {
		cl.Close()
	}
	for i, cmd := range c.cmds {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done[i]:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-c.done[i]
		}
	}
}

// workload: client w puts 1 KiB values through endpoint (first+w)%3 (a
// follower forwards the proposal to the leader, as a station follower does).
func (c *etcdCluster) workload(clients, first int) opFunc {
	val := payload[:1024]
	seq := make([]int, clients)
	return func(ctx context.Context, w int) (bool, error) {
		seq[w]++
		key := fmt.Sprintf("bench/%d/%d", w, seq[w]%1000)
		_, err := c.clients[(first+w)%len(c.clients)].Put(ctx, key, val)
		return false, err
	}
}

// leaderIndex returns the index of the endpoint whose member leads, as
// the members' status answers say (up to 30 s).
func (c *etcdCluster) leaderIndex() (int, error) {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		for i, cl := range c.clients {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := cl.Status(ctx, c.endpoints[i])
			cancel()
			if err != nil {
				last = err
				continue
			}
			if st.Leader != 0 && st.Leader == st.Header.MemberId {
				return i, nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return -1, fmt.Errorf("no etcd leader within 30 s (last error: %v)", last)
}
