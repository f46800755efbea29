package records

import (
	"encoding/hex"
	"time"
)

// Enrollment tokens, kept by the district center: only the SHA-256 of the
// token's secret, the station it enrolls a node for, when it expires and,
// once used, by which node. Using a token is a replicated op, so a token
// enrolls exactly one node even on a center of three.
const (
	OpPutToken = "put_token"
	OpUseToken = "use_token"

	prefixToken = "center/token/"
)

// EnrollToken is a token as the center keeps it.
type EnrollToken struct {
	Hash    string    `json:"hash"`
	Station string    `json:"station"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	UsedBy  string    `json:"used_by,omitempty"`
	UsedAt  time.Time `json:"used_at,omitzero"`
}

func validHash(h string) bool {
	b, err := hex.DecodeString(h)
	return err == nil && len(b) == 32
}

func putToken(st State, t EnrollToken) (any, []Change, error) {
	if !validHash(t.Hash) {
		return nil, nil, Invalid("hash", "must be a hex SHA-256")
	}
	if !validRecordID(t.Station) {
		return nil, nil, Invalid("station", "%q is not a station id", t.Station)
	}
	if !t.Expires.After(t.Created) {
		return nil, nil, Invalid("expires", "must be after the token's creation")
	}
	var old *EnrollToken
	if err := getJSON(st, prefixToken+t.Hash, &old); err != nil {
		return nil, nil, err
	}
	if old != nil {
		return *old, nil, nil
	}
	t.UsedBy, t.UsedAt = "", time.Time{}
	if _, err := setJSON(st, prefixToken+t.Hash, t); err != nil {
		return nil, nil, err
	}
	return t, nil, nil
}

// useToken spends a token for node at the op's time: an unknown, expired
// or already used token is refused with a message for the admin.
func useToken(st State, u EnrollToken) (any, []Change, error) {
	var t *EnrollToken
	if err := getJSON(st, prefixToken+u.Hash, &t); err != nil {
		return nil, nil, err
	}
	switch {
	case t == nil:
		return nil, nil, NotFound("the token is not known to this center: check it, or make one with `stationsync token --station ID` at the center")
	case t.UsedBy == u.UsedBy && t.UsedBy != "":
		return *t, nil, nil // the same node asking again (a lost answer)
	case t.UsedBy != "":
		return nil, nil, Conflict("the token was already used by node %s at %s: a token enrolls one node; make a new one", t.UsedBy, t.UsedAt.Format(time.RFC3339))
	case !u.UsedAt.Before(t.Expires):
		return nil, nil, Conflict("the token expired at %s: make a new one with `stationsync token --station %s`", t.Expires.Format(time.RFC3339), t.Station)
	}
	t.UsedBy, t.UsedAt = u.UsedBy, u.UsedAt
	if _, err := setJSON(st, prefixToken+t.Hash, t); err != nil {
		return nil, nil, err
	}
	return *t, nil, nil
}

// GetToken returns a token by its hash (nil if unknown).
func GetToken(r Reader, hash string) (*EnrollToken, error) {
	var t *EnrollToken
	err := getJSON(r, prefixToken+hash, &t)
	return t, err
}
