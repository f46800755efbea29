//go:build linux

package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/stationsync/stationsync/internal/harness"
)

// lifecycle is the events a clerk posts to each case, in order, after
// creating it: a long run of pauses and resumptions keeps a case open for
// many writes.
var lifecycle = []string{"accepted", "paused", "resumed", "paused", "resumed", "paused", "resumed", "completed"}

// outcome classifies an answer.
type outcome int

const (
	// unknown: no answer, a timeout, or a 5xx/503/507: the write may or may
	// not have happened; the clerk retries it with the same id.
	unknown outcome = iota
	// ok: 201 or 202; the write must be present exactly once.
	ok
	// refused: any other 4xx; the write must be present nowhere.
	refused
)

func (o outcome) String() string {
	return [...]string{"unknown", "ok", "refused"}[o]
}

// op is one request a clerk sent and what came back.
type op struct {
	Clerk   int
	Node    string
	Kind    string // create | event
	CaseID  string
	EventID string // for create: "" (the received event's id is the node's)
	Type    string
	Start   time.Time
	End     time.Time
	Status  int // 0: no answer
	Err     string
	Repl    string // committed | pending
	Repeat  bool
	Outcome outcome
}

func (o op) String() string {
	s := fmt.Sprintf("%s %s clerk %d on %s: %s %s", o.Start.Format("15:04:05.000"), o.End.Sub(o.Start).Round(time.Millisecond), o.Clerk, o.Node, o.Kind, o.Type)
	if o.EventID != "" {
		s += " id " + o.EventID
	}
	if o.Status != 0 {
		s += fmt.Sprintf(" -> %d", o.Status)
	}
	if o.Repl != "" {
		s += " " + o.Repl
	}
	if o.Repeat {
		s += " (repeat)"
	}
	if o.Err != "" {
		s += " error: " + o.Err
	}
	return s + " [" + o.Outcome.String() + "]"
}

// history is every request of the run, in the order answers came back.
type history struct {
	mu  sync.Mutex
	ops []op
}

func newHistory() *history { return &history{} }

func (h *history) add(o op) {
	h.mu.Lock()
	h.ops = append(h.ops, o)
	h.mu.Unlock()
}

func (h *history) all() []op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]op(nil), h.ops...)
}

// ofCase is the history of one case.
func (h *history) ofCase(id string) string {
	var b strings.Builder
	for _, o := range h.all() {
		if o.CaseID == id {
			b.WriteString("    " + o.String() + "\n")
		}
	}
	return b.String()
}

// opCounts sums up a history.
type opCounts struct {
	Requests, OK, Committed, Pending, Refused, Unknown int
	Cases                                              int
}

func (c opCounts) String() string {
	return fmt.Sprintf("%d requests for %d cases: %d answered 201/202 (%d committed, %d pending), %d refused, %d without a definite answer (retried)",
		c.Requests, c.Cases, c.OK, c.Committed, c.Pending, c.Refused, c.Unknown)
}

func (h *history) counts() opCounts {
	var c opCounts
	cases := map[string]bool{}
	for _, o := range h.all() {
		c.Requests++
		cases[o.CaseID] = true
		switch o.Outcome {
		case ok:
			c.OK++
			if o.Repl == "pending" {
				c.Pending++
			} else {
				c.Committed++
			}
		case refused:
			c.Refused++
		default:
			c.Unknown++
		}
	}
	c.Cases = len(cases)
	return c
}

// writeAnswer is the 201/202 body of a case write.
type writeAnswer struct {
	Case struct {
		ID string `json:"id"`
	} `json:"case"`
	Replication string `json:"replication"`
	Repeat      bool   `json:"repeat"`
}

// clerk writes cases through one PC, as a clerk at that PC's window does:
// one case at a time, each created with a client id and taken through
// the lifecycle; a write without a definite answer is retried with the
// same id until it gets one.
type clerk struct {
	id   int
	node *harness.Node
	hist *history
	rng  *rand.Rand
	seq  int
}

// idNumber is the fake (but well-formed) ID number of clerk c's k-th
// applicant: the log scan looks for these.
func idNumber(clerk, k int) string {
	return fmt.Sprintf("3205071990%02d%02d%04d", 1+clerk%12, 1+k%28, (clerk*7919+k)%10000)
}

