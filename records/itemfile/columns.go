package itemfile

import (
	"strings"

	"github.com/stationsync/stationsync/records"
)

// Column describes one column of an item file.
type Column struct {
	Header   string   // the Chinese header Write writes
	Aliases  []string // other headers Read accepts for the column
	Field    string   // the records.Item field, as records.Error names it ("type.code")
	Required bool     // the column must be present (its cells must also be filled)
	Format   string   // what a cell holds
}

// column is a Column with its conversions. set is only called with a
// non-empty, cleaned cell; get returns the cell Write writes.
type column struct {
	Column
	width float64 // XLSX column width, in characters
	set   func(it *records.Item, v string) error
	get   func(it *records.Item) (string, error)
}

// columns is the table of every column, in the order Write writes them.
var columns = []column{
	{Column: Column{Header: "事项编码", Aliases: []string{"实施编码", "事项实施编码"}, Field: "code", Required: true,
		Format: "text without spaces or '/', at most 64 characters"}, width: 18,
		set: func(it *records.Item, v string) error {
			if err := notScientific(v); err != nil {
				return err
			}
			it.Code = v
			return nil
		},
		get: func(it *records.Item) (string, error) { return it.Code, nil }},
	{Column: Column{Header: "基本编码", Aliases: []string{"事项基本编码"}, Field: "base_code",
		Format: "text"}, width: 18,
		set: func(it *records.Item, v string) error {
			if err := notScientific(v); err != nil {
				return err
			}
			it.BaseCode = v
			return nil
		},
		get: func(it *records.Item) (string, error) { return it.BaseCode, nil }},
	{Column: Column{Header: "事项名称", Aliases: []string{"实施清单名称"}, Field: "name", Required: true,
		Format: "text"}, width: 30,
		set: func(it *records.Item, v string) error { it.Name = v; return nil },
		get: func(it *records.Item) (string, error) { return it.Name, nil }},
	{Column: Column{Header: "事项类型编码", Aliases: []string{"事项类型代码"}, Field: "type.code", Required: true,
		Format: "01-10, 20 (national) or 11-19, 21-99 (local); a single digit is read with a leading 0"}, width: 8,
		set: func(it *records.Item, v string) error {
			v = narrow(v)
			if len(v) == 1 && v[0] >= '0' && v[0] <= '9' {
				v = "0" + v // Excel drops the leading zero of 01
			}
			it.Type.Code = v
			return nil
		},
		get: func(it *records.Item) (string, error) { return it.Type.Code, nil }},
	{Column: Column{Header: "事项类型", Aliases: []string{"事项类型名称"}, Field: "type.name",
		Format: "text; empty: the national name of the type code"}, width: 10,
		set: func(it *records.Item, v string) error { it.Type.Name = v; return nil },
		get: func(it *records.Item) (string, error) { return it.Type.Name, nil }},
	{Column: Column{Header: "设定依据", Aliases: []string{"法律依据"}, Field: "basis",
		Format: "text"}, width: 40,
		set: func(it *records.Item, v string) error { it.Basis = v; return nil },
		get: func(it *records.Item) (string, error) { return it.Basis, nil }},
	{Column: Column{Header: "行使层级", Field: "level",
		Format: "1-6 or 国家, 省, 市, 县(区), 镇(街道), 村(社区)"}, width: 10,
		set: func(it *records.Item, v string) (err error) { it.Level, err = parseLevel(v); return err },
		get: func(it *records.Item) (string, error) { return formatLevel(it.Level), nil }},
	{Column: Column{Header: "实施主体", Aliases: []string{"实施主体名称", "实施机构"}, Field: "department.name",
		Format: "text"}, width: 26,
		set: func(it *records.Item, v string) error { dept(it).Name = v; return nil },
		get: func(it *records.Item) (string, error) {
			if it.Department == nil {
				return "", nil
			}
			return it.Department.Name, nil
		}},
	{Column: Column{Header: "实施主体统一社会信用代码", Aliases: []string{"实施主体编码", "统一社会信用代码"}, Field: "department.credit_code",
		Format: "the 18-character unified social credit code"}, width: 22,
		set: func(it *records.Item, v string) error {
			if err := notScientific(v); err != nil {
				return err
			}
			dept(it).CreditCode = v
			return nil
		},
		get: func(it *records.Item) (string, error) {
			if it.Department == nil {
				return "", nil
			}
			return it.Department.CreditCode, nil
		}},
	{Column: Column{Header: "受理条件", Aliases: []string{"申请条件"}, Field: "conditions",
		Format: "text"}, width: 40,
		set: func(it *records.Item, v string) error { it.Conditions = v; return nil },
		get: func(it *records.Item) (string, error) { return it.Conditions, nil }},
	{Column: Column{Header: "服务对象", Aliases: []string{"服务对象类型"}, Field: "objects",
		Format: "list of 自然人, 企业法人, 事业法人, 社会组织法人, 行政机关, 其他组织 or 1-6, separated by 、"}, width: 18,
		set: func(it *records.Item, v string) (err error) {
			it.Objects, err = parseList(v, objectNames, objectAliases, "服务对象")
			return err
		},
		get: func(it *records.Item) (string, error) { return formatList(it.Objects, objectNames), nil }},
	{Column: Column{Header: "办理流程", Field: "procedure",
		Format: "text"}, width: 40,
		set: func(it *records.Item, v string) error { it.Procedure = v; return nil },
		get: func(it *records.Item) (string, error) { return it.Procedure, nil }},
	{Column: Column{Header: "申请材料", Aliases: []string{"申请材料目录"}, Field: "materials",
		Format: "one material per line: 名称|出具单位|原件N份|复印件N份|必要 or 非必要"}, width: 50,
		set: func(it *records.Item, v string) (err error) { it.Materials, err = parseMaterials(v); return err },
		get: func(it *records.Item) (string, error) { return formatMaterials(it.Materials) }},
	{Column: Column{Header: "法定办结时限", Aliases: []string{"法定时限"}, Field: "legal_limit",
		Format: "positive number with optional unit: 20 or 20个工作日 (working days), 30天 or 30日 (calendar days), 2小时"}, width: 13,
		set: func(it *records.Item, v string) (err error) { it.LegalLimit, err = parseLimit(v); return err },
		get: func(it *records.Item) (string, error) { return formatLimit(it.LegalLimit), nil }},
	{Column: Column{Header: "承诺办结时限", Aliases: []string{"承诺时限"}, Field: "promised_limit",
		Format: "as 法定办结时限"}, width: 13,
		set: func(it *records.Item, v string) (err error) { it.PromisedLimit, err = parseLimit(v); return err },
		get: func(it *records.Item) (string, error) { return formatLimit(it.PromisedLimit), nil }},
	{Column: Column{Header: "办理结果", Aliases: []string{"办理结果名称"}, Field: "result.name",
		Format: "text"}, width: 20,
		set: func(it *records.Item, v string) error { result(it).Name = v; return nil },
		get: func(it *records.Item) (string, error) {
			if it.Result == nil {
				return "", nil
			}
			return it.Result.Name, nil
		}},
	{Column: Column{Header: "结果样本", Aliases: []string{"办理结果样本"}, Field: "result.sample",
		Format: "text: name or link of a sample of the result"}, width: 20,
		set: func(it *records.Item, v string) error { result(it).Sample = v; return nil },
		get: func(it *records.Item) (string, error) {
			if it.Result == nil {
				return "", nil
			}
			return it.Result.Sample, nil
		}},
	{Column: Column{Header: "是否收费", Field: "fee.charged",
		Format: "是 or 否"}, width: 9,
		set: func(it *records.Item, v string) (err error) { fee(it).Charged, err = parseBool(v); return err },
		get: func(it *records.Item) (string, error) {
			if it.Fee == nil {
				return "", nil
			}
			return formatBool(it.Fee.Charged), nil
		}},
	{Column: Column{Header: "收费依据", Aliases: []string{"收费标准及依据"}, Field: "fee.basis",
		Format: "text"}, width: 24,
		set: func(it *records.Item, v string) error { fee(it).Basis = v; return nil },
		get: func(it *records.Item) (string, error) {
			if it.Fee == nil {
				return "", nil
			}
			return it.Fee.Basis, nil
		}},
	{Column: Column{Header: "即办件", Aliases: []string{"是否即办件"}, Field: "instant",
		Format: "是 (即办件) or 否 (承诺件)"}, width: 8,
		set: func(it *records.Item, v string) (err error) {
			switch narrow(v) {
			case "即办件", "即办":
				it.Instant = true
			case "承诺件":
				it.Instant = false
			default:
				it.Instant, err = parseBool(v)
			}
			return err
		},
		get: func(it *records.Item) (string, error) { return formatBool(it.Instant), nil }},
	{Column: Column{Header: "办理形式", Aliases: []string{"办理渠道"}, Field: "channels",
		Format: "list of 窗口办理, 网上办理, 掌上办理, 快递 or 1-4, separated by 、"}, width: 30,
		set: func(it *records.Item, v string) (err error) {
			it.Channels, err = parseList(v, channelNames, channelAliases, "办理形式")
			return err
		},
		get: func(it *records.Item) (string, error) { return formatList(it.Channels, channelNames), nil }},
	{Column: Column{Header: "网上可办", Aliases: []string{"是否网上可办", "是否网办"}, Field: "online",
		Format: "是 or 否"}, width: 9,
		set: func(it *records.Item, v string) (err error) { it.Online, err = parseBool(v); return err },
		get: func(it *records.Item) (string, error) { return formatBool(it.Online), nil }},
	{Column: Column{Header: "可预约", Aliases: []string{"是否可预约", "是否支持预约"}, Field: "appointment",
		Format: "是 or 否"}, width: 8,
		set: func(it *records.Item, v string) (err error) { it.Appointment, err = parseBool(v); return err },
		get: func(it *records.Item) (string, error) { return formatBool(it.Appointment), nil }},
}

