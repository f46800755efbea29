package itemfile

import (
	"bytes"
	"encoding/csv"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/stationsync/stationsync/records"
)

var bom = []byte("\ufeff")

// csvSource reads the records of a CSV file, numbering them as Excel
// numbers its rows: a blank line is a row too, a record with line breaks in
// quoted cells is one row.
type csvSource struct {
	r       *csv.Reader
	row     int // row of the last record
	endLine int // line on which the last record ended
}

func newCSVSource(data []byte) *csvSource {
	if bytes.HasPrefix(data, bom) {
		// UTF-8 for sure: a bad byte is reported with its row and column.
		data = data[len(bom):]
	} else if !utf8.Valid(data) {
		// "CSV (逗号分隔)" of a Chinese Excel is GBK; GB18030 is its superset.
		if dec, err := simplifiedchinese.GB18030.NewDecoder().Bytes(data); err == nil {
			data = bytes.TrimPrefix(dec, bom)
		}
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	return &csvSource{r: r}
}

func (s *csvSource) next() (int, []string, error) {
	rec, err := s.r.Read()
	if err == io.EOF {
		return 0, nil, io.EOF
	}
	if err != nil {
		return 0, nil, records.Invalid("file", "is not a valid CSV file: %v", err)
	}
	start, _ := s.r.FieldPos(0)
	last := len(rec) - 1
	end, _ := s.r.FieldPos(last)
	end += strings.Count(rec[last], "\n")
	s.row += start - s.endLine
	s.endLine = end
	for i, cell := range rec {
		rec[i] = unguardCell(cell)
	}
	return s.row, rec, nil
}

// formulaStart are the first characters that make a spreadsheet read a
// cell as a formula (CSV injection).
const formulaStart = "=+-@\t\r"

// GuardCell prefixes a CSV cell that a spreadsheet would run as a formula
// with an apostrophe, which Excel and WPS show as text.
func GuardCell(s string) string { return guardCell(s) }

func guardCell(s string) string {
	if s != "" && strings.ContainsRune(formulaStart, rune(s[0])) {
		return "'" + s
	}
	return s
}

// unguardCell undoes guardCell when reading a file this package wrote.
func unguardCell(s string) string {
	if len(s) > 1 && s[0] == '\'' && strings.ContainsRune(formulaStart, rune(s[1])) {
		return s[1:]
	}
	return s
}

// writeCSV writes rows as CSV with a byte order mark and CRLF line ends, as
// Excel expects.
func writeCSV(w io.Writer, rows [][]string) error {
	if _, err := w.Write(bom); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	guarded := make([][]string, len(rows))
	for i, row := range rows {
		guarded[i] = make([]string, len(row))
		for j, cell := range row {
			guarded[i][j] = guardCell(cell)
		}
	}
	if err := cw.WriteAll(guarded); err != nil {
		return err
	}
	return nil
}
