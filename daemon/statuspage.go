package daemon

import (
	"html/template"
	"net/http"
)

// The status page for admins: plain HTML, refreshes itself, no scripts,
// nothing fetched from outside (stations have no internet). It shows no
// personal data.
var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>stationsync {{.Station}} / {{.Node}}</title>
<style>
body{font-family:system-ui,"Microsoft YaHei",sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .8em;text-align:left}
th{background:#f3f3f3}.ok{color:#1a7f37}.bad{color:#c62828;font-weight:bold}
</style></head><body>
<h1>stationsync 节点状态 / node status</h1>
{{range .Warnings}}<p class="bad">⚠ {{.}}</p>{{end}}
<table>
<tr><th>站点 station</th><td>{{.Station}}</td></tr>
<tr><th>节点 node</th><td>{{.Node}} ({{.Raft.Address}})</td></tr>
<tr><th>角色 raft state</th><td>{{.Raft.State}}</td></tr>
<tr><th>主节点 leader</th><td>{{if .Raft.Leader}}<span class="ok">{{.Raft.Leader}}</span> ({{.Raft.LeaderAddress}}){{else}}<span class="bad">无 none</span>{{end}}</td></tr>
<tr><th>任期 term</th><td>{{.Raft.Term}}</td></tr>
<tr><th>已应用 applied index</th><td>{{.Raft.AppliedIndex}}</td></tr>
<tr><th>已提交 commit index</th><td>{{.Raft.CommitIndex}}</td></tr>
<tr><th>变更序号 feed seq</th><td>{{.Feed.Seq}} (cluster {{.Feed.ClusterID}})</td></tr>
<tr><th>待同步 outbox</th><td>{{if .Outbox.Pending}}<span class="bad">{{.Outbox.Pending}} pending, oldest queued {{.Outbox.Oldest.Format "2006-01-02 15:04:05"}}</span> (kept on this PC, delivered when the leader is reachable){{else}}<span class="ok">0</span>{{end}}</td></tr>
<tr><th>冲突 conflicts</th><td>{{if .Conflicts}}<a class="bad" href="/v1/conflicts">{{.Conflicts}} open: to resolve</a>{{else}}<span class="ok">0</span>{{end}}</td></tr>
<tr><th>版本 version</th><td>{{.Version}}, up {{.Uptime}}</td></tr>
</table>
<h2>成员 members</h2>
<table><tr><th>id</th><th>address</th><th>suffrage</th><th>reachable</th><th>clock offset</th></tr>
{{range .Members}}<tr><td>{{.ID}}</td><td>{{.Address}}</td><td>{{.Suffrage}}</td><td>{{if .Reachable}}<span class="ok">yes</span>{{else}}<span class="bad">no</span>{{end}}</td><td>{{.ClockOffsetMS}} ms</td></tr>
{{else}}<tr><td colspan="5">not in a cluster yet</td></tr>{{end}}
</table>
<h2>发现的节点 discovered peers</h2>
<table><tr><th>node</th><th>station</th><th>address</th><th>source</th><th>last seen</th></tr>
{{range .Discovered}}<tr><td>{{.Node}}</td><td>{{.Station}}</td><td>{{.Address}}</td><td>{{.Source}}</td><td>{{if not .LastSeen.IsZero}}{{.LastSeen.Format "15:04:05"}}{{end}}</td></tr>
{{else}}<tr><td colspan="5">none</td></tr>{{end}}
</table>
<p>JSON: <a href="/v1/status">/v1/status</a> · <a href="/v1/items">/v1/items</a> · <a href="/v1/cases">/v1/cases</a> · <a href="/v1/conflicts">/v1/conflicts</a> · <a href="/metrics">/metrics</a></p>
</body></html>`))

func (d *Daemon) handleStatusPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusPage.Execute(w, d.status()); err != nil {
		d.logger.Warn("render status page", "error", err)
	}
}
