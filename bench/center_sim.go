package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication"
	"github.com/stationsync/stationsync/replication/transport"
)

// Simulated stations for the center section: each is a feed server with
// its own QUIC transport and station certificate, answering the center's
// feed and digest requests from a recorded feed. The feed is made by
// applying real station ops (records.Apply, as a station's state machine
// does) to an in-memory store: every change is what a station would have
// written, and the store gives the digests the center compares.

// centerMemState is a records.State in memory: a map, with the sorted key list
// rebuilt lazily for Scan.
type centerMemState struct {
	m       map[string][]byte
	keys    []string // sorted
	pending []string // keys added since keys was sorted
}

func newCenterMemState() *centerMemState { return &centerMemState{m: map[string][]byte{}} }

func (s *centerMemState) Get(k string) ([]byte, error) { return s.m[k], nil }

func (s *centerMemState) Set(k string, v []byte) error {
	if _, ok := s.m[k]; !ok {
		s.pending = append(s.pending, k)
	}
	s.m[k] = v
	return nil
}

func (s *centerMemState) sort() {
	if len(s.pending) == 0 {
		return
	}
	slices.Sort(s.pending)
	merged := make([]string, 0, len(s.keys)+len(s.pending))
	i, j := 0, 0
	for i < len(s.keys) && j < len(s.pending) {
		if s.keys[i] < s.pending[j] {
			merged = append(merged, s.keys[i])
			i++
		} else {
			merged = append(merged, s.pending[j])
			j++
		}
	}
	merged = append(merged, s.keys[i:]...)
	merged = append(merged, s.pending[j:]...)
	s.keys, s.pending = merged, s.pending[:0]
}

func (s *centerMemState) Scan(prefix, after string, fn func(string, []byte) (bool, error)) error {
	s.sort()
	i, _ := slices.BinarySearch(s.keys, prefix)
	if after > prefix {
		j, found := slices.BinarySearch(s.keys, after)
		if found {
			j++
		}
		i = max(i, j)
	}
	for ; i < len(s.keys) && strings.HasPrefix(s.keys[i], prefix); i++ {
		k := s.keys[i]
		ok, err := fn(k, s.m[k])
		if err != nil || !ok {
			return err
		}
	}
	return nil
}

// centerCase is a case the generator is taking through its lifecycle.
type centerCase struct {
	id    string
	steps []string // lifecycle events still to come
	eval  string   // evaluation level after the last step ("" for none)
}

// centerGen makes a station's ops: cases received, taken through realistic
// lifecycles (several open at once, so a case's events interleave with
// other cases' in the feed), some evaluated, bad reviews opening work
// orders. In history mode time is simulated (the weeks before now); live
// it is the wall clock.
type centerGen struct {
	station string
	rng     *mrand.Rand
	simNow  time.Time
	live    bool
	clock   *records.Clock
	items   []records.Item
	open    []*centerCase
	cases   int
}

var centerNames = []string{"张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄强", "周杰", "吴霞", "徐明", "孙丽", "马超", "朱琳", "胡斌", "郭婷"}
var centerCompanies = []string{"苏州工业园区星海科技有限公司", "苏州金鸡湖物流有限公司", "苏州独墅湖生物医药有限公司", "苏州阳澄湖餐饮管理有限公司"}
var centerChannels = []string{"window", "window", "window", "web", "mobile", "kiosk", "courier", "phone"}

func newCenterGen(station string, seed uint64, start time.Time) *centerGen {
	g := &centerGen{station: station, rng: mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), simNow: start}
	g.clock = records.NewClock(func() time.Time {
		if g.live {
			return time.Now()
		}
		return g.simNow
	})
	names := []string{"企业设立登记", "食品经营许可", "居民身份证换领", "社会保险登记", "建设工程规划许可", "户籍证明开具"}
	for i, n := range names {
		it := records.Item{Code: fmt.Sprintf("%s-SX-%04d", station, i+1), Name: n, Type: records.ItemType{Code: "01"}, Origin: records.OriginLocal,
			PromisedLimit: &records.Limit{Value: 5 + 3*i, Unit: "working_days"}, Channels: []int{1, 2}}
		if i >= 4 {
			it.Type.Code, it.Instant, it.PromisedLimit = "20", true, nil
		}
		g.items = append(g.items, it)
	}
	return g
}

