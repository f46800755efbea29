package replication

import (
	"errors"
	"testing"
	"time"

	"github.com/stationsync/stationsync/records"
)

// TestCloseWaitsForReadsInFlight: a read of the state in flight when the
// node closes (the center's digest or feed request served by the
// transport, which closes after the node) keeps Close from closing the
// stores under it; reads begun once Close has begun get ErrClosed.
// Without the wait the read ran on a closed badger, and a test process
// died of it (CI, 2026-11-29: a digest served during a center test's
// cleanup).
func TestCloseWaitsForReadsInFlight(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.waitLeader()
	n := c.nodes[0].n
	inRead, resume := make(chan struct{}), make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		readErr <- n.View(func(r records.Reader) error {
			close(inRead)
			<-resume
			_, err := records.MaxHLC(r) // reads the store after Close has begun
			return err
		})
	}()
	<-inRead
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := n.View(func(records.Reader) error { return nil })
		if errors.Is(err, ErrClosed) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			close(resume)
			t.Fatalf("a read while Close runs: %v, want ErrClosed", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := n.Feed(0, 10); !errors.Is(err, ErrClosed) {
		t.Errorf("Feed while Close runs: %v, want ErrClosed", err)
	}
	if _, err := n.Digest("2026-11", time.UTC); !errors.Is(err, ErrClosed) {
		t.Errorf("Digest while Close runs: %v, want ErrClosed", err)
	}
	select {
	case err := <-closed:
		close(resume)
		t.Fatalf("Close returned (%v) while a read was in flight", err)
	default:
	}
	close(resume)
	if err := <-readErr; err != nil {
		t.Errorf("the read in flight: %v", err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return within 20 s after the read ended")
	}
}
