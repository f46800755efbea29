package center

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stationsync/stationsync/daemon"
	"github.com/stationsync/stationsync/records"
)

// Routes adds the center's endpoints (API.md "Center adds") and the
// dashboard.
func (c *Center) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/stations", c.handleStations)
	mux.HandleFunc("POST /v1/tokens", c.handleNewToken)
	mux.HandleFunc("GET /v1/mirror", func(w http.ResponseWriter, r *http.Request) {
		daemon.WriteJSON(w, http.StatusOK, c.mirror.view())
	})
	mux.HandleFunc("GET /v1/cases", c.handleListCases)
	mux.HandleFunc("GET /v1/cases/{id}", c.handleGetCase)
	mux.HandleFunc("GET /v1/stats/monthly", c.handleMonthlyStats)
	mux.HandleFunc("GET /v1/workorders", c.handleListWorkOrders)
	mux.HandleFunc("POST /v1/cases/{id}/evaluations", c.handleEvaluation)
	mux.HandleFunc("POST /v1/workorders/{id}/events", c.handleWorkOrderEvent)
	mux.HandleFunc("GET /v1/catalogue/items", c.handleListCatalogue)
	mux.HandleFunc("PUT /v1/catalogue/items/{code}", c.handlePutCatalogueItem)
	mux.HandleFunc("GET /v1/reports/monthly.xlsx", c.handleReport)
	mux.HandleFunc("GET /v1/reports/monthly.csv", c.handleReport)
	mux.HandleFunc("GET /{$}", c.handleDashboard)
}

func (c *Center) handleStations(w http.ResponseWriter, r *http.Request) {
	views, err := c.stationsView()
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	daemon.WriteJSON(w, http.StatusOK, map[string]any{"stations": views})
}

// station reads ?station= and checks it names a configured station.
func (c *Center) station(r *http.Request) (string, error) {
	id := r.URL.Query().Get("station")
	var known []string
	for _, st := range c.stations {
		if st.ID == id {
			return id, nil
		}
		known = append(known, st.ID)
	}
	if id == "" {
		return "", records.Invalid("station", "is required: one of %s", strings.Join(known, ", "))
	}
	return "", records.Invalid("station", "%q is not a station of this center (%s)", id, strings.Join(known, ", "))
}

// month reads ?month=, this month by default.
func (c *Center) month(r *http.Request) (string, error) {
	m := r.URL.Query().Get("month")
	if m == "" {
		return time.Now().In(c.loc).Format("2006-01"), nil
	}
	if _, _, err := records.MonthRange(m, c.loc); err != nil {
		return "", err
	}
	return m, nil
}

func (c *Center) handleListCases(w http.ResponseWriter, r *http.Request) {
	st, err := c.station(r)
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	q := r.URL.Query()
	cq := records.CaseQuery{Month: q.Get("month"), Location: c.loc, ItemCode: q.Get("item"), State: q.Get("status"), After: q.Get("after")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			daemon.WriteDomainError(w, records.Invalid("limit", "%q must be a number from 1 to 1000", l))
			return
		}
		cq.Limit = n
	}
	var page records.CasePage
	err = c.node.View(func(rd records.Reader) (err error) {
		page, err = records.ListCases(records.StationReader(rd, st), cq)
		return err
	})
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	full := daemon.FullRequested(r)
	views := make([]daemon.CaseView, len(page.Cases))
	for i, cs := range page.Cases {
		views[i] = daemon.MakeCaseView(cs, c.cal, c.loc, full)
	}
	daemon.WriteCasePageJSON(w, views, map[string]any{"station": st, "next": page.Next})
}

func (c *Center) handleGetCase(w http.ResponseWriter, r *http.Request) {
	st, err := c.station(r)
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	var cs records.Case
	err = c.node.View(func(rd records.Reader) (err error) {
		cs, err = records.GetCase(records.StationReader(rd, st), r.PathValue("id"))
		return err
	})
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	daemon.WriteCaseJSON(w, http.StatusOK, daemon.MakeCaseView(cs, c.cal, c.loc, daemon.FullRequested(r)))
}

// DistrictStats is the month's statistics of every station and of the
// district.
type DistrictStats struct {
	Month    string                 `json:"month"`
	Stations []records.MonthlyStats `json:"stations"`
	Total    records.ItemStats      `json:"total"`
}

