package calendar

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Calendar is a parsed holiday calendar covering one or more years. It is
// immutable after Parse and safe for concurrent use. A nil *Calendar is
// valid: it covers no year, so every date follows the Monday-to-Friday rule.
type Calendar struct {
	years []int // covered years, ascending

	// base is the day number of kinds[0]; kinds spans the first to the last
	// listed date. Dates outside it (or plain inside it) follow the weekday
	// rule.
	base  int
	kinds []dayKind
	// adj[i] is the sum over kinds[:i] of the difference each listed date
	// makes to the plain weekday count: -1 for a holiday on a weekday, +1 for
	// a working weekend day. len(adj) == len(kinds)+1.
	adj []int32
}

type dayKind int8

const (
	plain dayKind = iota
	holiday
	workday
)

// Year range accepted in calendar files.
const (
	minYear = 1900
	maxYear = 2999
)

// holidayFile is the YAML form of one year file.
type holidayFile struct {
	Year     yaml.Node   `yaml:"year"`
	Holidays []yaml.Node `yaml:"holidays"`
	Workdays []yaml.Node `yaml:"workdays"`
}

// Parse reads one or more YAML year files, keyed by a label used in error
// messages (normally the file name, e.g. "2026.yaml"), into one calendar.
// Each file has the keys year (required), holidays and workdays (lists of
// "2006-01-02" dates within that year); unknown keys are refused.
//
// Errors name the file, the key and the bad value, e.g.
//
//	2026.yaml: holidays[3]: "2026-02-30" is not a date (line 9)
//
// A date listed twice, a date that is both a holiday and a working day, an
// adjusted working day that is not a Saturday or Sunday, and a year defined
// by two files are errors. At least one file is required.
func Parse(files map[string][]byte) (*Calendar, error) {
	if len(files) == 0 {
		return nil, errors.New("calendar: no holiday calendar files")
	}
	labels := make([]string, 0, len(files))
	for label := range files {
		labels = append(labels, label)
	}
	sort.Strings(labels)

	kinds := make(map[int]dayKind)
	yearFrom := make(map[int]string) // year -> label that defined it
	for _, label := range labels {
		year, err := parseFile(label, files[label], kinds)
		if err != nil {
			return nil, err
		}
		if prev, dup := yearFrom[year]; dup {
			return nil, fmt.Errorf("%s: year: %d is already defined by %s", label, year, prev)
		}
		yearFrom[year] = label
	}

	c := &Calendar{}
	for y := range yearFrom {
		c.years = append(c.years, y)
	}
	sort.Ints(c.years)
	if len(kinds) == 0 {
		return c, nil
	}
	lo, hi := 0, 0
	first := true
	for n := range kinds {
		if first || n < lo {
			lo = n
		}
		if first || n > hi {
			hi = n
		}
		first = false
	}
	c.base = lo
	c.kinds = make([]dayKind, hi-lo+1)
	for n, k := range kinds {
		c.kinds[n-lo] = k
	}
	c.adj = make([]int32, len(c.kinds)+1)
	for i, k := range c.kinds {
		delta := int32(0)
		weekend := isWeekend(lo + i)
		switch {
		case k == holiday && !weekend:
			delta = -1
		case k == workday && weekend:
			delta = 1
		}
		c.adj[i+1] = c.adj[i] + delta
	}
	return c, nil
}

