package daemon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication"
)

// Demo sample cases: the last six weeks of a small station, so the status
// page and /v1/stats/monthly show real computations (deadlines, an overdue
// case, bad reviews with their work orders). They are labelled DEMO- and
// use fictitious applicants; seeding is idempotent (fixed ids), so a
// second demo run adds nothing.

type demoStep struct {
	typ   string
	after time.Duration // after the previous step
}

type demoCase struct {
	item   string
	start  time.Duration // before now
	steps  []demoStep
	level  string // first evaluation, "" for none
	second string // second evaluation after the work order closed
	woTo   string // how far the work order got
}

const day = 24 * time.Hour

var demoCases = []demoCase{
	// Instant items (即办件): completed on the spot, evaluated at the hall tablet.
	{item: "XC-S-0005", start: 40 * day, steps: []demoStep{{records.EventCompleted, 10 * time.Minute}}, level: "非常满意"},
	{item: "XC-S-0006", start: 33 * day, steps: []demoStep{{records.EventCompleted, 8 * time.Minute}}, level: "满意"},
	{item: "XC-S-0007", start: 26 * day, steps: []demoStep{{records.EventCompleted, 12 * time.Minute}}, level: "非常满意"},
	{item: "XC-S-0009", start: 12 * day, steps: []demoStep{{records.EventCompleted, 5 * time.Minute}}, level: "满意"},
	{item: "XC-S-0005", start: 3 * day, steps: []demoStep{{records.EventCompleted, 15 * time.Minute}}, level: "基本满意"},
	{item: "XC-S-0007", start: 2 * time.Hour, steps: []demoStep{{records.EventCompleted, 20 * time.Minute}}},
	// Promised items (承诺件) through their lifecycle.
	{item: "XC-S-0001", start: 38 * day, steps: []demoStep{{records.EventAccepted, time.Hour}, {records.EventCompleted, 20 * time.Hour}}, level: "非常满意"},
	{item: "XC-S-0002", start: 30 * day, steps: []demoStep{{records.EventAccepted, time.Hour}, {records.EventCorrectionRequested, 4 * time.Hour}, {records.EventSupplemented, 2 * day}, {records.EventCompleted, day}}, level: "满意"},
	{item: "XC-S-0004", start: 28 * day, steps: []demoStep{{records.EventAccepted, 2 * time.Hour}, {records.EventPaused, day}, {records.EventResumed, 3 * day}, {records.EventCompleted, 2 * day}}, level: "不满意", second: "满意", woTo: records.WorkOrderClosed},
	{item: "XC-S-0008", start: 21 * day, steps: []demoStep{{records.EventAccepted, time.Hour}, {records.EventCompleted, 6 * day}}, level: "满意"},
	{item: "XC-S-0003", start: 16 * day, steps: []demoStep{{records.EventRejected, 2 * time.Hour}}},
	{item: "XC-S-0010", start: 14 * day, steps: []demoStep{{records.EventAccepted, time.Hour}, {records.EventWithdrawn, 2 * day}}},
	{item: "XC-S-0004", start: 10 * day, steps: []demoStep{{records.EventAccepted, time.Hour}, {records.EventCompleted, 4 * day}}, level: "非常不满意", woTo: records.WorkOrderRectifying},
	{item: "XC-S-0001", start: 6 * day, steps: []demoStep{{records.EventAccepted, time.Hour}, {records.EventCompleted, 22 * time.Hour}}, level: "不满意"},
	// Overdue: accepted three weeks ago with a 5-working-day promise, still open.
	{item: "XC-S-0004", start: 22 * day, steps: []demoStep{{records.EventAccepted, time.Hour}, {records.EventCorrectionRequested, 2 * day}, {records.EventSupplemented, day}}},
	// Open, within their limits.
	{item: "XC-S-0008", start: 2 * day, steps: []demoStep{{records.EventAccepted, time.Hour}}},
	{item: "XC-S-0002", start: 4 * time.Hour, steps: nil},
}

var demoNames = []string{"张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄强", "周杰", "吴霞"}

