package daemon

import (
	"net/http"
	"time"

	"github.com/stationsync/stationsync/records"
)

// caseView is a case as the API shows it: with its deadline and overdue
// flag computed from the holiday calendar at the time of the request.
type caseView struct {
	records.Case
	Deadline *time.Time `json:"deadline"`
	Overdue  bool       `json:"overdue"`
}

func (d *Daemon) caseView(r *http.Request, c records.Case) caseView {
	v := caseView{Case: d.present(r, c)}
	if dl, ok := c.Deadline(d.cal, d.loc); ok {
		dl = dl.In(d.loc)
		v.Deadline = &dl
	}
	v.Overdue = c.Overdue(d.cal, d.loc, time.Now())
	return v
}

// workOrderView is a work order with its due time and overdue flag.
type workOrderView struct {
	records.WorkOrder
	Due     time.Time `json:"due"`
	Overdue bool      `json:"overdue"`
}

func (d *Daemon) workOrderView(w records.WorkOrder) workOrderView {
	return workOrderView{WorkOrder: w, Due: w.Due(d.cal, d.loc).In(d.loc), Overdue: w.Overdue(d.cal, d.loc, time.Now())}
}

func (d *Daemon) handleMonthlyStats(w http.ResponseWriter, r *http.Request) {
	month := r.URL.Query().Get("month")
	if month == "" {
		month = time.Now().In(d.loc).Format("2006-01")
	}
	var st records.MonthlyStats
	err := d.node.View(func(rd records.Reader) (err error) {
		st, err = records.ComputeMonthlyStats(rd, d.cfg.StationID, records.StatsQuery{Month: month, Location: d.loc, Calendar: d.cal, Now: time.Now()})
		return err
	})
	if err != nil {
		writeDomainError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
