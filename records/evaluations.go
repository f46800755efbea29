package records

import (
	"slices"
	"strings"
	"time"
)

// Evaluation levels (好差评), stored as the Chinese label: GB/T 39046 codes
// them 1 = 非常满意 .. 5 = 非常不满意 while several interfaces code the
// reverse, so the label is the only unambiguous form.
var Levels = []string{"非常满意", "满意", "基本满意", "不满意", "非常不满意"}

// BadReview reports whether a level is a bad review (差评).
func BadReview(level string) bool { return level == "不满意" || level == "非常不满意" }

// Satisfied reports whether a level counts as satisfied (非常满意 or 满意).
func Satisfied(level string) bool { return level == "非常满意" || level == "满意" }

// EvaluationChannels are the channel codes of DOMAIN.md.
var EvaluationChannels = map[int]string{1: "PC", 2: "mobile", 3: "QR code", 4: "hall tablet", 5: "other terminal", 6: "phone", 7: "SMS"}

// Evaluation is one evaluation of a case. Evaluator is protected: it is
// replicated and stored (encrypted) but never shown on status pages, in
// logs or in exports.
type Evaluation struct {
	ID        string    `json:"id"`
	CaseID    string    `json:"case_id"`
	Level     string    `json:"level"`
	Channel   int       `json:"channel"`
	Text      string    `json:"text,omitempty"`
	Attempt   int       `json:"attempt"` // 1 first, 2 second (after a work order's call-back)
	Evaluator string    `json:"evaluator,omitempty"`
	HLC       HLC       `json:"hlc"`
	At        time.Time `json:"at"`
	Node      string    `json:"node,omitempty"`
	// WorkOrderDays is the due time of the work order a bad review opens,
	// in working days; decided by the receiving node's settings.
	WorkOrderDays int `json:"work_order_days,omitempty"`
	// Pending marks, in a view, an evaluation still in this PC's outbox.
	Pending bool `json:"pending,omitempty"`
}

// Validate checks an evaluation as posted by a client.
func (e *Evaluation) Validate() error {
	if e.ID != "" && !validRecordID(e.ID) {
		return Invalid("id", "must be at most 64 characters without spaces or '/'")
	}
	if !slices.Contains(Levels, e.Level) {
		return Invalid("level", "%q must be one of %s", e.Level, strings.Join(Levels, ", "))
	}
	if _, ok := EvaluationChannels[e.Channel]; !ok {
		return Invalid("channel", "%d must be 1 (PC), 2 (mobile), 3 (QR code), 4 (hall tablet), 5 (other terminal), 6 (phone) or 7 (SMS)", e.Channel)
	}
	if e.Attempt != 1 && e.Attempt != 2 {
		return Invalid("attempt", "must be 1 (first evaluation) or 2 (second, after a work order), got %d", e.Attempt)
	}
	if len(e.Text) > 4000 {
		return Invalid("text", "is longer than 4000 bytes")
	}
	return nil
}

func withoutEvaluators(evs []Evaluation) []Evaluation {
	if len(evs) == 0 {
		return evs
	}
	out := make([]Evaluation, len(evs))
	for i, e := range evs {
		e.Evaluator = ""
		out[i] = e
	}
	return out
}

func validRecordID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if r == '/' || r == ' ' || r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
