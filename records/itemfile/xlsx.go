package itemfile

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/xuri/excelize/v2"

	"github.com/stationsync/stationsync/records"
)

// SheetName is the name of the sheet Write writes and Read prefers.
const SheetName = "事项清单"

// unzipXMLBytes is the size above which excelize keeps a worksheet or the
// shared strings in a temporary file instead of memory (its default).
const unzipXMLBytes = 16 << 20

// xlsxSource reads the rows of the item sheet of an XLSX file.
type xlsxSource struct {
	f    *excelize.File
	rows *excelize.Rows
	row  int
}

// openXLSX opens an XLSX file read from r. excelize is guarded: a panic on
// a malformed file is reported as a bad file.
func openXLSX(r io.Reader) (xs *xlsxSource, err error) {
	defer func() {
		if p := recover(); p != nil {
			if xs != nil {
				xs.close()
			}
			xs, err = nil, badXLSX(fmt.Errorf("%v", p))
		}
	}()
	f, err := excelize.OpenReader(r, excelize.Options{
		UnzipSizeLimit:    MaxUnzipBytes,
		UnzipXMLSizeLimit: unzipXMLBytes,
	})
	if err != nil {
		if f != nil {
			_ = f.Close()
		}
		if errors.Is(err, errTooLarge) {
			return nil, err
		}
		if err.Error() == fmt.Sprintf("unzip size exceeds the %d bytes limit", MaxUnzipBytes) {
			return nil, records.Invalid("file", "is not a readable XLSX file: it unzips to more than %d MiB", MaxUnzipBytes>>20)
		}
		return nil, badXLSX(err)
	}
	xs = &xlsxSource{f: f}
	sheets := f.GetSheetList()
	if len(sheets) == 0 {
		xs.close()
		return nil, records.Invalid("file", "has no sheet")
	}
	sheet := sheets[0]
	for _, s := range sheets {
		if s == SheetName {
			sheet = s
		}
	}
	if xs.rows, err = f.Rows(sheet); err != nil {
		xs.close()
		return nil, badXLSX(err)
	}
	return xs, nil
}

func badXLSX(err error) error {
	return records.Invalid("file", "is not a readable XLSX file: %v", err)
}

func (s *xlsxSource) next() (row int, cells []string, err error) {
	defer func() {
		if p := recover(); p != nil {
			row, cells, err = 0, nil, badXLSX(fmt.Errorf("%v", p))
		}
	}()
	if !s.rows.Next() {
		if err := s.rows.Error(); err != nil {
			return 0, nil, badXLSX(err)
		}
		return 0, nil, io.EOF
	}
	s.row++
	cells, err = s.rows.Columns(excelize.Options{RawCellValue: true})
	if err != nil {
		return 0, nil, badXLSX(err)
	}
	return s.row, cells, nil
}

func (s *xlsxSource) close() {
	defer func() { _ = recover() }()
	if s.rows != nil {
		_ = s.rows.Close()
	}
	_ = s.f.Close()
}

// writeXLSX writes rows to one sheet named 事项清单: a bold, frozen header
// row, column widths from the table and every cell formatted as text.
func writeXLSX(w io.Writer, rows [][]string) (err error) {
	f := excelize.NewFile()
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if err := f.SetSheetName(f.GetSheetName(0), SheetName); err != nil {
		return err
	}
	const textFormat = 49 // "@": Excel keeps what is typed as text (01 stays 01)
	headStyle, err := f.NewStyle(&excelize.Style{
		Font:      &excelize.Font{Bold: true},
		Fill:      excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"#DDEBF7"}},
		Alignment: &excelize.Alignment{Horizontal: "center", Vertical: "center", WrapText: true},
		Border: []excelize.Border{
			{Type: "bottom", Color: "#808080", Style: 1},
		},
		NumFmt: textFormat,
	})
	if err != nil {
		return err
	}
	cellStyle, err := f.NewStyle(&excelize.Style{
		Alignment: &excelize.Alignment{Vertical: "top", WrapText: true},
		NumFmt:    textFormat,
	})
	if err != nil {
		return err
	}
	sw, err := f.NewStreamWriter(SheetName)
	if err != nil {
		return err
	}
	for i, c := range columns {
		if err := sw.SetColWidth(i+1, i+1, c.width); err != nil {
			return err
		}
	}
	if err := sw.SetColStyle(1, len(columns), cellStyle); err != nil {
		return err
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return err
	}
	for r, row := range rows {
		style := cellStyle
		if r == 0 {
			style = headStyle
		}
		cells := make([]any, len(row))
		for i, v := range row {
			c := excelize.Cell{StyleID: style}
			if v != "" {
				c.Value = v
			}
			cells[i] = c
		}
		if err := sw.SetRow("A"+strconv.Itoa(r+1), cells); err != nil {
			return err
		}
	}
	if err := sw.Flush(); err != nil {
		return err
	}
	return f.Write(w)
}