// itemOps are the station's item list, written first.
func (g *centerGen) itemOps() []records.Op {
	var ops []records.Op
	for i := range g.items {
		ops = append(ops, records.Op{Kind: records.OpPutItem, Item: &g.items[i]})
	}
	return ops
}

func (g *centerGen) digits(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + g.rng.IntN(10))
	}
	return string(b)
}

// next returns the station's next op; history mode advances simulated
// time by a random step of mean step.
func (g *centerGen) next(step time.Duration) records.Op {
	if !g.live {
		g.simNow = g.simNow.Add(time.Duration(g.rng.ExpFloat64() * float64(step)))
	}
	if len(g.open) < 6 || (len(g.open) < 40 && g.rng.Float64() < 0.3) {
		return g.newCase()
	}
	i := g.rng.IntN(len(g.open))
	c := g.open[i]
	if len(c.steps) == 0 {
		g.open = slices.Delete(g.open, i, i+1)
		e := records.Evaluation{Level: c.eval, Channel: 1 + g.rng.IntN(7), Attempt: 1}
		if records.BadReview(c.eval) {
			e.Text = "等候时间太长，材料要求没有一次说清"
		}
		records.PrepareEvaluation(&e, c.id, "pc-1", g.clock.Now(), records.DefaultWorkOrderDays)
		return records.Op{Kind: records.OpEvaluate, Evaluation: &e}
	}
	typ := c.steps[0]
	c.steps = c.steps[1:]
	if len(c.steps) == 0 && c.eval == "" {
		g.open = slices.Delete(g.open, i, i+1)
	}
	ev := records.Event{Type: typ, Actor: fmt.Sprintf("窗口%02d", 1+g.rng.IntN(12))}
	switch typ {
	case records.EventCorrectionRequested:
		ev.Data = json.RawMessage(`{"missing":["申请人身份证明复印件","经营场所使用证明"],"note":"一次性告知需补正的全部材料"}`)
	case records.EventPaused:
		ev.Data = json.RawMessage(`{"reason":"现场核查","expected_days":3}`)
	case records.EventCompleted:
		ev.Data = json.RawMessage(`{"result":"准予许可","certificate":"` + g.digits(12) + `"}`)
	default:
		ev.Data = json.RawMessage(`{"window":"` + fmt.Sprint(1+g.rng.IntN(12)) + `号窗口"}`)
	}
	records.PrepareEvent(&ev, c.id, "pc-1", g.clock.Now())
	return records.Op{Kind: records.OpAppendEvent, Event: &ev}
}

