package records

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Item list CSV columns, with the Chinese headers an office uses. Columns
// may come in any order; unknown columns are refused.
var itemColumns = map[string]string{
	"事项编码":   "code",
	"事项名称":   "name",
	"事项类型编码": "type_code",
	"事项类型":   "type_name",
	"设定依据":   "basis",
	"即办件":    "instant",
	"法定办结时限": "legal_limit",
	"承诺办结时限": "promised_limit",
}

// ParseItemsCSV reads an item list. Every row is validated; the first bad
// row is reported by row number (1 = the header) and column, and no item is
// returned then, so nothing of a bad file is applied.
func ParseItemsCSV(r io.Reader, origin string, version uint64) ([]Item, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("item list: read header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		key, ok := itemColumns[h]
		if !ok {
			return nil, Invalid(fmt.Sprintf("row 1, column %d", i+1), "unknown column %q", h)
		}
		col[key] = i
	}
	for _, need := range []string{"code", "name", "type_code"} {
		if _, ok := col[need]; !ok {
			return nil, Invalid("header", "column for %s is missing", need)
		}
	}
	var items []Item
	for row := 2; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("item list row %d: %w", row, err)
		}
		get := func(k string) string {
			if i, ok := col[k]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		at := func(k string) string { return fmt.Sprintf("row %d, column %s", row, header[col[k]]) }
		it := Item{Code: get("code"), Name: get("name"), Basis: get("basis"), Origin: origin, Version: version}
		it.Type = ItemType{Code: get("type_code"), Name: get("type_name")}
		if it.Type.Name == "" {
			it.Type.Name = TypeName(it.Type.Code)
		}
		switch get("instant") {
		case "是", "true", "1":
			it.Instant = true
		case "否", "false", "0", "":
		default:
			return nil, Invalid(at("instant"), "%q must be 是 or 否", get("instant"))
		}
		for _, k := range []string{"legal_limit", "promised_limit"} {
			v := get(k)
			if v == "" {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, Invalid(at(k), "%q must be a positive number of working days", v)
			}
			l := &Limit{Value: n, Unit: "working_days"}
			if k == "legal_limit" {
				it.LegalLimit = l
			} else {
				it.PromisedLimit = l
			}
		}
		if err := it.Validate(); err != nil {
			de, _ := AsError(err)
			return nil, Invalid(fmt.Sprintf("row %d, field %s", row, de.Field), "%s", de.Message)
		}
		items = append(items, it)
	}
	return items, nil
}
