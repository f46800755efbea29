package daemon

import (
	"encoding/json"
	"net/http"

	"github.com/stationsync/stationsync/records"
)

// GET /v1/conflicts lists the offline writes the merged history did not
// allow, open ones only unless ?all=1. Personal data is masked unless
// ?full=1.
func (d *Daemon) handleListConflicts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	all := q.Get("all") == "1" || q.Get("all") == "true"
	full := q.Get("full") == "1" || q.Get("full") == "true"
	var list []records.ConflictRecord
	err := d.node.View(func(rd records.Reader) (err error) {
		list, err = records.ListConflicts(rd, all)
		return err
	})
	if err != nil {
		writeDomainError(w, err)
		return
	}
	if !full {
		for i := range list {
			list[i] = list[i].Masked()
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"conflicts": list})
}

// resolveBody is POST /v1/conflicts/{id}/resolve.
type resolveBody struct {
	Actor string `json:"actor"`
	Note  string `json:"note"`
}

// POST /v1/conflicts/{id}/resolve records a person's decision; the
// conflicting record itself stays in the history.
func (d *Daemon) handleResolveConflict(w http.ResponseWriter, r *http.Request) {
	var b resolveBody
	if !d.decodeBody(w, r, &b) {
		return
	}
	res := records.Resolution{Actor: b.Actor, Note: b.Note}
	if err := res.Validate(); err != nil {
		writeDomainError(w, err)
		return
	}
	res.HLC = d.clock.Now()
	out, ok := d.submitOne(w, r, records.Op{Kind: records.OpResolveConflict, ConflictID: r.PathValue("id"), Resolution: &res})
	if !ok {
		return
	}
	var rec records.ConflictRecord
	if err := json.Unmarshal(out.Value, &rec); err != nil {
		writeDomainError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rec.Masked())
}

// openConflicts counts the open conflicts (-1 if they cannot be read).
func (d *Daemon) openConflicts() int {
	var list []records.ConflictRecord
	err := d.node.View(func(rd records.Reader) (err error) {
		list, err = records.ListConflicts(rd, false)
		return err
	})
	if err != nil {
		return -1
	}
	return len(list)
}
