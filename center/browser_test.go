package center_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/stationsync/stationsync/daemon"
)

// chromium finds the browser. Without one the test is skipped, unless
// STATIONSYNC_REQUIRE_BROWSER is set (CI installs Debian's chromium and
// sets it, so there the test always runs).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("STATIONSYNC_REQUIRE_BROWSER") != "" {
		t.Fatal("no chromium found, and STATIONSYNC_REQUIRE_BROWSER is set (apt-get install chromium)")
	}
	t.Skip("no chromium on this machine (apt-get install chromium); CI runs this test")
	return ""
}

// artifactDir is where tests leave files for people to look at:
// $STATIONSYNC_ARTIFACTS, or a folder in the temp dir.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("STATIONSYNC_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "stationsync-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The dashboard loads in headless Chromium without a console error and
// shows the stations table and the charts with the seeded numbers. The
// screenshot is left in the artifacts folder; with
// STATIONSYNC_UPDATE_SCREENSHOT=1 it also replaces docs/dashboard.png.
func TestDashboardInChromium(t *testing.T) {
	browser := chromium(t)
	d := newDistrict(t, "XC-A", "XC-B")
	a, b := d.startStation("XC-A"), d.startStation("XC-B")
	c := d.startCenter("XC-A", "XC-B")
	item := map[string]any{"name": "企业开办", "type": map[string]any{"code": "20", "name": "公共服务"}, "promised_limit": map[string]any{"value": 3, "unit": "working_days"}}
	call(t, c, "PUT", "/v1/catalogue/items/XC-D-0001", item, nil)
	eventually(t, "the district item is at both stations", func() bool {
		return call(t, a, "GET", "/v1/items/XC-D-0001", nil, nil) == 200 && call(t, b, "GET", "/v1/items/XC-D-0001", nil, nil) == 200
	})
	seeded := map[string]int{"XC-A": 3, "XC-B": 7}
	for st, n := range seeded {
		node := map[string]*daemon.Daemon{"XC-A": a, "XC-B": b}[st]
		for i := range n {
			if code := call(t, node, "POST", "/v1/cases", newCase(fmt.Sprintf("%s-%d", st, i), "XC-D-0001"), nil); code != 201 {
				t.Fatalf("create case: %d", code)
			}
		}
	}
	call(t, b, "POST", "/v1/cases/XC-B-0/evaluations", map[string]any{"level": "不满意", "channel": 4}, nil)
	eventually(t, "the center caught up", func() bool { return caughtUp(t, c, a, "XC-A") && caughtUp(t, c, b, "XC-B") })

	ctx, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 1100))...)
	defer cancel()
	ctx, cancel = chromedp.NewContext(ctx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var (
		mu       sync.Mutex
		problems []string
	)
	listen := func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value))
				}
				problems = append(problems, fmt.Sprintf("console.%s: %s", e.Type, strings.Join(args, " ")))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+e.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelError || e.Entry.Level == log.EntryLevelWarning {
				problems = append(problems, fmt.Sprintf("%s %s: %s %s", e.Entry.Source, e.Entry.Level, e.Entry.Text, e.Entry.URL))
			}
		}
	}
	if err := chromedp.Listen(ctx, listen); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(c.APIURL()+"/"), chromedp.WaitVisible("#stations"), chromedp.Sleep(300*time.Millisecond)); err != nil {
		t.Fatalf("chromium: load the dashboard: %v", err)
	}
	table, err := chromedp.Run(ctx, chromedp.Text("#stations"))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	bars, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.chart rect.bar").length`))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	barTitles, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("svg.chart rect.bar title")).map(t => t.textContent)`))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("chromium: screenshot: %v", err)
	}
	out := filepath.Join(artifactDir(t), "dashboard.png")
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", out)
	if os.Getenv("STATIONSYNC_UPDATE_SCREENSHOT") != "" {
		if err := os.WriteFile(filepath.Join("..", "docs", "dashboard.png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("the dashboard logged problems in the browser:\n%s", strings.Join(problems, "\n"))
	}
	for st, n := range seeded {
		if !strings.Contains(table, stationName(st)) || !strings.Contains(table, st) {
			t.Fatalf("stations table lacks %s:\n%s", st, table)
		}
		if !contains(barTitles, fmt.Sprintf("%s: %d", stationName(st), n)) {
			t.Fatalf("the station chart lacks %s with %d cases: %v", st, n, barTitles)
		}
	}
	if !contains(barTitles, "企业开办: 10") || bars != 3 {
		t.Fatalf("charts: %d bars %v, want the two stations and the item with 10 cases", bars, barTitles)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
