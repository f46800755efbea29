package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/records/itemfile"
)

// maxImportBytes bounds an uploaded item list.
const maxImportBytes = 16 << 20

// importChunk is how many items travel in one write.
const importChunk = 40

// listItems reads the station's whole item list from this node.
func (d *Daemon) listItems() (items []records.Item, err error) {
	err = d.node.View(func(rd records.Reader) error {
		items, err = records.ListItems(rd)
		return err
	})
	return items, err
}

// itemFileFormat reads ?format= (csv or xlsx).
func itemFileFormat(r *http.Request) (itemfile.Format, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "csv":
		return itemfile.CSV, nil
	case "xlsx":
		return itemfile.XLSX, nil
	default:
		return "", records.Invalid("format", "%q must be csv or xlsx", f)
	}
}

// handleExportItems answers GET /v1/items?format=csv|xlsx with the item
// list as a file an office opens.
func (d *Daemon) handleExportItems(w http.ResponseWriter, r *http.Request, f itemfile.Format) {
	items, err := d.listItems()
	if err != nil {
		writeDomainError(w, err)
		return
	}
	var buf bytes.Buffer
	if err := itemfile.Write(&buf, f, items); err != nil {
		writeDomainError(w, err)
		return
	}
	ctype := "text/csv; charset=utf-8"
	if f == itemfile.XLSX {
		ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	}
	name := fmt.Sprintf("%s-items-%s.%s", d.cfg.StationID, time.Now().In(d.loc).Format("20060102"), f)
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Write(buf.Bytes())
}

// handleImportItems answers POST /v1/items/import?format=csv|xlsx: the
// body is an item list file. Every row is checked first, also against the
// district items the station holds (read-only here); one bad row refuses
// the whole file and nothing is written. Then the items are written as the
// station's local items; an unchanged item keeps its version.
func (d *Daemon) handleImportItems(w http.ResponseWriter, r *http.Request) {
	// One import at a time: reading an XLSX file can take tens of MiB.
	select {
	case d.importSlot <- struct{}{}:
		defer func() { <-d.importSlot }()
	case <-r.Context().Done():
		return
	}
	f, err := itemFileFormat(r)
	if err != nil {
		writeDomainError(w, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxImportBytes))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			writeDomainError(w, records.Invalid("file", "is larger than %d bytes", maxImportBytes))
			return
		}
		writeDomainError(w, err)
		return
	}
	items, err := itemfile.Read(bytes.NewReader(body), f, records.OriginLocal, 0)
	if err != nil {
		writeImportError(w, err)
		return
	}
	if len(items) == 0 {
		writeDomainError(w, records.Invalid("file", "has no item rows"))
		return
	}
	err = d.node.View(func(rd records.Reader) error {
		for i, it := range items {
			old, err := records.GetItem(rd, it.Code)
			if err == nil && old.Origin == records.OriginDistrict {
				return &itemfile.RowError{Row: i + 2, Column: "事项编码", Err: records.Conflict("%s is a district item: it is read-only at a station", it.Code)}
			}
		}
		return nil
	})
	if err != nil {
		writeImportError(w, err)
		return
	}
	changed := 0
	for start := 0; start < len(items); start += importChunk {
		end := min(start+importChunk, len(items))
		ops := make([]records.Op, 0, end-start)
		for i := start; i < end; i++ {
			ops = append(ops, records.Op{Kind: records.OpPutItem, Item: &items[i]})
		}
		results, err := d.node.Submit(r.Context(), ops)
		if err != nil {
			writeDomainError(w, fmt.Errorf("after %d of %d items: %w", start, len(items), err))
			return
		}
		for i, res := range results {
			if res.Error != nil {
				writeDomainError(w, fmt.Errorf("item %s (row %d), after %d of %d items: %w", items[start+i].Code, start+i+2, start+i, len(items), res.Error))
				return
			}
			if res.Status == "applied" {
				changed++
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": len(items), "changed": changed, "unchanged": len(items) - changed})
}

// writeImportError answers a bad file: 400 naming the row and column.
func writeImportError(w http.ResponseWriter, err error) {
	var re *itemfile.RowError
	if errors.As(err, &re) {
		var e apiError
		e.Error.Code, e.Error.Message = records.CodeInvalid, re.Error()
		if de, ok := records.AsError(re.Err); ok {
			e.Error.Code, e.Error.Field = de.Code, de.Field
		}
		code := http.StatusBadRequest
		if e.Error.Code == records.CodeConflict {
			code = http.StatusConflict
		}
		writeJSON(w, code, map[string]any{"error": e.Error, "row": re.Row, "column": re.Column})
		return
	}
	writeDomainError(w, err)
}
