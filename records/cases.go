package records

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Channels a case can arrive through.
var caseChannels = map[string]bool{"window": true, "web": true, "mobile": true, "kiosk": true, "courier": true, "phone": true}

// Applicant is the person or organisation a case is for. ID numbers and
// phones are personal data: see Masked.
type Applicant struct {
	Kind       string `json:"kind"` // person | enterprise | organisation
	Name       string `json:"name"`
	CreditCode string `json:"credit_code,omitempty"`
	IDType     string `json:"id_type,omitempty"`
	IDNumber   string `json:"id_number,omitempty"`
	Phone      string `json:"phone,omitempty"`
}

// Event is one immutable step of a case's lifecycle.
type Event struct {
	ID     string          `json:"id"`
	CaseID string          `json:"case_id"`
	Type   string          `json:"type"`
	Actor  string          `json:"actor"`
	HLC    HLC             `json:"hlc"`
	At     time.Time       `json:"at"`
	Node   string          `json:"node,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	// Conflict marks an event that is not possible at its place in the
	// merged history: kept for a person to resolve, not applied.
	Conflict bool `json:"conflict,omitempty"`
	// Pending marks, in a view, an event still in this PC's outbox.
	Pending bool `json:"pending,omitempty"`
}

// Case is a handled case (办件): its identity, applicant, events and
// evaluations. State is the fold of the events (see Fold).
type Case struct {
	ID         string     `json:"id"`
	Station    string     `json:"station"`
	ItemCode   string     `json:"item_code"`
	ItemName   string     `json:"item_name,omitempty"`
	Instant    bool       `json:"instant"`         // 即办件, copied from the item at reception
	Limit      *Limit     `json:"limit,omitempty"` // promised limit, copied from the item at reception
	Channel    string     `json:"channel"`
	Actor      string     `json:"actor"`
	Applicant  Applicant  `json:"applicant"`
	Agent      *Applicant `json:"agent"`
	Tolerance  bool       `json:"tolerance"`  // 容缺受理
	Commitment bool       `json:"commitment"` // 告知承诺制
	State      string     `json:"state"`
	CreatedAt  time.Time  `json:"created_at"`
	Events     []Event    `json:"events"`
	// Evaluations (好差评) of the case, first and second attempts.
	Evaluations []Evaluation `json:"evaluations,omitempty"`
	// Pending marks, in a view, a case whose creation is still in this
	// PC's outbox.
	Pending bool `json:"pending,omitempty"`

	accepted bool // set by Fold
}

// Validate checks a new case as received from a client (before the node
// assigns identity and timestamps).
func (c *Case) Validate() error {
	if c.ID != "" {
		if !validRecordID(c.ID) {
			return Invalid("id", "must be at most 64 characters without spaces, control characters or '/'")
		}
	}
	if strings.TrimSpace(c.ItemCode) == "" {
		return Invalid("item_code", "is required")
	}
	if c.Channel == "" {
		return Invalid("channel", "is required")
	}
	if !caseChannels[c.Channel] {
		return Invalid("channel", "%q is not one of window, web, mobile, kiosk, courier, phone", c.Channel)
	}
	if strings.TrimSpace(c.Actor) == "" {
		return Invalid("actor", "is required (the clerk who received the case)")
	}
	if err := c.Applicant.validate("applicant"); err != nil {
		return err
	}
	if c.Agent != nil {
		if err := c.Agent.validate("agent"); err != nil {
			return err
		}
	}
	return nil
}

func (a *Applicant) validate(field string) error {
	switch a.Kind {
	case "person", "enterprise", "organisation":
	case "":
		return Invalid(field+".kind", "is required (person, enterprise or organisation)")
	default:
		return Invalid(field+".kind", "%q is not one of person, enterprise, organisation", a.Kind)
	}
	if strings.TrimSpace(a.Name) == "" {
		return Invalid(field+".name", "is required")
	}
	return nil
}

// Masked returns a copy of the case with personal data masked for display
// and export: ID numbers keep the first 6 and last 4 characters, phones the
// first 3 and last 4. Evaluators are never shown (WithoutEvaluators keeps
// the applicant's data, for ?full=1).
func (c Case) Masked() Case {
	c.Applicant = c.Applicant.masked()
	c.Evaluations = withoutEvaluators(c.Evaluations)
	if c.Agent != nil {
		a := c.Agent.masked()
		c.Agent = &a
	}
	return c
}

// WithoutEvaluators returns the case without the evaluators' identities,
// which are never shown, not even with full personal data.
func (c Case) WithoutEvaluators() Case {
	c.Evaluations = withoutEvaluators(c.Evaluations)
	return c
}

func (a Applicant) masked() Applicant {
	a.IDNumber = MaskID(a.IDNumber)
	a.Phone = MaskPhone(a.Phone)
	return a
}

// MaskID masks an ID number: 320507********1234.
func MaskID(s string) string { return maskMiddle(s, 6, 4) }

// MaskPhone masks a phone number: 139****5678.
func MaskPhone(s string) string { return maskMiddle(s, 3, 4) }

func maskMiddle(s string, head, tail int) string {
	r := []rune(s)
	if len(r) <= head+tail {
		return strings.Repeat("*", len(r))
	}
	for i := head; i < len(r)-tail; i++ {
		r[i] = '*'
	}
	return string(r)
}

// MaskChange masks the personal data in a feed change for display: the
// applicant's ID number and phone of a case (also of a new case parked as
// a conflict), and the evaluator of an evaluation. Other changes carry none and are returned as they are.
func MaskChange(ch Change, full bool) (Change, error) {
	switch ch.Kind {
	case "case":
		var c Case
		if err := json.Unmarshal(ch.Data, &c); err != nil {
			return ch, fmt.Errorf("decode case change %s: %w", ch.Key, err)
		}
		if full {
			c = c.WithoutEvaluators()
		} else {
			c = c.Masked()
		}
		b, err := json.Marshal(c)
		if err != nil {
			return ch, err
		}
		ch.Data = b
	case "evaluation":
		var e Evaluation
		if err := json.Unmarshal(ch.Data, &e); err != nil {
			return ch, fmt.Errorf("decode evaluation change %s: %w", ch.Key, err)
		}
		e.Evaluator = ""
		b, err := json.Marshal(e)
		if err != nil {
			return ch, err
		}
		ch.Data = b
	case "conflict":
		var rec ConflictRecord
		if err := json.Unmarshal(ch.Data, &rec); err != nil {
			return ch, fmt.Errorf("decode conflict change %s: %w", ch.Key, err)
		}
		if !full {
			rec = rec.Masked()
		} else if rec.Op != nil && rec.Op.Evaluation != nil {
			e := *rec.Op.Evaluation
			e.Evaluator = ""
			op := *rec.Op
			op.Evaluation = &e
			rec.Op = &op
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return ch, err
		}
		ch.Data = b
	}
	return ch, nil
}
