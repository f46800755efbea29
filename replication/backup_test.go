package replication

import (
	"bytes"
	crand "crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/replication/transport"
)

// A follower backed up online, wiped and restored from the backup rejoins
// and catches up with what was written after the backup.
func TestBackupRestoreRejoins(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	putItem(t, c.nodes[leader].n, "XC-L-0001")
	for i := range 20 {
		if err := createCase(c.nodes[leader].n, ctx(t), fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	f := c.follower(leader)
	eventually(t, "the follower has every case", func() bool { return caseCount(t, c.nodes[f].n) == 20 })
	var buf bytes.Buffer
	h, err := c.nodes[f].n.Backup(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if h.Index == 0 || h.ClusterID == "" || len(h.Configuration.Servers) != 3 {
		t.Fatalf("backup header %+v", h)
	}
	if bytes.Contains(buf.Bytes(), []byte("320507199001011234")) {
		t.Fatal("the backup holds an ID number in the clear")
	}
	backup := buf.Bytes()

	c.stop(f)
	for i := range 5 {
		if err := createCase(c.nodes[leader].n, ctx(t), fmt.Sprintf("after-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := c.config(f, testLogger(t))
	if _, err := Restore(cfg, bytes.NewReader(backup)); err == nil || !strings.Contains(err.Error(), "already holds a store") {
		t.Fatalf("restore over a store: %v", err)
	}
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	wrong := cfg
	wrong.EncryptionKey = make([]byte, 32)
	crand.Read(wrong.EncryptionKey)
	if _, err := Restore(wrong, bytes.NewReader(backup)); err == nil {
		t.Fatal("restored with another key")
	}
	other := cfg
	other.Station = "XC-IP-99"
	if _, err := Restore(other, bytes.NewReader(backup)); err == nil || !strings.Contains(err.Error(), "station") {
		t.Fatalf("restore onto another station: %v", err)
	}
	os.RemoveAll(cfg.DataDir)
	if _, err := Restore(cfg, bytes.NewReader(backup[:len(backup)-100])); err == nil {
		t.Fatal("restored a truncated backup")
	}
	os.RemoveAll(cfg.DataDir)
	if _, err := Restore(cfg, bytes.NewReader(backup)); err != nil {
		t.Fatal(err)
	}
	c.start(f)
	eventually(t, "the restored follower caught up", func() bool { return caseCount(t, c.nodes[f].n) == 25 })
	if got, want := c.nodes[f].n.Status().ClusterID, c.nodes[leader].n.Status().ClusterID; got != want {
		t.Fatalf("cluster id %q after restore, want %q", got, want)
	}
	if err := createCase(c.nodes[f].n, ctx(t), "through-restored"); err != nil {
		t.Fatalf("write through the restored node: %v", err)
	}
}

// A one-node station restored from its backup goes on from it: writes
// after the restore are kept (their raft indexes follow the snapshot's).
func TestBackupRestoreSingleNode(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.waitLeader()
	n := c.nodes[0].n
	putItem(t, n, "XC-L-0001")
	for i := range 5 {
		if err := createCase(n, ctx(t), fmt.Sprintf("c-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := n.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	c.stop(0)
	cfg := c.config(0, testLogger(t))
	os.RemoveAll(cfg.DataDir)
	if _, err := Restore(cfg, &buf); err != nil {
		t.Fatal(err)
	}
	c.start(0)
	c.waitLeader()
	n = c.nodes[0].n
	if got := caseCount(t, n); got != 5 {
		t.Fatalf("%d cases after restore, want 5", got)
	}
	if err := createCase(n, ctx(t), "after"); err != nil {
		t.Fatal(err)
	}
	c.stop(0)
	c.start(0)
	c.waitLeader()
	if got := caseCount(t, c.nodes[0].n); got != 6 {
		t.Fatalf("%d cases after a restart, want 6 (a write after the restore was lost)", got)
	}
}

// A feed request that arrives before the node's stores are open (the
// transport listens first) is answered "starting", not a crash.
func TestFeedBeforeOpenAnswersStarting(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	tn := c.newNode("pc-9", c.station, freeUDPAddr(t), nil)
	tl, err := pki.LoadTLS(filepath.Join(tn.dir, "ca.crt"), filepath.Join(tn.dir, "node.crt"), filepath.Join(tn.dir, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.New(transport.Config{Listen: tn.addr, TLS: tl, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	n := New(Config{NodeID: "pc-9", Station: c.station, DataDir: t.TempDir(), Logger: testLogger(t)}, tr)
	server, client := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.ServeFeed(server, pki.Identity{Role: pki.RoleCenter, Node: "center-1"})
	}()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	if err := writeFrame(client, FeedRequest{V: rpcVersion, Method: FeedMethodFeed}); err != nil {
		t.Fatal(err)
	}
	var resp FeedResponse
	if err := readFrame(client, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Code != "starting" {
		t.Fatalf("answer before open: %+v", resp)
	}
	<-done
	n.Close()
}
