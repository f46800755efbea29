package records

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/stationsync/stationsync/records/calendar"
)

// ItemStats is one item's monthly statistics (每月统计, DOMAIN.md).
type ItemStats struct {
	ItemCode string `json:"item_code"`
	ItemName string `json:"item_name"`
	// Received: cases received in the month; Instant: of them, instant.
	Received int `json:"received"`
	Instant  int `json:"instant"`
	// Completed: cases completed in the month; CompletedOnTime: of them,
	// by their deadline (or without one).
	Completed       int `json:"completed"`
	CompletedOnTime int `json:"completed_on_time"`
	// Overdue: cases whose deadline fell in the month and that were not
	// completed by it (completed late, or still open after it).
	Overdue int `json:"overdue"`
	// Evaluated: first evaluations given in the month; Satisfied: of them
	// 非常满意 or 满意; BadReviews: 不满意 or 非常不满意.
	Evaluated  int `json:"evaluated"`
	Satisfied  int `json:"satisfied"`
	BadReviews int `json:"bad_reviews"`
	// EvaluationRate = Evaluated / Completed (评价率); Satisfaction =
	// Satisfied / Evaluated. Null when the denominator is zero.
	EvaluationRate *float64 `json:"evaluation_rate"`
	Satisfaction   *float64 `json:"satisfaction"`
	// Work orders of the item opened by the end of the month that are
	// still open now, and of those the ones past their due time now.
	OpenWorkOrders    int `json:"open_workorders"`
	OverdueWorkOrders int `json:"overdue_workorders"`
}

// MonthlyStats is a station's statistics for one month.
type MonthlyStats struct {
	Station string      `json:"station"`
	Month   string      `json:"month"`
	Items   []ItemStats `json:"items"`
	Total   ItemStats   `json:"total"`
}

// StatsQuery selects the month and the rules statistics are computed with.
type StatsQuery struct {
	Month    string // YYYY-MM in Location
	Location *time.Location
	Calendar *calendar.Calendar
	Now      time.Time
}

// MonthRange returns [start, end) of a YYYY-MM month in loc.
func MonthRange(month string, loc *time.Location) (time.Time, time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	m, err := time.ParseInLocation("2006-01", month, loc)
	if err != nil {
		return time.Time{}, time.Time{}, Invalid("month", "%q is not YYYY-MM", month)
	}
	return m, m.AddDate(0, 1, 0), nil
}

// ComputeMonthlyStats counts a month from the replicated records.
func ComputeMonthlyStats(r Reader, station string, q StatsQuery) (MonthlyStats, error) {
	from, to, err := MonthRange(q.Month, q.Location)
	if err != nil {
		return MonthlyStats{}, err
	}
	in := func(t time.Time) bool { return !t.IsZero() && !t.Before(from) && t.Before(to) }
	byItem := map[string]*ItemStats{}
	get := func(code, name string) *ItemStats {
		s := byItem[code]
		if s == nil {
			s = &ItemStats{ItemCode: code, ItemName: name}
			byItem[code] = s
		}
		if s.ItemName == "" {
			s.ItemName = name
		}
		return s
	}
	err = scanCases(r, "", func(c Case) (bool, error) {
		s := get(c.ItemCode, c.ItemName)
		tl := c.Timeline()
		if in(c.CreatedAt) {
			s.Received++
			if c.Instant {
				s.Instant++
			}
		}
		dl, hasDL := c.Deadline(q.Calendar, q.Location)
		if tl.Completed && in(tl.Closed) {
			s.Completed++
			if !hasDL || !tl.Closed.After(dl) {
				s.CompletedOnTime++
			}
		}
		if hasDL && in(dl) {
			late := (!tl.Closed.IsZero() && tl.Closed.After(dl)) || (tl.Closed.IsZero() && q.Now.After(dl))
			if late {
				s.Overdue++
			}
		}
		for _, e := range c.Evaluations {
			if e.Attempt != 1 || !in(e.At) {
				continue
			}
			s.Evaluated++
			if Satisfied(e.Level) {
				s.Satisfied++
			}
			if BadReview(e.Level) {
				s.BadReviews++
			}
		}
		return true, nil
	})
	if err != nil {
		return MonthlyStats{}, err
	}
	err = r.Scan(prefixWorkOrder, "", func(key string, v []byte) (bool, error) {
		var w WorkOrder
		if err := json.Unmarshal(v, &w); err != nil {
			return false, fmt.Errorf("decode %s: %w", key, err)
		}
		w.Fold()
		if !w.OpenedAt.Before(to) || WorkOrderTerminal(w.State) {
			return true, nil
		}
		s := get(w.ItemCode, "")
		s.OpenWorkOrders++
		if w.Overdue(q.Calendar, q.Location, q.Now) {
			s.OverdueWorkOrders++
		}
		return true, nil
	})
	if err != nil {
		return MonthlyStats{}, err
	}
	out := MonthlyStats{Station: station, Month: q.Month, Items: []ItemStats{}, Total: ItemStats{ItemCode: "", ItemName: "合计"}}
	for _, s := range byItem {
		if *s == (ItemStats{ItemCode: s.ItemCode, ItemName: s.ItemName}) {
			continue // nothing happened to this item in the month
		}
		s.rates()
		out.Items = append(out.Items, *s)
		out.Total.add(*s)
	}
	out.Total.rates()
	slices.SortFunc(out.Items, func(a, b ItemStats) int {
		switch {
		case a.ItemCode < b.ItemCode:
			return -1
		case a.ItemCode > b.ItemCode:
			return 1
		}
		return 0
	})
	return out, nil
}

func (t *ItemStats) add(s ItemStats) {
	t.Received += s.Received
	t.Instant += s.Instant
	t.Completed += s.Completed
	t.CompletedOnTime += s.CompletedOnTime
	t.Overdue += s.Overdue
	t.Evaluated += s.Evaluated
	t.Satisfied += s.Satisfied
	t.BadReviews += s.BadReviews
	t.OpenWorkOrders += s.OpenWorkOrders
	t.OverdueWorkOrders += s.OverdueWorkOrders
}

// SumStats adds up rows (stations' totals, say) into one, with its rates.
func SumStats(rows []ItemStats) ItemStats {
	var t ItemStats
	for _, s := range rows {
		t.add(s)
	}
	t.rates()
	return t
}

func (s *ItemStats) rates() {
	s.EvaluationRate, s.Satisfaction = nil, nil
	if s.Completed > 0 {
		v := float64(s.Evaluated) / float64(s.Completed)
		s.EvaluationRate = &v
	}
	if s.Evaluated > 0 {
		v := float64(s.Satisfied) / float64(s.Evaluated)
		s.Satisfaction = &v
	}
}
