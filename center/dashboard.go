package center

import (
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/stationsync/stationsync/daemon"
	"github.com/stationsync/stationsync/records"
)

// The dashboard at / of the center's API, for bureau staff: plain HTML
// and SVG rendered here (the district network has no internet; nothing is
// fetched from elsewhere, no script runs), Chinese labels, no personal
// data. It refreshes itself every 30 s.

// Flags for stations needing attention (DOMAIN.md: low use, low
// satisfaction). Low use: fewer cases received in the month than a third
// of the median station's. Low satisfaction: below 90 % with at least 5
// evaluations.
const (
	lowUseShare      = 1.0 / 3
	lowSatisfaction  = 0.90
	minEvaluationsLS = 5
)

type dashStation struct {
	stationView
	Name     string
	Stats    records.ItemStats
	LowUse   bool
	LowSat   bool
	Contact  string
	SyncText string
}

type dashWorkOrder struct {
	Station, ID, CaseID, Item, Level, State, Due string
	Overdue                                      bool
}

type dashboardData struct {
	Month, Prev, Next string
	Generated         string
	Stations          []dashStation
	Total             records.ItemStats
	InSync            int
	StationChart      template.HTML
	ItemChart         template.HTML
	WorkOrders        []dashWorkOrder
	OverdueWOs        int
}

func (c *Center) handleDashboard(w http.ResponseWriter, r *http.Request) {
	month, err := c.month(r)
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	data, err := c.dashboard(month)
	if err != nil {
		daemon.WriteDomainError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := dashboardPage.Execute(w, data); err != nil {
		c.logger.Warn("render dashboard", "error", err)
	}
}

func (c *Center) dashboard(month string) (dashboardData, error) {
	start, _, err := records.MonthRange(month, c.loc)
	if err != nil {
		return dashboardData{}, err
	}
	d := dashboardData{
		Month: month, Prev: start.AddDate(0, -1, 0).Format("2006-01"), Next: start.AddDate(0, 1, 0).Format("2006-01"),
		Generated: time.Now().In(c.loc).Format("2006-01-02 15:04:05"),
	}
	views, err := c.stationsView()
	if err != nil {
		return d, err
	}
	ds, err := c.districtStats(month)
	if err != nil {
		return d, err
	}
	d.Total = ds.Total
	byStation := map[string]records.MonthlyStats{}
	var volumes []int
	for _, ms := range ds.Stations {
		byStation[ms.Station] = ms
		volumes = append(volumes, ms.Total.Received)
	}
	median := medianOf(volumes)
	var stationBars []bar
	items := map[string]*bar{}
	for _, v := range views {
		ms := byStation[v.ID]
		s := dashStation{stationView: v, Name: c.stationName(v.ID), Stats: ms.Total}
		s.LowUse = median > 0 && float64(ms.Total.Received) < lowUseShare*median
		s.LowSat = ms.Total.Satisfaction != nil && ms.Total.Evaluated >= minEvaluationsLS && *ms.Total.Satisfaction < lowSatisfaction
		s.SyncText = map[string]string{"green": "正常", "amber": "滞后", "red": "异常"}[v.Sync]
		s.Contact = "从未"
		if v.LastContact != nil {
			s.Contact = agoText(time.Since(*v.LastContact))
		}
		if v.Sync == "green" {
			d.InSync++
		}
		d.Stations = append(d.Stations, s)
		stationBars = append(stationBars, bar{Label: s.Name, Value: float64(ms.Total.Received), Warn: s.LowUse})
		for _, it := range ms.Items {
			b := items[it.ItemCode]
			if b == nil {
				b = &bar{Label: it.ItemName}
				items[it.ItemCode] = b
			}
			b.Value += float64(it.Received)
		}
	}
	d.StationChart = barChart("各站点本月受理量（件）", stationBars)
	var itemBars []bar
	for _, b := range items {
		itemBars = append(itemBars, *b)
	}
	sort.SliceStable(itemBars, func(i, j int) bool {
		if itemBars[i].Value != itemBars[j].Value {
			return itemBars[i].Value > itemBars[j].Value
		}
		return itemBars[i].Label < itemBars[j].Label
	})
	if len(itemBars) > 15 {
		itemBars = itemBars[:15]
	}
	d.ItemChart = barChart("本月受理量最多的事项（全区，件）", itemBars)
	err = c.node.View(func(rd records.Reader) error {
		for _, st := range c.stations {
			list, err := records.ListWorkOrders(records.StationReader(rd, st.ID), "")
			if err != nil {
				return err
			}
			for _, wo := range list {
				if records.WorkOrderTerminal(wo.State) {
					continue
				}
				v := daemon.MakeWorkOrderView(wo, c.cal, c.loc)
				d.WorkOrders = append(d.WorkOrders, dashWorkOrder{Station: c.stationName(st.ID), ID: wo.ID, CaseID: wo.CaseID, Item: wo.ItemCode,
					Level: wo.Level, State: workOrderStateText(wo.State), Due: v.Due.Format("2006-01-02"), Overdue: v.Overdue})
				if v.Overdue {
					d.OverdueWOs++
				}
			}
		}
		return nil
	})
	slices.SortStableFunc(d.WorkOrders, func(a, b dashWorkOrder) int {
		if a.Overdue != b.Overdue {
			if a.Overdue {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Due, b.Due)
	})
	return d, err
}

func medianOf(v []int) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return float64(s[len(s)/2])
	}
	return float64(s[len(s)/2-1]+s[len(s)/2]) / 2
}