// parseFile decodes one year file, adds its dates to kinds and returns its
// year.
func parseFile(label string, data []byte, kinds map[int]dayKind) (year int, err error) {
	var f holidayFile
	if err := decodeStrict(data, &f); err != nil {
		return 0, fmt.Errorf("%s: %w", label, err)
	}

	yn := resolve(&f.Year)
	if yn.Kind == 0 {
		return 0, fmt.Errorf("%s: year: missing", label)
	}
	if yn.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("%s: year: not a year (line %d)", label, yn.Line)
	}
	year, err = strconv.Atoi(yn.Value)
	if err != nil || year < minYear || year > maxYear {
		return 0, fmt.Errorf("%s: year: %q is not a year between %d and %d (line %d)",
			label, yn.Value, minYear, maxYear, yn.Line)
	}

	type seen struct {
		key  string
		kind dayKind
	}
	local := make(map[int]seen, len(f.Holidays)+len(f.Workdays))
	lists := []struct {
		key   string
		kind  dayKind
		nodes []yaml.Node
	}{
		{"holidays", holiday, f.Holidays},
		{"workdays", workday, f.Workdays},
	}
	for _, list := range lists {
		for i := range list.nodes {
			n := resolve(&list.nodes[i])
			key := fmt.Sprintf("%s[%d]", list.key, i)
			if n.Kind != yaml.ScalarNode {
				return 0, fmt.Errorf("%s: %s: not a date (line %d)", label, key, n.Line)
			}
			d, err := ParseDate(n.Value)
			if err != nil {
				return 0, fmt.Errorf("%s: %s: %v (line %d)", label, key, err, n.Line)
			}
			if d.Year != year {
				return 0, fmt.Errorf("%s: %s: %q is not in year %d (line %d)", label, key, n.Value, year, n.Line)
			}
			dn := d.dayNumber()
			if prev, dup := local[dn]; dup {
				if prev.kind == list.kind {
					return 0, fmt.Errorf("%s: %s: %q is listed twice (also %s) (line %d)",
						label, key, n.Value, prev.key, n.Line)
				}
				return 0, fmt.Errorf("%s: %s: %q is both a holiday and a working day (also %s) (line %d)",
					label, key, n.Value, prev.key, n.Line)
			}
			if list.kind == workday && !isWeekend(dn) {
				return 0, fmt.Errorf("%s: %s: %q is a %s; only a Saturday or Sunday can be an adjusted working day (line %d)",
					label, key, n.Value, d.Weekday(), n.Line)
			}
			local[dn] = seen{key, list.kind}
		}
	}
	for dn, s := range local {
		kinds[dn] = s.kind
	}
	return year, nil
}

// decodeStrict decodes exactly one YAML document into out, refusing unknown
// keys. The YAML library is not trusted not to panic on hostile input.
func decodeStrict(data []byte, out *holidayFile) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed YAML: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty file")
		}
		return tidyYAMLError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return tidyYAMLError(err)
		}
		return errors.New("more than one YAML document")
	}
	return nil
}

// tidyYAMLError turns "yaml: unmarshal errors:\n  line 3: field holiday not
// found in type calendar.holidayFile" into one line.
func tidyYAMLError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			m = strings.Replace(m, "not found in type calendar.holidayFile", "is not a known key (want year, holidays, workdays)", 1)
			msgs[i] = m
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return err
}

// resolve follows aliases (bounded) and returns the node they point to.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; i < 16 && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

// Years returns the covered years in ascending order.
func (c *Calendar) Years() []int {
	if c == nil {
		return nil
	}
	return append([]int(nil), c.years...)
}

// Covers reports whether the calendar has a file for year.
func (c *Calendar) Covers(year int) bool {
	if c == nil {
		return false
	}
	i := sort.SearchInts(c.years, year)
	return i < len(c.years) && c.years[i] == year
}

// IsWorkday reports whether d is a working day: Monday to Friday unless
// listed as a holiday, Saturday and Sunday only if listed as an adjusted
// working day. For a year the calendar does not cover, plain Monday to
// Friday.
func (c *Calendar) IsWorkday(d Date) bool { return c.isWorkday(d.dayNumber()) }

func (c *Calendar) isWorkday(n int) bool {
	if c != nil {
		if i := n - c.base; i >= 0 && i < len(c.kinds) {
			switch c.kinds[i] {
			case holiday:
				return false
			case workday:
				return true
			}
		}
	}
	return !isWeekend(n)
}

// Workdays counts the working days in [from, to) by date; 0 if to is not
// after from.
func Workdays(c *Calendar, from, to Date) int {
	return c.workdays(from.dayNumber(), to.dayNumber())
}

// workdays counts working days in the day-number range [a, b).
func (c *Calendar) workdays(a, b int) int {
	if b <= a {
		return 0
	}
	return plainWeekdays(b) - plainWeekdays(a) + c.adjust(b) - c.adjust(a)
}

// adjust returns the correction of the plain weekday count over [-inf, n).
func (c *Calendar) adjust(n int) int {
	if c == nil || len(c.kinds) == 0 {
		return 0
	}
	i := n - c.base
	switch {
	case i <= 0:
		return 0
	case i >= len(c.kinds):
		return int(c.adj[len(c.kinds)])
	}
	return int(c.adj[i])
}
