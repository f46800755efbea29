package records

import (
	"encoding/json"
	"fmt"
	"time"
)

// GetItem returns the item with code, or a not-found error.
func GetItem(r Reader, code string) (Item, error) {
	var it *Item
	if err := getJSON(r, prefixItem+code, &it); err != nil {
		return Item{}, err
	}
	if it == nil {
		return Item{}, NotFound("item %q not found", code)
	}
	return *it, nil
}

// ListItems returns the whole item list in code order.
func ListItems(r Reader) ([]Item, error) {
	items := []Item{}
	err := r.Scan(prefixItem, "", func(_ string, v []byte) (bool, error) {
		var it Item
		if err := json.Unmarshal(v, &it); err != nil {
			return false, fmt.Errorf("decode item: %w", err)
		}
		items = append(items, it)
		return true, nil
	})
	return items, err
}

// GetCase returns the case with id, or a not-found error.
func GetCase(r Reader, id string) (Case, error) {
	c, err := readCase(r, id)
	if err != nil {
		return Case{}, err
	}
	if c == nil {
		return Case{}, NotFound("case %q not found", id)
	}
	return *c, nil
}

// CaseQuery filters and pages a case listing.
type CaseQuery struct {
	Month    string         // YYYY-MM in Location; empty: all
	Location *time.Location // the district's time zone for Month
	ItemCode string
	State    string
	After    string // case id to continue after (the previous page's next)
	Limit    int
}

// CasePage is one page of a case listing; Next is empty on the last page.
type CasePage struct {
	Cases []Case `json:"cases"`
	Next  string `json:"next"`
}

// filter returns what q's month, item and status select.
func (q CaseQuery) filter() (func(Case) bool, error) {
	var from, to time.Time
	if q.Month != "" {
		loc := q.Location
		if loc == nil {
			loc = time.UTC
		}
		m, err := time.ParseInLocation("2006-01", q.Month, loc)
		if err != nil {
			return nil, Invalid("month", "%q is not YYYY-MM", q.Month)
		}
		from, to = m, m.AddDate(0, 1, 0)
	}
	return func(c Case) bool {
		if q.ItemCode != "" && c.ItemCode != q.ItemCode || q.State != "" && c.State != q.State {
			return false
		}
		return from.IsZero() || (!c.CreatedAt.Before(from) && c.CreatedAt.Before(to))
	}, nil
}

// ListCases lists cases in id order (ids sort by creation time).
func ListCases(r Reader, q CaseQuery) (CasePage, error) {
	if q.Limit <= 0 || q.Limit > 1000 {
		q.Limit = 100
	}
	match, err := q.filter()
	if err != nil {
		return CasePage{}, err
	}
	page := CasePage{Cases: []Case{}}
	err = scanCases(r, q.After, func(c Case) (bool, error) {
		if !match(c) {
			return true, nil
		}
		if len(page.Cases) == q.Limit {
			page.Next = page.Cases[len(page.Cases)-1].ID
			return false, nil
		}
		page.Cases = append(page.Cases, c)
		return true, nil
	})
	return page, err
}

// GetWorkOrder returns the work order with id, or a not-found error.
func GetWorkOrder(r Reader, id string) (WorkOrder, error) {
	var w *WorkOrder
	if err := getJSON(r, prefixWorkOrder+id, &w); err != nil {
		return WorkOrder{}, err
	}
	if w == nil {
		return WorkOrder{}, NotFound("work order %q not found", id)
	}
	w.Fold()
	return *w, nil
}

// ListWorkOrders lists work orders, optionally only those in one state
// ("overdue" is not a state: filter with WorkOrder.Overdue).
func ListWorkOrders(r Reader, state string) ([]WorkOrder, error) {
	if state != "" {
		if _, ok := workOrderTransitions[state]; !ok {
			return nil, Invalid("status", "%q is not a work order state (open, verifying, rectifying, replied, closed, invalid, cannot_rectify)", state)
		}
	}
	list := []WorkOrder{}
	err := r.Scan(prefixWorkOrder, "", func(key string, v []byte) (bool, error) {
		var w WorkOrder
		if err := json.Unmarshal(v, &w); err != nil {
			return false, fmt.Errorf("decode %s: %w", key, err)
		}
		w.Fold()
		if state == "" || w.State == state {
			list = append(list, w)
		}
		return true, nil
	})
	return list, err
}
