package daemon

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication"
)

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", d.handleStatus)
	mux.HandleFunc("GET /v1/members", d.handleListMembers)
	mux.HandleFunc("DELETE /v1/members/{id}", d.handleRemoveMember)
	mux.Handle("GET /metrics", d.metrics.handler())
	mux.HandleFunc("GET /v1/backup", d.handleBackup)
	if d.isCenter() {
		mux.HandleFunc("GET /node", d.handleStatusPage)
		d.ext.Routes(mux)
	} else {
		d.stationRoutes(mux)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return d.guard(d.refuseCrossSite(mux))
}

// stationRoutes are the endpoints of a station node.
func (d *Daemon) stationRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/items", d.handleListItems)
	mux.HandleFunc("GET /v1/items/{code}", d.handleGetItem)
	mux.HandleFunc("PUT /v1/items/{code}", d.handlePutItem)
	mux.HandleFunc("POST /v1/items/import", d.handleImportItems)
	mux.HandleFunc("POST /v1/cases", d.handleCreateCase)
	mux.HandleFunc("GET /v1/cases", d.handleListCases)
	mux.HandleFunc("GET /v1/cases/{id}", d.handleGetCase)
	mux.HandleFunc("POST /v1/cases/{id}/events", d.handleCaseEvent)
	mux.HandleFunc("POST /v1/cases/{id}/evaluations", d.handleEvaluation)
	mux.HandleFunc("GET /v1/workorders", d.handleListWorkOrders)
	mux.HandleFunc("GET /v1/workorders/{id}", d.handleGetWorkOrder)
	mux.HandleFunc("POST /v1/workorders/{id}/events", d.handleWorkOrderEvent)
	mux.HandleFunc("GET /v1/stats/monthly", d.handleMonthlyStats)
	mux.HandleFunc("GET /v1/feed", d.handleFeed)
	mux.HandleFunc("GET /v1/conflicts", d.handleListConflicts)
	mux.HandleFunc("POST /v1/conflicts/{id}/resolve", d.handleResolveConflict)
	mux.HandleFunc("GET /{$}", d.handleStatusPage)
}

// guard refuses requests from other hosts without the API token, and
// counts requests for /metrics.
func (d *Daemon) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.authorized(r) {
			writeError(w, http.StatusUnauthorized, "unauthorized", "requests from other hosts need the API token (Authorization: Bearer ...)")
			return
		}
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		start := time.Now()
		if d.refuseWhenDiskLow(sw, r) {
			d.metrics.observeRequest(r, sw.code, time.Since(start))
			return
		}
		next.ServeHTTP(sw, r)
		d.metrics.observeRequest(r, sw.code, time.Since(start))
	})
}

