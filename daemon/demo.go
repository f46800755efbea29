package daemon

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stationsync/stationsync/configs"
	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/records/itemfile"
)

// DemoOptions configures RunDemo.
type DemoOptions struct {
	Dir      string // data, certificates and configs; kept between runs
	BasePort int    // API of node i is BasePort+i-1, QUIC BasePort-70+i-1; the center BasePort+3
	Out      io.Writer
	// Center, if set, makes the district center's extension: the demo then
	// also runs a center that pulls the station.
	Center func() Extension
}

const demoNodes = 3

// RunDemo runs a station of three nodes on loopback with a generated CA
// and the embedded sample item list, prints where to look, and stops when
// ctx ends. Its folder is kept, so a second run restarts the same station.
func RunDemo(ctx context.Context, o DemoOptions) error {
	if o.BasePort < 1100 || o.BasePort > 65000 {
		return fmt.Errorf("--base-port %d: must be between 1100 and 65000", o.BasePort)
	}
	park, err := demoPark()
	if err != nil {
		return err
	}
	station := "XC-IP-01"
	caDir := filepath.Join(o.Dir, "ca")
	if _, err := os.Stat(filepath.Join(caDir, "ca.key")); errors.Is(err, os.ErrNotExist) {
		if err := pki.InitCA(caDir); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	var peers []string
	for i := 0; i < demoNodes; i++ {
		peers = append(peers, fmt.Sprintf("127.0.0.1:%d", o.BasePort-70+i))
	}
	centerQUIC := fmt.Sprintf("127.0.0.1:%d", o.BasePort-70+demoNodes)
	centerLine := ""
	if o.Center != nil {
		centerLine = fmt.Sprintf("center: %s\ncatalogue_interval: 5s\n", centerQUIC)
	}
	var daemons []*Daemon
	defer func() {
		for i := len(daemons) - 1; i >= 0; i-- {
			daemons[i].Close()
		}
	}()
	for i := 0; i < demoNodes; i++ {
		node := fmt.Sprintf("pc-%d", i+1)
		dir := filepath.Join(o.Dir, node)
		if _, err := os.Stat(filepath.Join(dir, "node.crt")); errors.Is(err, os.ErrNotExist) {
			if err := pki.Issue(caDir, pki.Identity{Role: pki.RoleStation, Station: station, Node: node}, dir, 365*24*time.Hour); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
		}
		cfgPath := filepath.Join(dir, "station.yaml")
		cfgText := fmt.Sprintf(`# written by stationsync demo
role: station
station_id: %s
node_id: %s
data_dir: data
listen: %s
api: 127.0.0.1:%d
expect: %d
peers: [%s, %s, %s]
mdns: false
tls: {ca: ca.crt, cert: node.crt, key: node.key}
%s`, station, node, peers[i], o.BasePort+i, demoNodes, peers[0], peers[1], peers[2], centerLine)
		if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		cfg, err := LoadConfig(cfgPath, nil, nil)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		logf, err := os.OpenFile(filepath.Join(dir, "node.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer logf.Close()
		d := New(cfg, NewLogger(cfg.Log, logf))
		if err := d.Open(); err != nil {
			return fmt.Errorf("demo: start %s: %w", node, err)
		}
		daemons = append(daemons, d)
	}

	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	leader, err := daemons[0].Node().WaitLeader(wctx)
	if err != nil {
		return fmt.Errorf("demo: the station elected no leader within 30 s (logs in %s/pc-*/node.log): %w", o.Dir, err)
	}
	items, err := itemfile.Read(bytes.NewReader(configs.SampleItems), itemfile.CSV, records.OriginDistrict, 1)
	if err != nil {
		return fmt.Errorf("demo: sample items: %w", err)
	}
	ops := make([]records.Op, len(items))
	for i := range items {
		ops[i] = records.Op{Kind: records.OpPutItem, Item: &items[i]}
	}
	if _, err := daemons[0].Node().Submit(wctx, ops); err != nil {
		return fmt.Errorf("demo: load sample items: %w", err)
	}
	nCases, err := seedDemoCases(wctx, daemons[1].Node(), station, time.Now())
	if err != nil {
		return fmt.Errorf("demo: sample cases: %w", err)
	}
	var center *Daemon
	if o.Center != nil {
		if center, err = startDemoCenter(wctx, o, caDir, centerQUIC, station, park[2], peers, items); err != nil {
			return err
		}
		defer center.Close()
	}

	w := o.Out
	fmt.Fprintf(w, "stationsync demo: station %s — %s %s（%s）\n", station, park[1], park[2], park[3])
	fmt.Fprintf(w, "3 nodes on loopback, raft over QUIC with mutual TLS, leader %s; %d sample items and %d sample cases (DEMO-*) loaded\n\n", leader, len(items), nCases)
	for i, d := range daemons {
		fmt.Fprintf(w, "  pc-%d  API %s/v1/status   status page %s/   QUIC %s\n", i+1, d.APIURL(), d.APIURL(), peers[i])
	}
	if center != nil {
		fmt.Fprintf(w, "  district center  dashboard %s/   stations %s/v1/stations   report %s/v1/reports/monthly.xlsx   QUIC %s\n",
			center.APIURL(), center.APIURL(), center.APIURL(), centerQUIC)
	}
	fmt.Fprintf(w, `
Try (a case written on pc-2 is on every PC at once):
  curl -s %[1]s/v1/items
  curl -s -X POST %[2]s/v1/cases -d '{"item_code":"XC-S-0005","channel":"window","actor":"clerk-07","applicant":{"kind":"person","name":"张三","id_type":"111","id_number":"320507199001011234","phone":"13912345678"}}'
  curl -s %[3]s/v1/cases
  curl -s '%[1]s/v1/stats/monthly'
  curl -s '%[1]s/v1/workorders?status=open'
  curl -s '%[1]s/v1/feed?since=0'

Data, certificates, configs and logs: %[4]s (kept; run again to restart the same station)
Ctrl-C stops.
`, daemons[0].APIURL(), daemons[1].APIURL(), daemons[2].APIURL(), o.Dir)
	<-ctx.Done()
	fmt.Fprintln(w, "\nstopping...")
	return nil
}

// startDemoCenter starts the district center of the demo, which pulls
// the station and publishes the sample items as the district catalogue.
func startDemoCenter(ctx context.Context, o DemoOptions, caDir, quic, station, name string, peers []string, items []records.Item) (*Daemon, error) {
	dir := filepath.Join(o.Dir, "center")
	if _, err := os.Stat(filepath.Join(dir, "node.crt")); errors.Is(err, os.ErrNotExist) {
		if err := pki.Issue(caDir, pki.Identity{Role: pki.RoleCenter, Node: "center-1"}, dir, 365*24*time.Hour); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	cfgPath := filepath.Join(dir, "center.yaml")
	cfgText := fmt.Sprintf(`# written by stationsync demo
role: center
node_id: center-1
data_dir: data
listen: %s
api: 127.0.0.1:%d
expect: 1
mdns: false
tls: {ca: ca.crt, cert: node.crt, key: node.key}
pull_interval: 2s
stations:
  - {id: %s, name: %q, addresses: [%s]}
`, quic, o.BasePort+demoNodes, station, name, strings.Join(peers, ", "))
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	cfg, err := LoadConfig(cfgPath, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "node.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	c := New(cfg, NewLogger(cfg.Log, logf), WithExtension(o.Center()))
	if err := c.Open(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("demo: start the center: %w", err)
	}
	if _, err := c.Node().WaitLeader(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("demo: the center elected no leader: %w", err)
	}
	ops := make([]records.Op, len(items))
	for i := range items {
		it := items[i]
		ops[i] = records.Op{Kind: records.OpPublishItem, Item: &it}
	}
	if _, err := c.Node().Submit(ctx, ops); err != nil {
		c.Close()
		return nil, fmt.Errorf("demo: publish the district catalogue: %w", err)
	}
	return c, nil
}

// demoPark returns the first industrial park of the embedded annex.
func demoPark() ([]string, error) {
	rows, err := csv.NewReader(bytes.NewReader(configs.IndustrialParks)).ReadAll()
	if err != nil || len(rows) < 2 || len(rows[1]) < 4 {
		return nil, fmt.Errorf("demo: embedded industrial-parks.csv is unreadable: %v", err)
	}
	return rows[1], nil
}
