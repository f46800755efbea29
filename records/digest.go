package records

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Digest is a count and a digest of a station's records of one month: the
// ids of every case event, evaluation and work-order event whose time
// falls in the month (in the district's time zone). The station computes
// it over its own state and the center over its consolidated copy; equal
// digests mean the center holds exactly the station's records.
type Digest struct {
	Month  string `json:"month"`
	Count  int    `json:"count"`
	SHA256 string `json:"sha256"`
}

// MonthDigest computes the digest of r's records for month.
func MonthDigest(r Reader, month string, loc *time.Location) (Digest, error) {
	from, to, err := MonthRange(month, loc)
	if err != nil {
		return Digest{}, err
	}
	in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	var ids []string
	err = scanCases(r, "", func(c Case) (bool, error) {
		for _, e := range c.Events {
			if in(e.At) {
				ids = append(ids, "e "+e.ID)
			}
		}
		for _, e := range c.Evaluations {
			if in(e.At) {
				ids = append(ids, "v "+e.ID)
			}
		}
		return true, nil
	})
	if err != nil {
		return Digest{}, err
	}
	err = r.Scan(prefixWorkOrder, "", func(k string, v []byte) (bool, error) {
		var w WorkOrder
		if err := json.Unmarshal(v, &w); err != nil {
			return false, fmt.Errorf("decode %s: %w", k, err)
		}
		for _, e := range w.Events {
			if in(e.At) {
				ids = append(ids, "w "+e.ID)
			}
		}
		return true, nil
	})
	if err != nil {
		return Digest{}, err
	}
	slices.Sort(ids)
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{'\n'})
	}
	return Digest{Month: month, Count: len(ids), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