func agoText(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d 秒前", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d 分钟前", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d 小时前", int(d.Hours()))
	}
	return fmt.Sprintf("%d 天前", int(d.Hours()/24))
}

func workOrderStateText(s string) string {
	if t, ok := map[string]string{
		records.WorkOrderOpen: "待核实", records.WorkOrderVerifying: "核实中", records.WorkOrderRectifying: "整改中",
		records.WorkOrderReplied: "已回复", records.WorkOrderClosed: "已办结", records.WorkOrderInvalid: "无效差评",
		records.WorkOrderCannotRectify: "无法整改",
	}[s]; ok {
		return t
	}
	return s
}

// bar is one bar of a chart.
type bar struct {
	Label string
	Value float64
	Warn  bool // drawn in the warning colour
}

// barChart renders a horizontal bar chart as inline SVG.
func barChart(title string, bars []bar) template.HTML {
	const (
		labelW = 230
		plotW  = 420
		rowH   = 26
		top    = 34
	)
	h := top + rowH*max(len(bars), 1) + 10
	maxV := 0.0
	for _, b := range bars {
		maxV = math.Max(maxV, b.Value)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`,
		template.HTMLEscapeString(title), labelW+plotW+70, h, labelW+plotW+70, h)
	fmt.Fprintf(&sb, `<text x="0" y="18" font-size="15" font-weight="bold">%s</text>`, template.HTMLEscapeString(title))
	if len(bars) == 0 {
		fmt.Fprintf(&sb, `<text x="0" y="%d" font-size="13" fill="#666">本月暂无数据</text>`, top+16)
	}
	for i, b := range bars {
		y := top + i*rowH
		w := 0.0
		if maxV > 0 {
			w = b.Value / maxV * plotW
		}
		colour := "#2f6fb0"
		if b.Warn {
			colour = "#d9822b"
		}
		label := []rune(b.Label)
		if len(label) > 16 {
			label = append(label[:15], '…')
		}
		fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="13" text-anchor="end">%s</text>`, labelW-8, y+16, template.HTMLEscapeString(string(label)))
		fmt.Fprintf(&sb, `<rect class="bar" x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %g</title></rect>`,
			labelW, y+3, w, rowH-8, colour, template.HTMLEscapeString(b.Label), b.Value)
		fmt.Fprintf(&sb, `<text x="%.1f" y="%d" font-size="13">%g</text>`, float64(labelW)+w+6, y+16, b.Value)
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

func pct(p *float64) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", *p*100)
}