// districtStats computes every station's statistics of month and their
// sum, in one consistent read.
func (c *Center) districtStats(month string) (DistrictStats, error) {
	ds := DistrictStats{Month: month, Stations: []records.MonthlyStats{}}
	q := records.StatsQuery{Month: month, Location: c.loc, Calendar: c.cal, Now: time.Now()}
	err := c.node.View(func(rd records.Reader) error {
		for _, st := range c.stations {
			ms, err := records.ComputeMonthlyStats(records.StationReader(rd, st.ID), st.ID, q)
			if err != nil {
				return err
			}
			ds.Stations = append(ds.Stations, ms)
		}
		return nil
	})
	if err != nil {
		return ds, err
	}
	totals := make([]records.ItemStats, len(ds.Stations))
	for i, ms := range ds.Stations {
		totals[i] = ms.Total
	}
	ds.Total = records.SumStats(totals)
	ds.Total.ItemName = "全区合计"
	return ds, nil
}

// requestedStats computes the statistics of the month a request names
// (?month=, this month by default); on failure it has answered.
func (c *Center) requestedStats(w http.ResponseWriter, r *http.Request) (DistrictStats, bool) {
	month, err := c.month(r)
	if err == nil {
		var ds DistrictStats
		if ds, err = c.districtStats(month); err == nil {
			return ds, true
		}
	}
	daemon.WriteDomainError(w, err)
	return DistrictStats{}, false
}

func (c *Center) handleMonthlyStats(w http.ResponseWriter, r *http.Request) {
	ds, ok := c.requestedStats(w, r)
	if !ok {
		return
	}
	if r.URL.Query().Has("station") {
		st, err := c.station(r)
		if err != nil {
			daemon.WriteDomainError(w, err)
			return
		}
		for _, ms := range ds.Stations {
			if ms.Station == st {
				daemon.WriteJSON(w, http.StatusOK, ms)
				return
			}
		}
	}
	daemon.WriteJSON(w, http.StatusOK, ds)
}

func (c *Center) handleListWorkOrders(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	stations := c.stations
	if r.URL.Query().Has("station") {
		st, err := c.station(r)
		if err != nil {
			daemon.WriteDomainError(w, err)
			return
		}
		stations = slices.DeleteFunc(slices.Clone(stations), func(s daemon.StationRef) bool { return s.ID != st })
	}
	views := []daemon.WorkOrderView{}
	err := c.node.View(func(rd records.Reader) error {
		for _, st := range stations {
			list, err := records.ListWorkOrders(records.StationReader(rd, st.ID), status)
			if err != nil {
				return err
			}
			for _, wo := range list {
				views = append(views, daemon.MakeWorkOrderView(wo, c.cal, c.loc))
			}
		}
		return nil
	})
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	daemon.WriteJSON(w, http.StatusOK, map[string]any{"workorders": views})
}

func (c *Center) handleListCatalogue(w http.ResponseWriter, r *http.Request) {
	var items []records.Item
	err := c.node.View(func(rd records.Reader) (err error) {
		items, err = records.ListItems(rd)
		return err
	})
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	daemon.WriteJSON(w, http.StatusOK, map[string]any{"items": items})
}

// handlePutCatalogueItem creates or changes a district item; its version
// increases when it changes, and every station's leader fetches it.
func (c *Center) handlePutCatalogueItem(w http.ResponseWriter, r *http.Request) {
	var it records.Item
	if !daemon.DecodeBody(w, r, &it, c.bodyLimit(0)) {
		return
	}
	if err := it.PrepareWrite(r.PathValue("code"), records.OriginDistrict); err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	res, err := c.submit(r.Context(), records.Op{Kind: records.OpPublishItem, Item: &it})
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	daemon.WriteJSON(w, http.StatusOK, json.RawMessage(res.Value))
}

// bodyLimit is the bound of a request body: limits.max_body_bytes of the
// node's config, like every station route (1 MiB if Start has not set
// it), and never more than bound when bound > 0.
func (c *Center) bodyLimit(bound int64) int64 {
	limit := c.maxBody
	if limit <= 0 {
		limit = 1 << 20
	}
	if bound > 0 && limit > bound {
		limit = bound
	}
	return limit
}