func (g *centerGen) newCase() records.Op {
	it := g.items[g.rng.IntN(len(g.items))]
	g.cases++
	c := records.Case{ItemCode: it.Code, Channel: centerChannels[g.rng.IntN(len(centerChannels))], Actor: fmt.Sprintf("窗口%02d", 1+g.rng.IntN(12))}
	if g.rng.IntN(4) == 0 {
		c.Applicant = records.Applicant{Kind: "enterprise", Name: centerCompanies[g.rng.IntN(len(centerCompanies))], CreditCode: "91320594" + g.digits(10), Phone: "0512" + g.digits(8)}
		c.Agent = &records.Applicant{Kind: "person", Name: centerNames[g.rng.IntN(len(centerNames))], IDType: "身份证", IDNumber: "320506" + g.digits(12), Phone: "139" + g.digits(8)}
	} else {
		c.Applicant = records.Applicant{Kind: "person", Name: centerNames[g.rng.IntN(len(centerNames))], IDType: "身份证", IDNumber: "320506" + g.digits(12), Phone: "138" + g.digits(8)}
	}
	records.PrepareCase(&c, g.station, "pc-1", g.clock.Now())
	sc := &centerCase{id: c.ID}
	r := g.rng.Float64()
	switch {
	case it.Instant && r < 0.9:
		sc.steps = []string{records.EventCompleted}
	case r < 0.45:
		sc.steps = []string{records.EventAccepted, records.EventCompleted}
	case r < 0.60:
		sc.steps = []string{records.EventAccepted, records.EventCorrectionRequested, records.EventSupplemented, records.EventCompleted}
	case r < 0.70:
		sc.steps = []string{records.EventAccepted, records.EventPaused, records.EventResumed, records.EventCompleted}
	case r < 0.80:
		sc.steps = []string{records.EventCorrectionRequested, records.EventSupplemented, records.EventAccepted, records.EventCompleted}
	case r < 0.85:
		sc.steps = []string{records.EventRejected}
	case r < 0.90:
		sc.steps = []string{records.EventAccepted, records.EventWithdrawn}
	default:
		sc.steps = []string{records.EventAccepted} // still open
	}
	if sc.steps[len(sc.steps)-1] == records.EventCompleted && g.rng.Float64() < 0.6 {
		switch r := g.rng.Float64(); {
		case r < 0.50:
			sc.eval = "非常满意"
		case r < 0.85:
			sc.eval = "满意"
		case r < 0.95:
			sc.eval = "基本满意"
		case r < 0.99:
			sc.eval = "不满意"
		default:
			sc.eval = "非常不满意"
		}
	}
	g.open = append(g.open, sc)
	return records.Op{Kind: records.OpCreateCase, Case: &c}
}

// centerAppend is one op appended during the steady state: the last feed seq
// it added and when.
type centerAppend struct {
	seq uint64
	at  time.Time
}

// centerSim is one simulated station.
type centerSim struct {
	id        string
	clusterID string
	loc       *time.Location
	tr        *transport.Transport
	addr      string

	mu       sync.Mutex // guards everything below
	st       *centerMemState
	feed     []replication.FeedChange // feed[i].Seq == i+1
	gen      *centerGen
	appended []centerAppend
	events   int // lifecycle events (with "received") in the store
	cases    int
	bytes    int64 // JSON size of the feed's changes

	feedTimes []time.Time // when each feed request was answered (guarded by mu)

	feedCalls   atomic.Int64
	digestCalls atomic.Int64
	refused     atomic.Int64
	firstCall   *atomic.Int64 // unix nanos of the first feed request to any station (shared)
}

func newCenterSim(id string, loc *time.Location, seed uint64, start time.Time, firstCall *atomic.Int64) *centerSim {
	b := make([]byte, 16)
	rand.Read(b)
	return &centerSim{id: id, clusterID: hex.EncodeToString(b), loc: loc, st: newCenterMemState(), gen: newCenterGen(id, seed, start), firstCall: firstCall}
}

// apply applies op as the station's state machine would and adds its
// changes to the feed; it returns the last seq (0: no change).
func (s *centerSim) apply(op records.Op) (uint64, error) {
	_, chs, err := records.Apply(s.st, op)
	if err != nil {
		return 0, fmt.Errorf("station %s: %s: %w", s.id, op.Kind, err)
	}
	for _, ch := range chs {
		seq := uint64(len(s.feed) + 1)
		s.feed = append(s.feed, replication.FeedChange{Seq: seq, Index: seq, Change: ch})
		s.bytes += int64(len(ch.Data))
		switch ch.Kind {
		case "case":
			s.cases++
			s.events++
		case "event":
			s.events++
		}
	}
	return uint64(len(s.feed)), nil
}

// record generates the station's history: its items, then ops until the
// feed holds at least n changes, spread over span of simulated time.
func (s *centerSim) record(n int, span time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range s.gen.itemOps() {
		if _, err := s.apply(op); err != nil {
			return err
		}
	}
	step := span / time.Duration(n)
	for len(s.feed) < n {
		if _, err := s.apply(s.gen.next(step)); err != nil {
			return err
		}
	}
	s.st.sort()
	return nil
}