func phone(clerk, k int) string { return fmt.Sprintf("139%04d%04d", clerk, k%10000) }

func (c *clerk) run(ctx context.Context) {
	for ctx.Err() == nil {
		c.seq++
		caseID := fmt.Sprintf("chaos-%02d-%05d", c.id, c.seq)
		body := map[string]any{
			"id": caseID, "item_code": localItem, "channel": "window", "actor": fmt.Sprintf("clerk-%02d", c.id),
			"applicant": map[string]any{"kind": "person", "name": "测试申请人", "id_type": "111",
				"id_number": idNumber(c.id, c.seq), "phone": phone(c.id, c.seq)},
		}
		if c.write(ctx, op{Kind: "create", CaseID: caseID, Type: "received"}, "/v1/cases", body) != ok {
			continue
		}
		for k, typ := range lifecycle {
			evID := fmt.Sprintf("%s-e%d", caseID, k+1)
			b := map[string]any{"id": evID, "type": typ, "actor": fmt.Sprintf("clerk-%02d", c.id)}
			if c.write(ctx, op{Kind: "event", CaseID: caseID, EventID: evID, Type: typ}, "/v1/cases/"+url.PathEscape(caseID)+"/events", b) != ok {
				break
			}
		}
	}
}

// write sends one write until it gets a definite answer or ctx ends, and
// records every attempt.
func (c *clerk) write(ctx context.Context, o op, path string, body any) outcome {
	for {
		c.pause(ctx, 20, 120)
		if ctx.Err() != nil {
			return unknown
		}
		a := o
		a.Clerk, a.Node, a.Start = c.id, c.node.ID, time.Now()
		status, resp, err := c.node.Do(http.MethodPost, path, body)
		a.End, a.Status = time.Now(), status
		switch {
		case err != nil:
			a.Err = shortErr(err)
		case status == http.StatusCreated || status == http.StatusAccepted:
			var w writeAnswer
			if jerr := json.Unmarshal(resp, &w); jerr != nil {
				a.Err = "undecodable answer: " + jerr.Error()
				break
			}
			a.Outcome, a.Repl, a.Repeat = ok, w.Replication, w.Repeat
		case status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
			a.Err = errText(resp)
		default:
			a.Outcome, a.Err = refused, errText(resp)
		}
		c.hist.add(a)
		if a.Outcome != unknown {
			return a.Outcome
		}
		c.pause(ctx, 200, 600)
	}
}

func (c *clerk) pause(ctx context.Context, minMS, maxMS int) {
	d := time.Duration(minMS+c.rng.IntN(maxMS-minMS+1)) * time.Millisecond
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func shortErr(err error) string {
	s := err.Error()
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(s, "Client.Timeout") {
		return "timeout"
	}
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

func errText(body []byte) string {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		return e.Error.Code + ": " + e.Error.Message
	}
	s := string(body)
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

// startWorkload starts n clerks, clerk i at PC i mod 5, and the
// catalogue's publisher; the returned function stops them, waits, and
// returns the counts.
func (e *env) startWorkload(n int) func() opCounts {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		c := &clerk{id: i, node: e.st.Node(i % nodes), hist: e.hist, rng: rand.New(rand.NewPCG(e.rng.Uint64(), uint64(i)))}
		wg.Go(func() { c.run(ctx) })
	}
	wg.Go(func() { e.catalog.run(ctx) })
	return func() opCounts {
		cancel()
		wg.Wait()
		return e.hist.counts()
	}
}

// catalogue publishes a new version of the district item at the center
// every few seconds (the center may be down or cut off: then it tries
// again later).
type catalogue struct {
	center    *harness.Node
	mu        sync.Mutex
	published int // versions answered 200
	failed    int
}

func (c *catalogue) publish() error {
	c.mu.Lock()
	k := c.published + c.failed + 1
	c.mu.Unlock()
	item := map[string]any{"name": fmt.Sprintf("企业开办（第%d版）", k), "type": map[string]any{"code": "20", "name": "公共服务"}}
	_, err := c.center.Put("/v1/catalogue/items/"+districtItem, item, nil)
	c.mu.Lock()
	if err != nil {
		c.failed++
	} else {
		c.published++
	}
	c.mu.Unlock()
	return err
}

func (c *catalogue) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
			_ = c.publish()
		}
	}
}
