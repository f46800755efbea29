package itemfile

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/stationsync/stationsync/records"
)

// Limits on what Read accepts, so that a hostile file cannot exhaust memory.
const (
	MaxFileBytes  = 32 << 20 // bytes of a CSV or XLSX file
	MaxUnzipBytes = 64 << 20 // bytes an XLSX file may unzip to
	MaxRows       = 50000    // item rows (the header and empty rows not counted)
	MaxCellBytes  = 64 << 10 // bytes of one cell
	maxColumns    = 256      // cells of the header row
)

// maxFileBytes is MaxFileBytes; tests lower it.
var maxFileBytes int64 = MaxFileBytes

// Format is the format of an item file.
type Format string

// The formats Read and Write know.
const (
	CSV  Format = "csv"
	XLSX Format = "xlsx"
)

// FormatOf returns the format of a file by its name's extension (.csv or
// .xlsx, in any case).
func FormatOf(filename string) (Format, error) {
	ext := strings.ToLower(path.Ext(strings.ReplaceAll(filename, `\`, "/")))
	switch ext {
	case ".csv":
		return CSV, nil
	case ".xlsx":
		return XLSX, nil
	case ".xls", ".et", ".xlsm", ".xlsb", ".ods", ".numbers":
		return "", records.Invalid("file", "%q: %s files are not supported: save it as Excel workbook (.xlsx) or CSV UTF-8 (.csv)", filename, ext)
	case "":
		return "", records.Invalid("file", "%q has no extension: the item list must be a .csv or .xlsx file", filename)
	}
	return "", records.Invalid("file", "%q: %s files are not supported: the item list must be a .csv or .xlsx file", filename, ext)
}

// RowError is a bad cell or row of an item file. Row counts from 1 as in
// Excel (the header is row 1 in the usual file); Column is the column's
// header as written in the file, or "" when the row as a whole is bad. Err is
// a *records.Error whose Field is the item field.
type RowError struct {
	Row    int
	Column string
	Err    error
}

func (e *RowError) Error() string {
	msg := e.Err.Error()
	if de, ok := e.Err.(*records.Error); ok {
		msg = de.Message
	}
	if e.Column == "" {
		return fmt.Sprintf("row %d: %s", e.Row, msg)
	}
	return fmt.Sprintf("row %d, column %s: %s", e.Row, e.Column, msg)
}

// Unwrap returns Err, so errors.As finds the *records.Error.
func (e *RowError) Unwrap() error { return e.Err }

// rowSource yields the rows of a file: the Excel row number and the raw
// cells. It returns io.EOF after the last row.
type rowSource interface {
	next() (row int, cells []string, err error)
}

// Read reads an item list in format f. Every item gets the given origin
// (records.OriginDistrict or records.OriginLocal) and version and is
// validated. On any error Read returns no items: a bad cell or row is a
// *RowError, a bad file a *records.Error; an error of r is returned wrapped.
// A file with only a header row gives no items and no error.
func Read(r io.Reader, f Format, origin string, version uint64) ([]records.Item, error) {
	switch origin {
	case records.OriginDistrict, records.OriginLocal:
	default:
		return nil, records.Invalid("origin", "must be %q or %q, got %q", records.OriginDistrict, records.OriginLocal, origin)
	}
	if f != CSV && f != XLSX {
		return nil, records.Invalid("format", "must be %q or %q, got %q", CSV, XLSX, f)
	}
	in := &capReader{r: r, left: maxFileBytes}
	var src rowSource
	if f == CSV {
		data, err := io.ReadAll(in)
		if err != nil {
			return nil, in.fail(err)
		}
		src = newCSVSource(data)
	} else {
		xs, err := openXLSX(in)
		if err != nil {
			return nil, in.fail(err)
		}
		defer xs.close()
		src = xs
	}
	items, err := readItems(src, origin, version)
	if err != nil {
		return nil, err
	}
	return items, nil
}

// errTooLarge is returned by a capReader when the input is too large.
var errTooLarge = errors.New("itemfile: file too large")

// capReader reads at most left bytes of r and then fails with errTooLarge
// if r has more. It keeps the first error of r.
type capReader struct {
	r    io.Reader
	left int64
	err  error // the error of r, other than io.EOF
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var probe [1]byte
		n, err := c.r.Read(probe[:])
		if n > 0 {
			return 0, errTooLarge
		}
		return 0, c.keep(err)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, c.keep(err)
}

func (c *capReader) keep(err error) error {
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return err
}

// fail returns the error to report for err, met while reading through c:
// errTooLarge, an error of the reader, or err itself.
func (c *capReader) fail(err error) error {
	switch {
	case errors.Is(err, errTooLarge):
		return records.Invalid("file", "is larger than %d MiB", maxFileBytes>>20)
	case c.err != nil:
		return fmt.Errorf("itemfile: read: %w", c.err)
	}
	return err
}

// readItems converts the rows of src to items.
func readItems(src rowSource, origin string, version uint64) ([]records.Item, error) {
	// The header is the first non-empty row.
	var (
		headerRow int
		header    []string
	)
	for {
		row, cells, err := src.next()
		if err == io.EOF {
			return nil, records.Invalid("file", "is empty: the first row must be the header (事项编码, 事项名称, 事项类型编码 ...)")
		}
		if err != nil {
			return nil, err
		}
		if !isEmptyRow(cells) {
			headerRow, header = row, cells
			break
		}
	}
	if len(header) > maxColumns {
		for i := maxColumns; i < len(header); i++ {
			if strings.TrimSpace(header[i]) != "" {
				return nil, &RowError{Row: headerRow, Err: records.Invalid("header", "has more than %d columns", maxColumns)}
			}
		}
		header = header[:maxColumns]
	}
	cols, names, err := mapHeader(headerRow, header)
	if err != nil {
		return nil, err
	}

	items := []records.Item{}
	codeRow := map[string]int{}
	for {
		row, cells, err := src.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if isEmptyRow(cells) {
			continue
		}
		if len(items) == MaxRows {
			return nil, &RowError{Row: row, Err: records.Invalid("file", "has more than %d item rows", MaxRows)}
		}
		it, err := readRow(row, cells, cols, names)
		if err != nil {
			return nil, err
		}
		it.Origin, it.Version = origin, version
		if err := it.Validate(); err != nil {
			return nil, rowErrorFor(row, names, err)
		}
		if first, dup := codeRow[it.Code]; dup {
			return nil, &RowError{Row: row, Column: names[columnForField("code")],
				Err: records.Invalid("code", "%q is also the code of row %d: rows %d and %d have the same code", it.Code, first, first, row)}
		}
		codeRow[it.Code] = row
		items = append(items, it)
	}
	return items, nil
}

// mapHeader maps the header cells to column indexes (-1: no header) and
// returns, for each column of the table, its header as written in the file.
func mapHeader(row int, header []string) (cols []int, names []string, err error) {
	cols = make([]int, len(header))
	names = make([]string, len(columns))
	seen := make([]int, len(columns)) // 1-based index of the file column
	for i, raw := range header {
		h, cerr := cleanCell(raw)
		if cerr != nil {
			return nil, nil, &RowError{Row: row, Column: colName(i), Err: records.Invalid("header", "the header %s", cerr)}
		}
		if h == "" {
			cols[i] = -1
			continue
		}
		c, ok := byHeader[normHeader(h)]
		if !ok {
			return nil, nil, &RowError{Row: row, Column: h, Err: records.Invalid("header",
				"unknown column %q (column %s): the columns are %s", h, colName(i), knownHeaders())}
		}
		if seen[c] != 0 {
			return nil, nil, &RowError{Row: row, Column: h, Err: records.Invalid("header",
				"column %s is the same column as %s (column %s)", colName(i), names[c], colName(seen[c]-1))}
		}
		seen[c] = i + 1
		cols[i] = c
		names[c] = h
	}
	for c, col := range columns {
		if col.Required && seen[c] == 0 {
			return nil, nil, &RowError{Row: row, Column: col.Header, Err: records.Invalid(col.Field,
				"the required column %s is missing (the required columns are 事项编码, 事项名称 and 事项类型编码)", col.Header)}
		}
		if names[c] == "" {
			names[c] = col.Header
		}
	}
	return cols, names, nil
}

// readRow converts the cells of one row.
func readRow(row int, cells []string, cols []int, names []string) (records.Item, error) {
	var it records.Item
	for i, raw := range cells {
		v, err := cleanCell(raw)
		if i >= len(cols) || cols[i] < 0 {
			if err != nil || v != "" {
				return it, &RowError{Row: row, Column: colName(i), Err: records.Invalid("file",
					"column %s has no header: put the value in a column with a header, or add the header", colName(i))}
			}
			continue
		}
		c := columns[cols[i]]
		if err != nil {
			return it, &RowError{Row: row, Column: names[cols[i]], Err: records.Invalid(c.Field, "the cell %s", err)}
		}
		if v == "" {
			continue
		}
		if err := c.set(&it, v); err != nil {
			return it, &RowError{Row: row, Column: names[cols[i]], Err: records.Invalid(c.Field, "%s", err.Error())}
		}
	}
	if it.Type.Name == "" {
		it.Type.Name = records.TypeName(it.Type.Code)
	}
	return it, nil
}

// rowErrorFor turns a Validate error into a RowError naming the column.
func rowErrorFor(row int, names []string, err error) error {
	re := &RowError{Row: row, Err: err}
	if de, ok := records.AsError(err); ok {
		if c := columnForField(de.Field); c >= 0 {
			re.Column = names[c]
		}
	}
	return re
}

func isEmptyRow(cells []string) bool {
	for _, c := range cells {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// colName returns the Excel letters of the 0-based column i (A, B, ... AA).
func colName(i int) string {
	s := ""
	for i++; i > 0; i = (i - 1) / 26 {
		s = string(rune('A'+(i-1)%26)) + s
	}
	return s
}

func knownHeaders() string {
	hs := make([]string, len(columns))
	for i, c := range columns {
		hs[i] = c.Header
	}
	return strings.Join(hs, ", ")
}

// Write writes items in format f, with every column. It refuses items that
// Read would not read back: items that do not validate (whatever their
// origin), duplicate codes, more than MaxRows items, and cells that break the
// limits or materials with separators in their names.
func Write(w io.Writer, f Format, items []records.Item) error {
	if f != CSV && f != XLSX {
		return records.Invalid("format", "must be %q or %q, got %q", CSV, XLSX, f)
	}
	rows, err := itemRows(items)
	if err != nil {
		return err
	}
	if f == CSV {
		return writeCSV(w, rows)
	}
	return writeXLSX(w, rows)
}

// itemRows converts items to cells, the header first.
func itemRows(items []records.Item) ([][]string, error) {
	if len(items) > MaxRows {
		return nil, records.Invalid("items", "%d items: a file holds at most %d", len(items), MaxRows)
	}
	rows := make([][]string, 0, len(items)+1)
	header := make([]string, len(columns))
	for i, c := range columns {
		header[i] = c.Header
	}
	rows = append(rows, header)
	seen := map[string]int{}
	for n := range items {
		it := items[n]
		at := func(field, format string, args ...any) error {
			return records.Invalid(fmt.Sprintf("items[%d].%s", n, field), "item %q: "+format, append([]any{it.Code}, args...)...)
		}
		check := it
		check.Origin = records.OriginLocal
		if err := check.Validate(); err != nil {
			de, _ := records.AsError(err)
			if de == nil {
				return nil, err
			}
			return nil, at(de.Field, "%s", de.Message)
		}
		if first, dup := seen[it.Code]; dup {
			return nil, at("code", "is also the code of items[%d]", first)
		}
		seen[it.Code] = n
		row := make([]string, len(columns))
		for i, c := range columns {
			v, err := c.get(&it)
			if err == nil {
				err = checkCell(v)
			}
			if err != nil {
				return nil, at(c.Field, "%s %s", c.Header, err)
			}
			row[i] = v
		}
		rows = append(rows, row)
	}
	return rows, nil
}
