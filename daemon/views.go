package daemon

import (
	"net/http"
	"time"

	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/records/calendar"
)

// CaseView is a case as the API shows it: with its deadline and overdue
// flag computed from the holiday calendar at the time of the request.
type CaseView struct {
	records.Case
	Deadline *time.Time `json:"deadline"`
	Overdue  bool       `json:"overdue"`
}

// MakeCaseView builds the view of c: personal data masked unless full,
// evaluators never shown.
func MakeCaseView(c records.Case, cal *calendar.Calendar, loc *time.Location, full bool) CaseView {
	shown := c.Masked()
	if full {
		shown = c.WithoutEvaluators()
	}
	v := CaseView{Case: shown}
	if dl, ok := c.Deadline(cal, loc); ok {
		dl = dl.In(loc)
		v.Deadline = &dl
	}
	v.Overdue = c.Overdue(cal, loc, time.Now())
	return v
}

// FullRequested says whether a request asks for unmasked data (?full=1).
func FullRequested(r *http.Request) bool {
	f := r.URL.Query().Get("full")
	return f == "1" || f == "true"
}

func (d *Daemon) caseView(r *http.Request, c records.Case) CaseView {
	return MakeCaseView(c, d.cal.Load(), d.loc, FullRequested(r))
}

// WorkOrderView is a work order with its due time and overdue flag.
type WorkOrderView struct {
	records.WorkOrder
	Due     time.Time `json:"due"`
	Overdue bool      `json:"overdue"`
}

// MakeWorkOrderView builds the view of w.
func MakeWorkOrderView(w records.WorkOrder, cal *calendar.Calendar, loc *time.Location) WorkOrderView {
	return WorkOrderView{WorkOrder: w, Due: w.Due(cal, loc).In(loc), Overdue: w.Overdue(cal, loc, time.Now())}
}

func (d *Daemon) workOrderView(w records.WorkOrder) WorkOrderView {
	return MakeWorkOrderView(w, d.cal.Load(), d.loc)
}

func (d *Daemon) handleMonthlyStats(w http.ResponseWriter, r *http.Request) {
	month := r.URL.Query().Get("month")
	if month == "" {
		month = time.Now().In(d.loc).Format("2006-01")
	}
	var st records.MonthlyStats
	err := d.node.View(func(rd records.Reader) (err error) {
		st, err = records.ComputeMonthlyStats(rd, d.cfg.StationID, records.StatsQuery{Month: month, Location: d.loc, Calendar: d.cal.Load(), Now: time.Now()})
		return err
	})
	if err != nil {
		writeDomainError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
