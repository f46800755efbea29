package center

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/xuri/excelize/v2"

	"github.com/stationsync/stationsync/daemon"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/records/itemfile"
)

// The monthly report (每月统计): one row per station and item, a subtotal
// per station and the district's total, as the bureau sends it upward.

var reportHeader = []string{
	"站点编码", "站点名称", "事项编码", "事项名称", "受理量", "即办件", "办结量", "按时办结", "超期",
	"评价数", "评价率", "满意数", "满意率", "差评数", "未办结差评工单", "超期差评工单",
}

// reportRow is one line of the report.
type reportRow struct {
	station, name string
	s             records.ItemStats
	kind          string // item | subtotal | total
}

func (c *Center) reportRows(ds DistrictStats) []reportRow {
	var rows []reportRow
	for _, ms := range ds.Stations {
		name := c.stationName(ms.Station)
		for _, it := range ms.Items {
			rows = append(rows, reportRow{station: ms.Station, name: name, s: it, kind: "item"})
		}
		t := ms.Total
		t.ItemName = "小计"
		rows = append(rows, reportRow{station: ms.Station, name: name, s: t, kind: "subtotal"})
	}
	rows = append(rows, reportRow{name: "全区", s: ds.Total, kind: "total"})
	return rows
}

// stationName is the station's name from the config, or its id.
func (c *Center) stationName(id string) string {
	for _, st := range c.stations {
		if st.ID == id && st.Name != "" {
			return st.Name
		}
	}
	return id
}

func rate(p *float64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatFloat(*p*100, 'f', 1, 64) + "%"
}

func (r reportRow) cells() []any {
	s := r.s
	return []any{r.station, r.name, s.ItemCode, s.ItemName, s.Received, s.Instant, s.Completed, s.CompletedOnTime, s.Overdue,
		s.Evaluated, s.EvaluationRate, s.Satisfied, s.Satisfaction, s.BadReviews, s.OpenWorkOrders, s.OverdueWorkOrders}
}

func (c *Center) handleReport(w http.ResponseWriter, r *http.Request) {
	ds, ok := c.requestedStats(w, r)
	if !ok {
		return
	}
	month := ds.Month
	rows := c.reportRows(ds)
	var buf bytes.Buffer
	name := "stationsync-monthly-" + month
	if strings.HasSuffix(r.URL.Path, ".csv") {
		writeReportCSV(&buf, rows)
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		name += ".csv"
	} else {
		if err := writeReportXLSX(&buf, month, rows); err != nil {
			daemon.WriteDomainError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
		name += ".xlsx"
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, name))
	w.Write(buf.Bytes())
}

// writeReportCSV writes UTF-8 with a BOM, so a Chinese Excel opens it
// right.
func writeReportCSV(buf *bytes.Buffer, rows []reportRow) {
	buf.WriteString("\uFEFF")
	cw := csv.NewWriter(buf)
	cw.Write(reportHeader)
	for _, row := range rows {
		var rec []string
		for _, v := range row.cells() {
			switch x := v.(type) {
			case string:
				rec = append(rec, itemfile.GuardCell(x))
			case int:
				rec = append(rec, strconv.Itoa(x))
			case *float64:
				rec = append(rec, rate(x))
			}
		}
		cw.Write(rec)
	}
	cw.Flush()
}

// writeReportXLSX writes the report sheet: a title, the header, the rows
// (subtotals and the total in bold), rates as percentages.
func writeReportXLSX(buf *bytes.Buffer, month string, rows []reportRow) error {
	f := excelize.NewFile()
	defer f.Close()
	const sheet = "月报"
	f.SetSheetName("Sheet1", sheet)
	title := fmt.Sprintf("政务服务站办件统计月报（%s）", strings.Replace(month, "-", "年", 1)+"月")
	f.SetCellValue(sheet, "A1", title)
	f.MergeCell(sheet, "A1", "P1")
	titleStyle, _ := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true, Size: 14}, Alignment: &excelize.Alignment{Horizontal: "center"}})
	f.SetCellStyle(sheet, "A1", "A1", titleStyle)
	headStyle, _ := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}, Fill: excelize.Fill{Type: "pattern", Color: []string{"DDEBF7"}, Pattern: 1},
		Border: border(), Alignment: &excelize.Alignment{Horizontal: "center", WrapText: true}})
	for i, h := range reportHeader {
		cell, _ := excelize.CoordinatesToCellName(i+1, 2)
		f.SetCellValue(sheet, cell, h)
	}
	f.SetCellStyle(sheet, "A2", "P2", headStyle)
	plain, _ := f.NewStyle(&excelize.Style{Border: border()})
	pct, _ := f.NewStyle(&excelize.Style{Border: border(), NumFmt: 10}) // 0.00%
	bold, _ := f.NewStyle(&excelize.Style{Border: border(), Font: &excelize.Font{Bold: true}})
	boldPct, _ := f.NewStyle(&excelize.Style{Border: border(), Font: &excelize.Font{Bold: true}, NumFmt: 10})
	for i, row := range rows {
		y := i + 3
		for j, v := range row.cells() {
			cell, _ := excelize.CoordinatesToCellName(j+1, y)
			style := plain
			if row.kind != "item" {
				style = bold
			}
			switch x := v.(type) {
			case *float64:
				if x != nil {
					f.SetCellValue(sheet, cell, *x)
				}
				style = pct
				if row.kind != "item" {
					style = boldPct
				}
			default:
				f.SetCellValue(sheet, cell, x)
			}
			f.SetCellStyle(sheet, cell, cell, style)
		}
	}
	widths := []float64{12, 22, 14, 30, 8, 8, 8, 9, 7, 8, 9, 8, 9, 8, 12, 12}
	for i, wd := range widths {
		col, _ := excelize.ColumnNumberToName(i + 1)
		f.SetColWidth(sheet, col, col, wd)
	}
	f.SetPanes(sheet, &excelize.Panes{Freeze: true, YSplit: 2, TopLeftCell: "A3", ActivePane: "bottomLeft"})
	return f.Write(buf)
}

func border() []excelize.Border {
	var b []excelize.Border
	for _, side := range []string{"left", "right", "top", "bottom"} {
		b = append(b, excelize.Border{Type: side, Color: "999999", Style: 1})
	}
	return b
}