var dashboardPage = template.Must(template.New("dashboard").Funcs(template.FuncMap{"pct": pct}).Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="30">
<link rel="icon" href="data:,">
<title>政务服务站数据中心 {{.Month}}</title>
<style>
body{font-family:system-ui,"Microsoft YaHei","PingFang SC","Noto Sans CJK SC",sans-serif;margin:1.5em 2em;color:#222;background:#fafafa}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .5em}
.sub{color:#555}.tiles{display:flex;gap:1em;flex-wrap:wrap;margin:1em 0}
.tile{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.7em 1.1em;min-width:8em}
.tile b{display:block;font-size:1.6em}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ccc;padding:.35em .7em;text-align:left}
th{background:#eef3f8}td.n{text-align:right}
.dot{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin-right:.3em;vertical-align:middle}
.green{background:#1a7f37}.amber{background:#d9822b}.red{background:#c62828}
.flag{color:#b34700;font-weight:bold}.bad{color:#c62828;font-weight:bold}
.charts{display:flex;gap:2em;flex-wrap:wrap}.chart{background:#fff;border:1px solid #ddd;padding:.6em}
a{color:#2f6fb0}
</style></head><body>
<h1>政务服务站数据中心 · 区行政审批局</h1>
<p class="sub">统计月份 <b>{{.Month}}</b> · <a href="/?month={{.Prev}}">上月</a> · <a href="/?month={{.Next}}">下月</a> · 更新于 {{.Generated}} · 每 30 秒自动刷新</p>
<div class="tiles">
<div class="tile">站点<b id="tile-stations">{{len .Stations}}</b>同步正常 {{.InSync}}</div>
<div class="tile">本月受理<b id="tile-received">{{.Total.Received}}</b>办结 {{.Total.Completed}}</div>
<div class="tile">评价率<b>{{pct .Total.EvaluationRate}}</b>评价 {{.Total.Evaluated}} 件</div>
<div class="tile">满意率<b>{{pct .Total.Satisfaction}}</b>差评 {{.Total.BadReviews}} 件</div>
<div class="tile">未办结差评工单<b>{{len .WorkOrders}}</b>其中超期 <span{{if .OverdueWOs}} class="bad"{{end}}>{{.OverdueWOs}}</span></div>
</div>
<h2>站点同步与本月情况</h2>
<table id="stations">
<tr><th>站点</th><th>同步状态</th><th>最后联系</th><th>滞后（条）</th><th>受理</th><th>办结</th><th>超期</th><th>评价率</th><th>满意率</th><th>未办结工单</th><th>超期工单</th><th>提示</th></tr>
{{range .Stations}}<tr><td>{{.Name}}<br><small>{{.ID}}</small></td>
<td><span class="dot {{.Sync}}"></span>{{.SyncText}}{{if .LastError}}<br><small title="{{.LastError}}">连接失败</small>{{end}}{{range .Digests}}{{if not .Match}}<br><small class="bad">{{.Month}} 数据核对不一致（站点 {{.Station.Count}} 条，中心 {{.Center.Count}} 条）{{if .Persistent}}：站点缺少中心已有的记录，请核查{{else}}，正在重新读取{{end}}</small>{{end}}{{end}}</td>
<td>{{.Contact}}</td><td class="n">{{.LagEvents}}</td>
<td class="n">{{.Stats.Received}}</td><td class="n">{{.Stats.Completed}}</td><td class="n">{{.Stats.Overdue}}</td>
<td class="n">{{pct .Stats.EvaluationRate}}</td><td class="n">{{pct .Stats.Satisfaction}}</td>
<td class="n">{{.Stats.OpenWorkOrders}}</td><td class="n">{{if .Stats.OverdueWorkOrders}}<span class="bad">{{.Stats.OverdueWorkOrders}}</span>{{else}}0{{end}}</td>
<td>{{if .LowUse}}<span class="flag">使用量偏低</span> {{end}}{{if .LowSat}}<span class="flag">满意率偏低</span>{{end}}</td></tr>
{{end}}</table>
<h2>办件量</h2>
<div class="charts">{{.StationChart}}{{.ItemChart}}</div>
<h2>未办结的差评工单</h2>
<table id="workorders">
<tr><th>站点</th><th>工单</th><th>事项</th><th>评价</th><th>状态</th><th>整改期限</th></tr>
{{range .WorkOrders}}<tr><td>{{.Station}}</td><td>{{.ID}}</td><td>{{.Item}}</td><td>{{.Level}}</td><td>{{.State}}</td><td>{{if .Overdue}}<span class="bad">{{.Due}} 已超期</span>{{else}}{{.Due}}{{end}}</td></tr>
{{else}}<tr><td colspan="6">无</td></tr>{{end}}</table>
<p class="sub">导出：<a href="/v1/reports/monthly.xlsx?month={{.Month}}">月报 XLSX</a> · <a href="/v1/reports/monthly.csv?month={{.Month}}">CSV</a> · 数据接口 <a href="/v1/stations">/v1/stations</a> · <a href="/v1/stats/monthly?month={{.Month}}">/v1/stats/monthly</a> · <a href="/node">节点状态</a></p>
<p class="sub">提示规则：使用量偏低 = 本月受理量低于各站中位数的三分之一；满意率偏低 = 评价不少于 5 件且满意率低于 90%。个人信息不在本页显示。</p>
</body></html>`))