func (d *Daemon) authorized(r *http.Request) bool {
	if d.token != "" {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok &&
			subtle.ConstantTimeCompare([]byte(tok), []byte(d.token)) == 1 {
			return true
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// apiError is the body of every error answer.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Field   string `json:"field,omitempty"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, errCode, msg string) {
	var e apiError
	e.Error.Code, e.Error.Message = errCode, msg
	writeJSON(w, code, e)
}

// WriteJSON answers code with v as JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) { writeJSON(w, code, v) }

// WriteError answers code with {"error":{"code","message"}}.
func WriteError(w http.ResponseWriter, code int, errCode, msg string) {
	writeError(w, code, errCode, msg)
}

// WriteDomainError answers a records.Error with its 4xx, and any other
// write failure with 503 or 500.
func WriteDomainError(w http.ResponseWriter, err error) { writeDomainError(w, err) }

// writeDomainError answers a records.Error (or a write failure).
func writeDomainError(w http.ResponseWriter, err error) {
	if de, ok := records.AsError(err); ok {
		var e apiError
		e.Error.Code, e.Error.Field, e.Error.Message = de.Code, de.Field, de.Error()
		code := http.StatusBadRequest
		switch de.Code {
		case records.CodeNotFound:
			code = http.StatusNotFound
		case records.CodeConflict:
			code = http.StatusConflict
		}
		writeJSON(w, code, e)
		return
	}
	switch {
	case errors.Is(err, replication.ErrNoLeader):
		writeError(w, http.StatusServiceUnavailable, "no_leader", "this write needs the station's leader and none is reachable from this PC ("+err.Error()+"): item edits and work-order steps wait for the network; new cases, case events and evaluations are still accepted (kept in this PC's outbox); try again later")
	case errors.Is(err, replication.ErrOutcomeUnknown):
		writeError(w, http.StatusServiceUnavailable, "no_leader", "the station's leader did not answer ("+err.Error()+"): the write may or may not have been made; repeat the same request when the network is back (an item edit repeated changes nothing; send a work-order step with its id to make a repeat safe)")
	case errors.Is(err, replication.ErrNotQueueable):
		writeError(w, http.StatusServiceUnavailable, "no_leader", err.Error())
	case errors.Is(err, replication.ErrWritesPaused):
		writeError(w, http.StatusInsufficientStorage, "disk_full", err.Error()+": free space on it; writes resume by themselves")
	case errors.Is(err, replication.ErrTooLarge):
		writeError(w, http.StatusBadRequest, "too_large", err.Error())
	case errors.Is(err, replication.ErrClosed), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// decodeBody reads one JSON object into v: bounded size, no unknown
// fields, no trailing data. A failure has already been answered with 400.
func (d *Daemon) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	return DecodeBody(w, r, v, d.cfg.Limits.MaxBodyBytes)
}

// DecodeBody reads one JSON object into v: at most limit bytes, no unknown
// fields, no trailing data. A failure has already been answered with 400
// naming what is wrong.
func DecodeBody(w http.ResponseWriter, r *http.Request, v any, limit int64) bool {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	if err == nil {
		return true
	}
	var (
		maxErr  *http.MaxBytesError
		typeErr *json.UnmarshalTypeError
		synErr  *json.SyntaxError
	)
	var e apiError
	e.Error.Code = records.CodeInvalid
	switch {
	case errors.As(err, &maxErr):
		e.Error.Message = fmt.Sprintf("request body is larger than the limit of %d bytes", limit)
	case errors.As(err, &typeErr):
		e.Error.Field = typeErr.Field
		e.Error.Message = fmt.Sprintf("%s: expected %s, got a JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case errors.As(err, &synErr):
		e.Error.Message = fmt.Sprintf("body is not valid JSON (at byte %d): %v", synErr.Offset, synErr)
	case errors.Is(err, io.EOF):
		e.Error.Message = "request body is empty: a JSON object is required"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json quotes the name with strconv.Quote: unquote it,
		// so a field with a control character is named as sent.
		q := strings.TrimPrefix(err.Error(), "json: unknown field ")
		f, uerr := strconv.Unquote(q)
		if uerr != nil {
			f = strings.Trim(q, `"`)
		}
		e.Error.Field = f
		e.Error.Message = fmt.Sprintf("unknown field %q", f)
	default:
		e.Error.Message = "bad request body: " + err.Error()
	}
	writeJSON(w, http.StatusBadRequest, e)
	return false
}

// statusBody is GET /v1/status.
type statusBody struct {
	Node       string               `json:"node"`
	Station    string               `json:"station"`
	Role       string               `json:"role"`
	Version    string               `json:"version"`
	Uptime     string               `json:"uptime"`
	Raft       raftStatus           `json:"raft"`
	Members    []replication.Member `json:"members"`
	Discovered []discoveredPeer     `json:"discovered"`
	Feed       feedStatus           `json:"feed"`
	Outbox     outboxStatus         `json:"outbox"`
	// Conflicts counts the open conflicts (/v1/conflicts).
	Conflicts int `json:"conflicts"`
	// Warnings are problems an admin should look at (clock skew).
	Warnings []string `json:"warnings"`
	// Center is the station's contact with the district center.
	Center centerStatus `json:"center"`
	// Certificate is this node's certificate: when it expires and the last
	// renewal error.
	Certificate certStatus `json:"certificate"`
	// Disk is the free space of data_dir's disk and whether the disk guard
	// stopped writes (diskguard.go).
	Disk diskStatus `json:"disk"`
}

type diskStatus struct {
	DataDir string `json:"data_dir"`
	diskState
}

type certStatus struct {
	NotAfter     time.Time `json:"not_after"`
	DaysLeft     int       `json:"days_left"`
	RenewalError string    `json:"renewal_error,omitempty"`
}

// centerStatus: when the center last read this station's feed or served
// it the catalogue, and the last catalogue error.
type centerStatus struct {
	Address     string     `json:"address,omitempty"`
	LastContact *time.Time `json:"last_contact"`
	LastError   string     `json:"last_error,omitempty"`
	// SettingsVersion is the version of the center's settings in use
	// (holiday calendar, work-order due days); "" while none arrived.
	SettingsVersion string `json:"settings_version"`
	WorkOrderDays   int    `json:"work_order_days"`
}

// outboxStatus: the writes waiting in this PC's outbox.
type outboxStatus struct {
	Pending int        `json:"pending"`
	Oldest  *time.Time `json:"oldest"`      // when the oldest was queued; null when empty
	AgeSecs float64    `json:"age_seconds"` // how long it has waited
}

type raftStatus struct {
	State         string `json:"state"`
	Term          uint64 `json:"term"`
	Leader        string `json:"leader"`
	LeaderAddress string `json:"leader_address"`
	AppliedIndex  uint64 `json:"applied_index"`
	CommitIndex   uint64 `json:"commit_index"`
	LastLogIndex  uint64 `json:"last_log_index"`
	Address       string `json:"address"`
}

type feedStatus struct {
	ClusterID string `json:"cluster_id"`
	Seq       uint64 `json:"seq"`
}

func (d *Daemon) status() statusBody {
	s := d.node.Status()
	return statusBody{
		Node: s.Node, Station: s.Station, Role: d.cfg.Role, Version: Version,
		Uptime: time.Since(d.start).Round(time.Second).String(),
		Raft: raftStatus{
			State: s.State, Term: s.Term, Leader: s.Leader, LeaderAddress: s.LeaderAddress,
			AppliedIndex: s.AppliedIndex, CommitIndex: s.CommitIndex, LastLogIndex: s.LastLogIndex, Address: s.Address,
		},
		Members:     s.Members,
		Discovered:  d.discovered(),
		Feed:        feedStatus{ClusterID: s.ClusterID, Seq: s.Seq},
		Outbox:      outboxView(s.Outbox),
		Conflicts:   d.openConflicts(),
		Warnings:    append(append(d.clockWarnings(s.Members), d.certWarnings()...), d.diskWarnings()...),
		Center:      d.centerStatus(),
		Certificate: d.certStatus(),
		Disk:        diskStatus{DataDir: d.cfg.DataDir, diskState: d.disk.state()},
	}
}

func (d *Daemon) certStatus() certStatus {
	leaf := d.tls.Leaf()
	return certStatus{NotAfter: leaf.NotAfter, DaysLeft: int(time.Until(leaf.NotAfter).Hours() / 24), RenewalError: d.renewErr.Load().(string)}
}

// certWarnings warns 30 days before this node's certificate expires.
func (d *Daemon) certWarnings() []string {
	cs := d.certStatus()
	if time.Until(cs.NotAfter) >= 30*24*time.Hour {
		return nil
	}
	w := fmt.Sprintf("this node's certificate expires on %s (%d days left)", cs.NotAfter.Format("2006-01-02"), cs.DaysLeft)
	switch {
	case cs.RenewalError != "":
		w += ": renewal at the center fails: " + cs.RenewalError
	case d.cfg.Center == "":
		w += ": no center: is set to renew it; issue a new one with `stationsync ca issue` and replace node.crt and node.key"
	default:
		w += ": it is renewed at the center automatically"
	}
	return []string{w}
}

func (d *Daemon) centerStatus() centerStatus {
	last, lastErr := d.center.get()
	cs := centerStatus{Address: d.cfg.Center, LastError: lastErr, SettingsVersion: d.setVer.Load().(string), WorkOrderDays: int(d.wod.Load())}
	if !last.IsZero() {
		cs.LastContact = &last
	}
	return cs
}

func outboxView(o replication.OutboxStatus) outboxStatus {
	v := outboxStatus{Pending: o.Pending}
	if !o.Oldest.IsZero() {
		v.Oldest = &o.Oldest
		v.AgeSecs = time.Since(o.Oldest).Seconds()
	}
	return v
}

// clockWarnings names the members whose clock differs from this PC's by
// more than max_clock_skew.
func (d *Daemon) clockWarnings(members []replication.Member) []string {
	out := []string{}
	limit := time.Duration(d.cfg.MaxClockSkew)
	for _, m := range members {
		off := time.Duration(m.ClockOffsetMS) * time.Millisecond
		if off > limit || -off > limit {
			out = append(out, fmt.Sprintf("clock of %s differs from this PC's by %s (more than max_clock_skew %s): set both clocks right (NTP); events are still ordered by the hybrid clock", m.ID, off.Round(time.Millisecond), limit))
		}
	}
	return out
}

func (d *Daemon) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, d.status())
}

func (d *Daemon) handleListItems(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("format") {
		f, err := itemFileFormat(r)
		if err != nil {
			writeDomainError(w, err)
			return
		}
		d.handleExportItems(w, r, f)
		return
	}
	items, err := d.listItems()
	if err != nil {
		writeDomainError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (d *Daemon) handleGetItem(w http.ResponseWriter, r *http.Request) {
	var it records.Item
	err := d.node.View(func(rd records.Reader) (err error) {
		it, err = records.GetItem(rd, r.PathValue("code"))
		return err
	})
	if err != nil {
		writeDomainError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, it)
}

func (d *Daemon) handlePutItem(w http.ResponseWriter, r *http.Request) {
	var it records.Item
	if !d.decodeBody(w, r, &it) {
		return
	}
	if err := it.PrepareWrite(r.PathValue("code"), records.OriginLocal); err != nil {
		writeDomainError(w, err)
		return
	}
	res, ok := d.submitOne(w, r, records.Op{Kind: records.OpPutItem, Item: &it})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, json.RawMessage(res.Value))
}

// submitOne writes one op and answers any failure; ok is false when it did.
func (d *Daemon) submitOne(w http.ResponseWriter, r *http.Request, op records.Op) (replication.Result, bool) {
	start := time.Now()
	results, err := d.node.Submit(r.Context(), []records.Op{op})
	d.metrics.observeWrite(time.Since(start), err)
	if err != nil {
		writeDomainError(w, err)
		return replication.Result{}, false
	}
	res := results[0]
	if res.Error != nil {
		writeDomainError(w, res.Error)
		return res, false
	}
	return res, true
}

// caseBody is POST /v1/cases.
type caseBody struct {
	ID         string             `json:"id"`
	ItemCode   string             `json:"item_code"`
	Channel    string             `json:"channel"`
	Actor      string             `json:"actor"`
	Applicant  *records.Applicant `json:"applicant"`
	Agent      *records.Applicant `json:"agent"`
	Tolerance  bool               `json:"tolerance"`
	Commitment bool               `json:"commitment"`
}

func (d *Daemon) handleCreateCase(w http.ResponseWriter, r *http.Request) {
	var b caseBody
	if !d.decodeBody(w, r, &b) {
		return
	}
	if b.Applicant == nil {
		writeDomainError(w, records.Invalid("applicant", "is required"))
		return
	}
	c := records.Case{
		ID: b.ID, ItemCode: b.ItemCode, Channel: b.Channel, Actor: b.Actor, Applicant: *b.Applicant,
		Agent: b.Agent, Tolerance: b.Tolerance, Commitment: b.Commitment,
	}
	if err := c.Validate(); err != nil {
		writeDomainError(w, err)
		return
	}
	// Whether the item is on the list is decided when the case is applied
	// (this PC's copy of the list may lag by a moment): online, an unknown
	// item is refused (400); a case kept offline for an item the station
	// no longer has is kept as a conflict.
	records.PrepareCase(&c, d.cfg.StationID, d.cfg.NodeID, d.clock.Now())
	d.answerCase(w, r, records.Op{Kind: records.OpCreateCase, Case: &c}, c.ID, nil)
}

func (d *Daemon) handleGetCase(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, found, err := d.caseWithPending(id)
	if err == nil && !found {
		err = records.NotFound("case %q not found", id)
	}
	if err != nil {
		writeDomainError(w, err)
		return
	}
	WriteCaseJSON(w, http.StatusOK, d.caseView(r, c))
}

// handleListCases lists the committed cases, with this PC's pending
// writes merged in; the first page starts with the cases created here
// that are still pending.
func (d *Daemon) handleListCases(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cq := records.CaseQuery{Month: q.Get("month"), Location: d.loc, ItemCode: q.Get("item"), State: q.Get("status"), After: q.Get("after")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			writeDomainError(w, records.Invalid("limit", "%q must be a number from 1 to 1000", l))
			return
		}
		cq.Limit = n
	}
	ops, err := d.pendingOps("")
	if err != nil {
		writeDomainError(w, err)
		return
	}
	var page records.CasePage
	var fresh []records.Case
	err = d.node.View(func(rd records.Reader) (err error) {
		if page, err = records.ListCases(rd, cq); err != nil || len(ops) == 0 {
			return err
		}
		if cq.After == "" {
			if fresh, err = records.PendingCases(rd, ops, cq); err != nil {
				return err
			}
		}
		for i, c := range page.Cases {
			if page.Cases[i], _, err = records.WithPending(rd, &c, opsFor(ops, c.ID)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		writeDomainError(w, err)
		return
	}
	views := make([]CaseView, 0, len(fresh)+len(page.Cases))
	for _, c := range append(fresh, page.Cases...) {
		views = append(views, d.caseView(r, c))
	}
	WriteCasePageJSON(w, views, map[string]any{"next": page.Next})
}

// opsFor picks the writes for case id.
func opsFor(ops []records.Op, id string) []records.Op {
	var out []records.Op
	for _, op := range ops {
		if records.CaseOf(op) == id {
			out = append(out, op)
		}
	}
	return out
}

func (d *Daemon) handleFeed(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since uint64
	if s := q.Get("since"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeDomainError(w, records.Invalid("since", "%q must be a whole number", s))
			return
		}
		since = v
	}
	limit := 100
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			writeDomainError(w, records.Invalid("limit", "%q must be a number from 1 to 1000", l))
			return
		}
		limit = n
	}
	page, err := d.node.Feed(since, limit)
	if err != nil {
		writeDomainError(w, err)
		return
	}
	full := q.Get("full") == "1" || q.Get("full") == "true"
	for i := range page.Changes {
		if page.Changes[i].Change, err = records.MaskChange(page.Changes[i].Change, full); err != nil {
			writeDomainError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, page)
}
