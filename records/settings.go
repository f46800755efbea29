package records

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
)

// Settings are what the district center decides for every station: the
// due time of bad-review work orders and the holiday calendar (year files
// in the calendar package's YAML). A station keeps the last settings it
// fetched in its replicated state (OpPutSettings); they replace its
// config's work_order_days and its embedded calendar.
type Settings struct {
	WorkOrderDays int               `json:"work_order_days"`
	Holidays      map[string]string `json:"holidays"` // file name ("2027.yaml") -> contents
	Version       string            `json:"version"`  // digest of the above
}

// OpPutSettings stores the center's settings at a station.
const OpPutSettings = "put_settings"

const keySettings = "meta/settings"

// Seal computes the version of s from its contents.
func (s *Settings) Seal() {
	h := sha256.New()
	fmt.Fprintf(h, "work_order_days=%d\n", s.WorkOrderDays)
	names := make([]string, 0, len(s.Holidays))
	for n := range s.Holidays {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(h, "%s %d\n%s\n", n, len(s.Holidays[n]), s.Holidays[n])
	}
	s.Version = hex.EncodeToString(h.Sum(nil))[:16]
}

func putSettings(st State, s Settings) (any, []Change, error) {
	if s.WorkOrderDays < 1 || s.WorkOrderDays > 365 {
		return nil, nil, Invalid("work_order_days", "must be 1 to 365, got %d", s.WorkOrderDays)
	}
	want := s.Version
	s.Seal()
	if s.Version != want {
		return nil, nil, Invalid("version", "does not match the settings' contents")
	}
	old, err := GetSettings(st)
	if err != nil {
		return nil, nil, err
	}
	if old != nil && old.Version == s.Version {
		return *old, nil, nil
	}
	data, err := setJSON(st, keySettings, s)
	if err != nil {
		return nil, nil, err
	}
	return s, []Change{{Kind: "settings", Key: s.Version, Data: data}}, nil
}

// GetSettings returns the settings stored at a station (nil if none).
func GetSettings(r interface{ Get(string) ([]byte, error) }) (*Settings, error) {
	b, err := r.Get(keySettings)
	if err != nil || b == nil {
		return nil, err
	}
	var s Settings
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode %s: %w", keySettings, err)
	}
	return &s, nil
}
