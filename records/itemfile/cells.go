package itemfile

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/stationsync/stationsync/records"
)

// maxCellChars is Excel's limit on the characters (UTF-16 code units) of a
// cell.
const maxCellChars = 32767

// cleanCell checks a raw cell and returns it trimmed, with line breaks
// normalised to "\n".
func cleanCell(v string) (string, error) {
	if err := checkCell(v); err != nil {
		return "", err
	}
	if strings.IndexByte(v, '\r') >= 0 {
		v = strings.ReplaceAll(v, "\r\n", "\n")
		v = strings.ReplaceAll(v, "\r", "\n")
	}
	return strings.TrimSpace(v), nil
}

// checkCell reports whether v can be a cell: at most MaxCellBytes bytes and
// maxCellChars characters of valid UTF-8 without control characters.
func checkCell(v string) error {
	if len(v) > MaxCellBytes {
		return fmt.Errorf("is longer than %d bytes (%d KiB)", MaxCellBytes, MaxCellBytes>>10)
	}
	if !utf8.ValidString(v) {
		return errors.New("is not valid UTF-8 text")
	}
	n := 0
	for _, r := range v {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || (r >= 0x7f && r <= 0x9f) || r == 0xfffe || r == 0xffff {
			return fmt.Errorf("contains the control character U+%04X", r)
		}
		n += utf16.RuneLen(r)
	}
	if n > maxCellChars {
		return fmt.Errorf("is longer than %d characters (Excel's limit for a cell)", maxCellChars)
	}
	return nil
}

// narrow replaces full-width ASCII (digits, letters, parentheses...) and the
// ideographic space with their half-width forms.
func narrow(s string) string {
	for _, r := range s {
		if (r >= 0xff01 && r <= 0xff5e) || r == 0x3000 {
			return strings.Map(func(r rune) rune {
				switch {
				case r >= 0xff01 && r <= 0xff5e:
					return r - 0xfee0
				case r == 0x3000:
					return ' '
				}
				return r
			}, s)
		}
	}
	return s
}

// scientific matches a number Excel has shortened to scientific notation,
// as happens to long numeric codes in a CSV file opened and saved in Excel.
var scientific = regexp.MustCompile(`^[0-9](\.[0-9]+)?[eE]\+?[0-9]+$`)

func notScientific(v string) error {
	if scientific.MatchString(v) {
		return fmt.Errorf("%q looks like a long number Excel turned into scientific notation: format the column as text and enter the code again", v)
	}
	return nil
}

// Levels (行使层级) 1..6.
var levelNames = []string{1: "国家", 2: "省", 3: "市", 4: "县(区)", 5: "镇(街道)", 6: "村(社区)"}

var levelAliases = map[string]int{
	"国家": 1, "国家级": 1, "中央": 1,
	"省": 2, "省级": 2,
	"市": 3, "市级": 3, "设区的市": 3, "设区市": 3,
	"县": 4, "区": 4, "县级": 4, "区级": 4, "县(区)": 4, "县(区)级": 4, "县(市、区)": 4, "县(市区)": 4, "县区": 4,
	"镇": 5, "乡": 5, "街道": 5, "乡镇": 5, "镇(街道)": 5, "乡镇(街道)": 5, "乡(镇、街道)": 5, "乡(镇)": 5, "镇街": 5, "乡级": 5, "镇级": 5,
	"村": 6, "社区": 6, "村(社区)": 6, "村(居)": 6, "村级": 6,
}

func parseLevel(v string) (int, error) {
	s := strings.ReplaceAll(narrow(v), " ", "")
	if n, ok := levelAliases[s]; ok {
		return n, nil
	}
	if len(s) == 1 && s[0] >= '1' && s[0] <= '6' {
		return int(s[0] - '0'), nil
	}
	return 0, fmt.Errorf("%q must be 1-6 or 国家, 省, 市, 县(区), 镇(街道), 村(社区)", v)
}

func formatLevel(l int) string {
	if l >= 1 && l < len(levelNames) {
		return levelNames[l]
	}
	if l == 0 {
		return ""
	}
	return strconv.Itoa(l)
}

// Limit units: what Read accepts after the number.
var limitUnits = map[string]string{
	"": "working_days", "个工作日": "working_days", "工作日": "working_days", "workingdays": "working_days", "working_days": "working_days",
	"天": "days", "日": "days", "个自然日": "days", "自然日": "days", "days": "days", "day": "days",
	"小时": "hours", "个小时": "hours", "hours": "hours", "hour": "hours", "h": "hours",
}

var limitWords = map[string]string{"working_days": "个工作日", "days": "天", "hours": "小时"}

func parseLimit(v string) (*records.Limit, error) {
	s := strings.ReplaceAll(narrow(v), " ", "")
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	unit, ok := limitUnits[strings.ToLower(s[i:])]
	n, err := strconv.Atoi(s[:i])
	if !ok || err != nil || n <= 0 {
		return nil, fmt.Errorf("%q must be a positive number, optionally followed by 个工作日 (the default), 天/日 (calendar days) or 小时", v)
	}
	return &records.Limit{Value: n, Unit: unit}, nil
}

func formatLimit(l *records.Limit) string {
	if l == nil {
		return ""
	}
	return strconv.Itoa(l.Value) + limitWords[l.Unit]
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(narrow(v))) {
	case "是", "true", "1", "yes", "y":
		return true, nil
	case "否", "false", "0", "no", "n":
		return false, nil
	}
	return false, fmt.Errorf("%q must be 是 or 否", v)
}

func formatBool(b bool) string {
	if b {
		return "是"
	}
	return "否"
}

