package records

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Item origins: district items are owned and versioned by the district
// center; local items are the station's own additions (个性化).
const (
	OriginDistrict = "district"
	OriginLocal    = "local"
)

// ItemType is an item's type (事项类型): code and name. The name is kept
// because provinces number types differently.
type ItemType struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// Limit is a time limit (办结时限): a value and its unit.
type Limit struct {
	Value int    `json:"value"`
	Unit  string `json:"unit"`
}

// Material is one required application material (申请材料).
type Material struct {
	Name      string `json:"name"`
	Issuer    string `json:"issuer,omitempty"`
	Required  bool   `json:"required"`
	Originals int    `json:"originals"`
	Copies    int    `json:"copies"`
}

// Department is the implementing body (实施主体).
type Department struct {
	Name       string `json:"name"`
	CreditCode string `json:"credit_code,omitempty"` // 18-char unified social credit code
}

// Result is what a case of the item produces (办理结果).
type Result struct {
	Name   string `json:"name"`
	Sample string `json:"sample,omitempty"`
}

// Fee says whether the item is charged (是否收费) and on what basis.
type Fee struct {
	Charged bool   `json:"charged"`
	Basis   string `json:"basis,omitempty"`
}

// Item is a service item (政务服务事项) of the station's item list, with the
// GB/T 39046-2020 fields of DOMAIN.md.
type Item struct {
	Code          string      `json:"code"`                // 实施编码
	BaseCode      string      `json:"base_code,omitempty"` // 基本编码
	Name          string      `json:"name"`
	Type          ItemType    `json:"type"`
	Basis         string      `json:"basis,omitempty"`
	Level         int         `json:"level,omitempty"` // 行使层级 1 国家 .. 6 村(社区)
	Department    *Department `json:"department,omitempty"`
	Conditions    string      `json:"conditions,omitempty"`
	Objects       []int       `json:"objects,omitempty"` // 服务对象 1..6
	Procedure     string      `json:"procedure,omitempty"`
	Materials     []Material  `json:"materials,omitempty"`
	LegalLimit    *Limit      `json:"legal_limit,omitempty"`
	PromisedLimit *Limit      `json:"promised_limit,omitempty"`
	Result        *Result     `json:"result,omitempty"`
	Fee           *Fee        `json:"fee,omitempty"`
	Instant       bool        `json:"instant"`               // 即办件 (case type 1) or 承诺件 (2)
	Channels      []int       `json:"channels,omitempty"`    // 办理形式 1 window, 2 web, 3 mobile, 4 courier
	Online        bool        `json:"online,omitempty"`      // 网上可办
	Appointment   bool        `json:"appointment,omitempty"` // 可预约
	Origin        string      `json:"origin"`
	Version       uint64      `json:"version"`
}

// knownTypes are the national item type codes (DOMAIN.md); 11+ and 21+ are
// local extensions and accepted too.
var knownTypes = map[string]string{
	"01": "行政许可", "02": "行政处罚", "03": "行政强制", "04": "行政征收",
	"05": "行政给付", "06": "行政检查", "07": "行政确认", "08": "行政奖励",
	"09": "行政裁决", "10": "其他", "20": "公共服务",
}

// TypeName returns the national name of a type code, or "" if the code is
// not a national one.
func TypeName(code string) string { return knownTypes[code] }

// PrepareWrite checks and completes an item written with PUT .../{code}:
// an empty code in the body takes the path's, a different one is refused,
// and the writer decides origin and version: a station writes only its
// local items (version 0: the store counts), the center only district
// items (version 1: the store decides the next). Then the item must
// validate. Station and center handlers, and their fuzz targets, share
// it.
func (it *Item) PrepareWrite(code, origin string) error {
	if it.Code == "" {
		it.Code = code
	}
	if it.Code != code {
		return Invalid("code", "%q in the body differs from %q in the path", it.Code, code)
	}
	if it.Origin != "" && it.Origin != origin {
		if origin == OriginLocal {
			return Invalid("origin", "a station writes only its local items; district items come from the center")
		}
		return Invalid("origin", "the center publishes district items only; local items belong to their station")
	}
	it.Origin, it.Version = origin, 0
	if origin == OriginDistrict {
		it.Version = 1
	}
	return it.Validate()
}

// Validate checks an item for storage. It names the first bad field.
func (it *Item) Validate() error {
	if strings.TrimSpace(it.Code) == "" {
		return Invalid("code", "is required")
	}
	if utf8.RuneCountInString(it.Code) > 64 || strings.ContainsAny(it.Code, "/ \t\r\n") {
		return Invalid("code", "%q must be at most 64 characters without spaces or '/'", it.Code)
	}
	if strings.TrimSpace(it.Name) == "" {
		return Invalid("name", "is required")
	}
	if it.Type.Code == "" {
		return Invalid("type.code", "is required")
	}
	if _, ok := knownTypes[it.Type.Code]; !ok && !isLocalType(it.Type.Code) {
		return Invalid("type.code", "%q is not a known item type (01-10, 20, or local 11+/21+)", it.Type.Code)
	}
	switch it.Origin {
	case OriginDistrict, OriginLocal:
	default:
		return Invalid("origin", "must be %q or %q, got %q", OriginDistrict, OriginLocal, it.Origin)
	}
	for name, l := range map[string]*Limit{"legal_limit": it.LegalLimit, "promised_limit": it.PromisedLimit} {
		if l == nil {
			continue
		}
		if l.Value <= 0 {
			return Invalid(name+".value", "must be positive, got %d", l.Value)
		}
		switch l.Unit {
		case "working_days", "days", "hours":
		default:
			return Invalid(name+".unit", "must be working_days, days or hours, got %q", l.Unit)
		}
	}
	if it.Level != 0 && (it.Level < 1 || it.Level > 6) {
		return Invalid("level", "must be 1 (国家) to 6 (村/社区), got %d", it.Level)
	}
	if it.Department != nil && it.Department.CreditCode != "" && utf8.RuneCountInString(it.Department.CreditCode) != 18 {
		return Invalid("department.credit_code", "must be the 18-character unified social credit code, got %q", it.Department.CreditCode)
	}
	for i, o := range it.Objects {
		if o < 1 || o > 6 {
			return Invalid("objects["+strconv.Itoa(i)+"]", "must be 1 to 6 (自然人, 企业法人, 事业法人, 社会组织法人, 行政机关, 其他组织), got %d", o)
		}
	}
	for i, ch := range it.Channels {
		if ch < 1 || ch > 4 {
			return Invalid("channels["+strconv.Itoa(i)+"]", "must be 1 (window), 2 (web), 3 (mobile) or 4 (courier), got %d", ch)
		}
	}
	for i, m := range it.Materials {
		if strings.TrimSpace(m.Name) == "" {
			return Invalid("materials["+strconv.Itoa(i)+"].name", "is required")
		}
		if m.Originals < 0 || m.Copies < 0 {
			return Invalid("materials["+strconv.Itoa(i)+"]", "originals and copies cannot be negative")
		}
	}
	return nil
}

// isLocalType reports whether code is a two-digit local extension type
// (11-19 or 21-99).
func isLocalType(code string) bool {
	if len(code) != 2 || code[0] < '0' || code[0] > '9' || code[1] < '0' || code[1] > '9' {
		return false
	}
	n := int(code[0]-'0')*10 + int(code[1]-'0')
	return (n >= 11 && n <= 19) || n >= 21
}