// Columns returns the table of every column, in the order Write writes
// them. The returned slice is a copy.
func Columns() []Column {
	out := make([]Column, len(columns))
	for i, c := range columns {
		out[i] = c.Column
		out[i].Aliases = append([]string(nil), c.Aliases...)
	}
	return out
}

// byHeader maps every accepted (normalised) header to its column index.
var byHeader = func() map[string]int {
	m := map[string]int{}
	for i, c := range columns {
		for _, h := range append([]string{c.Header}, c.Aliases...) {
			m[normHeader(h)] = i
		}
	}
	return m
}()

// normHeader normalises a header cell for lookup: trimmed, without the
// required-marker star and with half-width parentheses.
func normHeader(h string) string {
	h = strings.TrimPrefix(h, "\ufeff")
	h = strings.TrimSpace(h)
	h = strings.Trim(h, "*＊ \t")
	return narrow(h)
}

// columnForField returns the index of the column holding an item field as
// records.Item.Validate names it ("objects[2]", "legal_limit.value"), or -1.
func columnForField(field string) int {
	if i := strings.IndexByte(field, '['); i >= 0 {
		field = field[:i]
	}
	for i, c := range columns {
		if c.Field == field {
			return i
		}
	}
	if i := strings.IndexByte(field, '.'); i >= 0 {
		return columnForField(field[:i])
	}
	return -1
}

func dept(it *records.Item) *records.Department {
	if it.Department == nil {
		it.Department = &records.Department{}
	}
	return it.Department
}

func result(it *records.Item) *records.Result {
	if it.Result == nil {
		it.Result = &records.Result{}
	}
	return it.Result
}

func fee(it *records.Item) *records.Fee {
	if it.Fee == nil {
		it.Fee = &records.Fee{}
	}
	return it.Fee
}
