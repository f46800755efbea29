package daemon

import (
	"errors"
	"net/http"

	"github.com/stationsync/stationsync/replication"
)

func (d *Daemon) handleListMembers(w http.ResponseWriter, r *http.Request) {
	s := d.node.Status()
	writeJSON(w, http.StatusOK, map[string]any{"leader": s.Leader, "members": s.Members, "discovered": d.discovered()})
}

// handleRemoveMember answers DELETE /v1/members/{id}[?force=1]: the PC is
// gone for good. Refused when it would break quorum, unless forced.
func (d *Daemon) handleRemoveMember(w http.ResponseWriter, r *http.Request) {
	force := r.URL.Query().Get("force") == "1"
	err := d.node.RemoveMember(r.Context(), r.PathValue("id"), force)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]any{"removed": r.PathValue("id")})
	case errors.Is(err, replication.ErrUnknownMember):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, replication.ErrNoLeader):
		writeDomainError(w, err)
	default:
		writeError(w, http.StatusConflict, "conflict", err.Error())
	}
}