// seedDemoCases writes the sample cases through the cluster.
func seedDemoCases(ctx context.Context, n *replication.Node, station string, now time.Time) (int, error) {
	rng := rand.New(rand.NewPCG(2026, 11))
	for i, dc := range demoCases {
		var ops []records.Op
		id := fmt.Sprintf("DEMO-%04d", i+1)
		at := now.Add(-dc.start)
		hlc := func() records.HLC { return records.MakeHLC(at.UnixMilli(), 0) }
		c := records.Case{
			ID: id, ItemCode: dc.item, Channel: "window", Actor: fmt.Sprintf("clerk-%02d", 1+rng.IntN(3)),
			Applicant: records.Applicant{
				Kind: "person", Name: demoNames[i%len(demoNames)], IDType: "111",
				IDNumber: fmt.Sprintf("3205071990%02d%02d%04d", 1+i%12, 1+i%28, 1000+rng.IntN(9000)),
				Phone:    fmt.Sprintf("139%08d", rng.IntN(100000000)),
			},
		}
		if i%4 == 3 {
			c.Applicant = records.Applicant{Kind: "enterprise", Name: "苏州示例科技有限公司", CreditCode: "91320507MA1EXAMPLE", Phone: fmt.Sprintf("0512%08d", rng.IntN(100000000))}
		}
		records.PrepareCase(&c, station, "demo", hlc())
		ops = append(ops, records.Op{Kind: records.OpCreateCase, Case: &c})
		for j, s := range dc.steps {
			at = at.Add(s.after)
			ev := records.Event{ID: fmt.Sprintf("%s.%d", id, j+1), Type: s.typ, Actor: c.Actor}
			records.PrepareEvent(&ev, id, "demo", hlc())
			ops = append(ops, records.Op{Kind: records.OpAppendEvent, Event: &ev})
		}
		if dc.level != "" {
			ops = append(ops, demoEvaluation(dc, id, &at)...)
		}
		results, err := n.Submit(ctx, ops)
		if err != nil {
			return 0, err
		}
		for k, r := range results {
			if r.Error != nil {
				return 0, fmt.Errorf("sample case %s op %d (%s): %w", id, k, ops[k].Kind, r.Error)
			}
		}
	}
	return len(demoCases), nil
}

// demoEvaluation is a sample case's evaluation, and for a bad review its
// work order's steps and the second evaluation.
func demoEvaluation(dc demoCase, id string, at *time.Time) []records.Op {
	hlc := func() records.HLC { return records.MakeHLC(at.UnixMilli(), 0) }
	var ops []records.Op
	*at = at.Add(5 * time.Minute)
	e := records.Evaluation{ID: id + ".eval1", Level: dc.level, Channel: 4, Attempt: 1}
	if records.BadReview(dc.level) {
		e.Text = "等候时间太长，材料要求没有一次说清"
	}
	records.PrepareEvaluation(&e, id, "demo", hlc(), records.DefaultWorkOrderDays)
	ops = append(ops, records.Op{Kind: records.OpEvaluate, Evaluation: &e})
	if dc.woTo == "" {
		return ops
	}
	path := []records.WorkOrderEvent{
		{Type: records.WorkOrderAssigned, Actor: "站长", Owner: "窗口负责人"},
		{Type: records.WorkOrderVerifying, Actor: "窗口负责人"},
		{Type: records.WorkOrderRectifying, Actor: "窗口负责人", Note: "增加高峰时段窗口，材料清单一次性告知"},
		{Type: records.WorkOrderReplied, Actor: "窗口负责人"},
		{Type: records.WorkOrderClosed, Actor: "窗口负责人", Note: "电话回访，办事人表示满意"},
	}
	for k, we := range path {
		*at = at.Add(day)
		we.ID = fmt.Sprintf("%s.wo%d", id, k+1)
		records.PrepareWorkOrderEvent(&we, "demo", hlc())
		ops = append(ops, records.Op{Kind: records.OpWorkOrderEvent, WorkOrderID: "WO-" + id, WorkOrderEvent: &we})
		if we.Type == dc.woTo {
			break
		}
	}
	if dc.second != "" {
		*at = at.Add(time.Hour)
		e2 := records.Evaluation{ID: id + ".eval2", Level: dc.second, Channel: 6, Attempt: 2}
		records.PrepareEvaluation(&e2, id, "demo", hlc(), records.DefaultWorkOrderDays)
		ops = append(ops, records.Op{Kind: records.OpEvaluate, Evaluation: &e2})
	}
	return ops
}