// Service objects (服务对象) 1..6 and channels (办理形式) 1..4.
var (
	objectNames   = []string{1: "自然人", 2: "企业法人", 3: "事业法人", 4: "社会组织法人", 5: "行政机关", 6: "其他组织"}
	objectAliases = map[string]int{"个人": 1, "企业": 2, "事业单位": 3, "社会组织": 4, "机关": 5}

	channelNames   = []string{1: "窗口办理", 2: "网上办理", 3: "掌上办理", 4: "快递"}
	channelAliases = map[string]int{
		"窗口": 1, "现场办理": 1,
		"网上": 2, "网办": 2, "在线办理": 2,
		"掌上": 3, "掌办": 3, "移动端": 3, "手机": 3,
		"快递办理": 4, "快递送达": 4, "邮寄": 4, "寄递": 4,
	}
)

// listSeparators split the entries of a list cell.
func isListSeparator(r rune) bool {
	switch r {
	case '、', ',', '，', ';', '；', '/', '／', '\n', '\t':
		return true
	}
	return false
}

// parseList reads a list of names or numbers (1..len(names)-1).
func parseList(v string, names []string, aliases map[string]int, what string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, tok := range strings.FieldsFunc(v, isListSeparator) {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		n := lookupName(tok, names, aliases)
		if n == 0 {
			return nil, fmt.Errorf("%q is not a %s: use %s or 1-%d", tok, what, strings.Join(names[1:], ", "), len(names)-1)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

func lookupName(tok string, names []string, aliases map[string]int) int {
	t := narrow(tok)
	if len(t) == 1 && t[0] >= '1' && int(t[0]-'0') < len(names) {
		return int(t[0] - '0')
	}
	for i, n := range names {
		if i > 0 && n == t {
			return i
		}
	}
	return aliases[t]
}

func formatList(list []int, names []string) string {
	parts := make([]string, len(list))
	for i, n := range list {
		if n >= 1 && n < len(names) {
			parts[i] = names[n]
		} else {
			parts[i] = strconv.Itoa(n)
		}
	}
	return strings.Join(parts, "、")
}

// Materials (申请材料): one per line, fields separated by |.

func isMaterialSeparator(r rune) bool { return r == '\n' || r == '；' || r == ';' }
func isFieldSeparator(r rune) bool    { return r == '|' || r == '｜' }

func parseMaterials(v string) ([]records.Material, error) {
	var out []records.Material
	for _, line := range strings.FieldsFunc(v, isMaterialSeparator) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		no := len(out) + 1
		f := splitFields(line)
		if len(f) > 5 {
			return nil, fmt.Errorf("material %d %q has %d fields: write 名称|出具单位|原件数|复印件数|必要", no, line, len(f))
		}
		for len(f) < 5 {
			f = append(f, "")
		}
		m := records.Material{Name: f[0], Issuer: f[1], Required: true}
		if m.Name == "" {
			return nil, fmt.Errorf("material %d %q has no name: write 名称|出具单位|原件数|复印件数|必要", no, line)
		}
		var err error
		if m.Originals, err = parseCount(f[2], "原件"); err != nil {
			return nil, fmt.Errorf("material %d %q: %w", no, line, err)
		}
		if m.Copies, err = parseCount(f[3], "复印件"); err != nil {
			return nil, fmt.Errorf("material %d %q: %w", no, line, err)
		}
		switch strings.ToLower(narrow(f[4])) {
		case "", "必要", "必须", "必需", "必交", "必填", "是", "required":
			m.Required = true
		case "非必要", "非必须", "非必需", "可选", "选填", "否", "optional":
			m.Required = false
		default:
			return nil, fmt.Errorf("material %d %q: %q must be 必要 or 非必要", no, line, f[4])
		}
		out = append(out, m)
	}
	return out, nil
}

// splitFields splits a material at | or ｜, keeping empty fields.
func splitFields(line string) []string {
	var f []string
	start := 0
	for i, r := range line {
		if isFieldSeparator(r) {
			f = append(f, strings.TrimSpace(line[start:i]))
			start = i + utf8.RuneLen(r)
		}
	}
	return append(f, strings.TrimSpace(line[start:]))
}

// maxCount is the largest number of originals or copies (nine digits).
const maxCount = 999999999

// parseCount reads 原件数 or 复印件数: "", "1", "1份", "原件1份", "原件：1份".
func parseCount(v, label string) (int, error) {
	s := strings.ReplaceAll(narrow(v), " ", "")
	if s == "" {
		return 0, nil
	}
	s = strings.TrimPrefix(s, label)
	s = strings.TrimLeft(s, ":：")
	s = strings.TrimSuffix(s, "份")
	if s == "" || len(s) > 9 || strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, fmt.Errorf("%s数 %q must be a whole number such as 1 or %s1份", label, v, label)
	}
	n, _ := strconv.Atoi(s)
	return n, nil
}

func formatMaterials(ms []records.Material) (string, error) {
	lines := make([]string, len(ms))
	for i, m := range ms {
		for _, s := range []string{m.Name, m.Issuer} {
			if strings.ContainsFunc(s, func(r rune) bool { return isMaterialSeparator(r) || isFieldSeparator(r) || r == '\r' }) {
				return "", fmt.Errorf("material %d: %q cannot contain |, ｜, ；, ; or a line break in a file", i+1, s)
			}
		}
		if m.Originals > maxCount || m.Copies > maxCount {
			return "", fmt.Errorf("material %d: %d originals and %d copies: at most %d each", i+1, m.Originals, m.Copies, maxCount)
		}
		need := "必要"
		if !m.Required {
			need = "非必要"
		}
		lines[i] = fmt.Sprintf("%s|%s|原件%d份|复印件%d份|%s", m.Name, m.Issuer, m.Originals, m.Copies, need)
	}
	return strings.Join(lines, "\n"), nil
}
