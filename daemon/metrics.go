package daemon

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is the node's Prometheus registry: request and write counters,
// plus gauges read from the node's status at scrape time.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	writes   *prometheus.HistogramVec
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stationsync_http_requests_total", Help: "Local API requests by route pattern and status code.",
		}, []string{"route", "code"}),
		writes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stationsync_write_seconds", Help: "Time from a write's arrival to its commit and apply on this node.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.requests, m.writes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		statusCollector{d})
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) observeRequest(r *http.Request, code int, _ time.Duration) {
	route := r.Pattern
	if route == "" || route == "/" {
		route = "other"
	}
	// "GET /v1/cases/{id}" -> "/v1/cases/{id}"; the method is its own part of the route
	if _, p, ok := strings.Cut(route, " "); ok {
		route = r.Method + " " + p
	}
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

func (m *metrics) observeWrite(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.writes.WithLabelValues(result).Observe(d.Seconds())
}

// statusCollector exports the replication status as gauges.
type statusCollector struct{ d *Daemon }

var (
	descState       = prometheus.NewDesc("stationsync_raft_state", "1 for the node's current raft state.", []string{"state"}, nil)
	descTerm        = prometheus.NewDesc("stationsync_raft_term", "Current raft term.", nil, nil)
	descApplied     = prometheus.NewDesc("stationsync_raft_applied_index", "Last raft index applied on this node.", nil, nil)
	descCommit      = prometheus.NewDesc("stationsync_raft_commit_index", "Last raft index known committed.", nil, nil)
	descMembers     = prometheus.NewDesc("stationsync_raft_members", "Members of the raft configuration by suffrage and reachability.", []string{"suffrage", "reachable"}, nil)
	descSeq         = prometheus.NewDesc("stationsync_feed_seq", "Last change-feed sequence number.", nil, nil)
	descLeader      = prometheus.NewDesc("stationsync_raft_has_leader", "1 when a leader is known.", nil, nil)
	descOutbox      = prometheus.NewDesc("stationsync_outbox_pending", "Case writes waiting in this node's outbox for the leader.", nil, nil)
	descOldest      = prometheus.NewDesc("stationsync_outbox_oldest_age_seconds", "How long the oldest write in the outbox has waited (0 when empty).", nil, nil)
	descDiskFree    = prometheus.NewDesc("stationsync_disk_free_bytes", "Free space on data_dir's disk at the disk guard's last check.", nil, nil)
	descDiskReserve = prometheus.NewDesc("stationsync_disk_reserve_bytes", "Free space below which the node stops writes (disk_reserve_mb).", nil, nil)
	descDiskStopped = prometheus.NewDesc("stationsync_disk_writes_stopped", "1 while the disk guard holds writes (disk nearly full).", nil, nil)
)

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descTerm, descApplied, descCommit, descMembers, descSeq, descLeader, descOutbox, descOldest, descDiskFree, descDiskReserve, descDiskStopped} {
		ch <- d
	}
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.node.Status()
	for _, st := range []string{"leader", "follower", "candidate", "shutdown"} {
		v := 0.0
		if s.State == st {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, st)
	}
	ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(s.Term))
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(s.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(descCommit, prometheus.GaugeValue, float64(s.CommitIndex))
	ch <- prometheus.MustNewConstMetric(descSeq, prometheus.GaugeValue, float64(s.Seq))
	hasLeader := 0.0
	if s.Leader != "" {
		hasLeader = 1
	}
	ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, hasLeader)
	ob := outboxView(s.Outbox)
	ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(ob.Pending))
	ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, ob.AgeSecs)
	ds := c.d.disk.state()
	stopped := 0.0
	if ds.Low {
		stopped = 1
	}
	ch <- prometheus.MustNewConstMetric(descDiskFree, prometheus.GaugeValue, float64(ds.Free))
	ch <- prometheus.MustNewConstMetric(descDiskReserve, prometheus.GaugeValue, float64(ds.Reserve))
	ch <- prometheus.MustNewConstMetric(descDiskStopped, prometheus.GaugeValue, stopped)
	counts := map[[2]string]int{}
	for _, m := range s.Members {
		counts[[2]string{m.Suffrage, strconv.FormatBool(m.Reachable)}]++
	}
	for k, v := range counts {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(v), k[0], k[1])
	}
}
