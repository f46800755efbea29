package center

import (
	"testing"
	"time"
)

// While one station's digests are being computed, another station that is
// due for its check waits for its turn, half a pull interval at most, and
// then skips it (and checks at a later pull) instead of computing its own
// at the same time.
func TestDigestChecksOneAtATime(t *testing.T) {
	c := New()
	c.interval, c.loc = 20*time.Millisecond, time.UTC // waits 10 ms for its turn
	ps := &pullState{station: "XC-IP-02"}             // never verified: due
	c.digestSlot <- struct{}{}                        // another station's check runs
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("verify went on to ask the station while another station's digests were being computed: %v", r)
			}
		}()
		c.verify(ps) // c.tr is nil: asking the station would panic
	}()
	if !ps.verifiedAt.IsZero() || len(ps.digests) != 0 {
		t.Errorf("verifiedAt %v, digests %v: the skipped check must stay due", ps.verifiedAt, ps.digests)
	}
	<-c.digestSlot
	if len(c.digestSlot) != 0 {
		t.Error("verify took the slot without giving it back")
	}
}