// appendLive applies the station's next op at wall-clock time and
// remembers when.
func (s *centerSim) appendLive() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen.live = true
	seq, err := s.apply(s.gen.next(0))
	if err != nil {
		return err
	}
	s.appended = append(s.appended, centerAppend{seq: seq, at: time.Now()})
	return nil
}

// pullAfter returns the first feed request answered at or after t (ok
// false: none yet).
func (s *centerSim) pullAfter(t time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.feedTimes, t, func(a, b time.Time) int { return a.Compare(b) })
	if i == len(s.feedTimes) {
		return time.Time{}, false
	}
	return s.feedTimes[i], true
}

// pullPeriods returns the times between successive feed requests, of
// those that end after t.
func (s *centerSim) pullPeriods(t time.Time) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(s.feedTimes); i++ {
		if s.feedTimes[i].After(t) {
			out = append(out, s.feedTimes[i].Sub(s.feedTimes[i-1]))
		}
	}
	return out
}

// open starts the station's QUIC listener with a station certificate
// issued from the district CA.
func (s *centerSim) open(caDir, dir string, logger *slog.Logger) error {
	if err := pki.Issue(caDir, pki.Identity{Role: pki.RoleStation, Station: s.id, Node: "pc-1"}, dir, 24*time.Hour); err != nil {
		return err
	}
	tl, err := pki.LoadTLS(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key"))
	if err != nil {
		return err
	}
	tr, err := transport.New(transport.Config{Listen: "127.0.0.1:0", TLS: tl, Station: s.id, Logger: logger})
	if err != nil {
		return err
	}
	tr.Handle(transport.KindFeed, func(c net.Conn, peer pki.Identity) {
		replication.ServeFeedWith(c, peer, logger, func(req replication.FeedRequest) replication.FeedResponse { return s.serve(peer, req) })
	})
	if err := tr.Open(); err != nil {
		return err
	}
	s.tr, s.addr = tr, tr.Addr().String()
	return nil
}

// serve answers like replication.Node.ServeFeed: feed and digest, to the
// center only.
func (s *centerSim) serve(peer pki.Identity, req replication.FeedRequest) replication.FeedResponse {
	if peer.Role != pki.RoleCenter {
		s.refused.Add(1)
		return replication.FeedResponse{Code: "refused", Error: fmt.Sprintf("%s %s/%s may not read station %s's feed", peer.Role, peer.Station, peer.Node, s.id)}
	}
	switch req.Method {
	case replication.FeedMethodFeed:
		s.feedCalls.Add(1)
		s.firstCall.CompareAndSwap(0, time.Now().UnixNano())
		limit := req.Limit
		if limit <= 0 || limit > 1000 {
			limit = 100
		}
		s.mu.Lock()
		s.feedTimes = append(s.feedTimes, time.Now())
		head := uint64(len(s.feed))
		from := min(req.Since, head)
		to := min(from+uint64(limit), head)
		page := replication.FeedPage{ClusterID: s.clusterID, Changes: slices.Clip(s.feed[from:to]), Next: req.Since, Head: head}
		s.mu.Unlock()
		if to > from {
			page.Next = to
		}
		return replication.FeedResponse{Page: &page}
	case replication.FeedMethodDigest:
		s.digestCalls.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		d, err := records.MonthDigest(s.st, req.Month, s.loc)
		if err != nil {
			if de, ok := records.AsError(err); ok {
				return replication.FeedResponse{Code: "invalid", Error: de.Error()}
			}
			return replication.FeedResponse{Code: "internal", Error: err.Error()}
		}
		return replication.FeedResponse{Digest: &replication.StationDigest{Digest: d, ClusterID: s.clusterID, Head: uint64(len(s.feed))}}
	default:
		return replication.FeedResponse{Code: "invalid", Error: fmt.Sprintf("a station does not serve %q", req.Method)}
	}
}

func (s *centerSim) close() {
	if s.tr != nil {
		s.tr.Close()
	}
}
