package records

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"
)

// memState is an in-memory State and Reader for unit tests.
type memState map[string][]byte

func (m memState) Get(k string) ([]byte, error) { return m[k], nil }
func (m memState) Set(k string, v []byte) error { m[k] = append([]byte(nil), v...); return nil }
func (m memState) Scan(prefix, after string, fn func(string, []byte) (bool, error)) error {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if more, err := fn(k, m[k]); err != nil || !more {
			return err
		}
	}
	return nil
}

func TestItemValidateNamesTheField(t *testing.T) {
	good := Item{Code: "XC-L-0001", Name: "企业开办", Type: ItemType{Code: "20"}, Origin: OriginLocal}
	cases := []struct {
		name  string
		edit  func(*Item)
		field string
	}{
		{"ok", func(*Item) {}, ""},
		{"no code", func(i *Item) { i.Code = " " }, "code"},
		{"slash in code", func(i *Item) { i.Code = "a/b" }, "code"},
		{"no name", func(i *Item) { i.Name = "" }, "name"},
		{"no type", func(i *Item) { i.Type.Code = "" }, "type.code"},
		{"unknown type", func(i *Item) { i.Type.Code = "00" }, "type.code"},
		{"local type 11", func(i *Item) { i.Type.Code = "11" }, ""},
		{"local type 21", func(i *Item) { i.Type.Code = "21" }, ""},
		{"bad origin", func(i *Item) { i.Origin = "x" }, "origin"},
		{"zero limit", func(i *Item) { i.LegalLimit = &Limit{0, "working_days"} }, "legal_limit.value"},
		{"bad unit", func(i *Item) { i.PromisedLimit = &Limit{3, "weeks"} }, "promised_limit.unit"},
		{"material without name", func(i *Item) { i.Materials = []Material{{}} }, "materials[0].name"},
	}
	for _, tc := range cases {
		it := good
		tc.edit(&it)
		err := it.Validate()
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: unexpected error %v", tc.name, err)
			}
			continue
		}
		de, ok := AsError(err)
		if !ok || de.Field != tc.field || de.Code != CodeInvalid {
			t.Errorf("%s: got %v, want invalid %s", tc.name, err, tc.field)
		}
	}
}

func TestApplyCaseIsIdempotentAndNeedsItem(t *testing.T) {
	st := memState{}
	c := Case{ID: "c1", ItemCode: "XC-L-0001", Channel: "window", Actor: "clerk", Applicant: Applicant{Kind: "person", Name: "张三"}}
	PrepareCase(&c, "XC-IP-01", "pc-1", NewClock(nil).Now())
	if _, _, err := Apply(st, Op{Kind: OpCreateCase, Case: &c}); err == nil || !strings.Contains(err.Error(), "item_code") {
		t.Fatalf("case for a missing item: got %v", err)
	}
	if len(st) != 0 {
		t.Fatalf("a refused op wrote %d keys", len(st))
	}
	it := Item{Code: "XC-L-0001", Name: "企业开办", Type: ItemType{Code: "20"}, Origin: OriginLocal}
	if _, ch, err := Apply(st, Op{Kind: OpPutItem, Item: &it}); err != nil || ch == nil {
		t.Fatal(err)
	}
	v, ch, err := Apply(st, Op{Kind: OpCreateCase, Case: &c})
	if err != nil || ch == nil || v.(Case).State != StateReceived {
		t.Fatalf("create: %v %v %v", v, ch, err)
	}
	again := c
	again.Actor = "someone else"
	v, ch, err = Apply(st, Op{Kind: OpCreateCase, Case: &again})
	if err != nil || ch != nil || v.(Case).Actor != "clerk" {
		t.Fatalf("retry: change %v err %v value %+v; want the stored case and no change", ch, err, v)
	}
}

func TestDistrictItemsWinAndAreReadOnlyLocally(t *testing.T) {
	st := memState{}
	d := Item{Code: "D1", Name: "设立登记", Type: ItemType{Code: "01"}, Origin: OriginDistrict, Version: 3}
	if _, ch, err := Apply(st, Op{Kind: OpPutItem, Item: &d}); err != nil || ch == nil {
		t.Fatal(err)
	}
	old := d
	old.Version, old.Name = 2, "旧名称"
	if v, ch, _ := Apply(st, Op{Kind: OpPutItem, Item: &old}); ch != nil || v.(Item).Name != "设立登记" {
		t.Fatal("an older district version replaced a newer one")
	}
	local := d
	local.Origin = OriginLocal
	if _, _, err := Apply(st, Op{Kind: OpPutItem, Item: &local}); err == nil {
		t.Fatal("a station overwrote a district item")
	} else if de, _ := AsError(err); de.Code != CodeConflict {
		t.Fatalf("got %v, want conflict", err)
	}
}

func TestLocalItemVersionIncreasesOnChangeOnly(t *testing.T) {
	st := memState{}
	for want, name := range []string{"a", "b", "b", "c"} {
		it := Item{Code: "L1", Name: name, Type: ItemType{Code: "20"}, Origin: OriginLocal}
		v, ch, err := Apply(st, Op{Kind: OpPutItem, Item: &it})
		wantVersion := uint64(want + 1)
		if want >= 2 {
			wantVersion = uint64(want) // the repeat of "b" changed nothing
		}
		if err != nil || v.(Item).Version != wantVersion {
			t.Fatalf("put %s: version %v, want %d (%v)", name, v.(Item).Version, wantVersion, err)
		}
		if (want == 2) != (len(ch) == 0) {
			t.Fatalf("put %s: %d feed changes", name, len(ch))
		}
	}
}

func TestListCasesPagesAndFiltersByMonth(t *testing.T) {
	st := memState{}
	it := Item{Code: "X", Name: "a", Type: ItemType{Code: "20"}, Origin: OriginLocal}
	Apply(st, Op{Kind: OpPutItem, Item: &it})
	loc, _ := time.LoadLocation("Asia/Shanghai")
	// 2026-10-31 20:00 UTC is already November in Shanghai.
	times := []time.Time{
		time.Date(2026, 10, 31, 15, 0, 0, 0, time.UTC),
		time.Date(2026, 10, 31, 20, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC),
	}
	for _, tm := range times {
		c := Case{ItemCode: "X", Channel: "window", Actor: "c", Applicant: Applicant{Kind: "person", Name: "n"}}
		PrepareCase(&c, "S", "n", MakeHLC(tm.UnixMilli(), 0))
		if _, _, err := Apply(st, Op{Kind: OpCreateCase, Case: &c}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := ListCases(st, CaseQuery{Month: "2026-11", Location: loc})
	if err != nil || len(p.Cases) != 2 {
		t.Fatalf("November in Shanghai: %d cases, %v", len(p.Cases), err)
	}
	p1, _ := ListCases(st, CaseQuery{Limit: 2})
	if len(p1.Cases) != 2 || p1.Next == "" {
		t.Fatalf("page 1: %d cases next %q", len(p1.Cases), p1.Next)
	}
	p2, _ := ListCases(st, CaseQuery{Limit: 2, After: p1.Next})
	if len(p2.Cases) != 1 || p2.Next != "" {
		t.Fatalf("page 2: %d cases next %q", len(p2.Cases), p2.Next)
	}
	if _, err := ListCases(st, CaseQuery{Month: "2026-13"}); err == nil {
		t.Fatal("bad month accepted")
	}
}

func TestNewIDSortsByTimeAndIsUnique(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	a, b := NewID(t0), NewID(t0.Add(time.Millisecond))
	if len(a) != 26 || !(a < b) {
		t.Fatalf("ids %s %s: want 26 chars, increasing", a, b)
	}
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID(t0)
		if seen[id] {
			t.Fatal("duplicate id")
		}
		seen[id] = true
	}
}

func TestMasking(t *testing.T) {
	if got := MaskID("320507199001011234"); got != "320507********1234" {
		t.Fatal(got)
	}
	if got := MaskPhone("13912345678"); got != "139****5678" {
		t.Fatal(got)
	}
	c := Case{Applicant: Applicant{IDNumber: "320507199001011234", Phone: "13912345678"}}
	b, _ := json.Marshal(c.Masked())
	if strings.Contains(string(b), "199001011234") || strings.Contains(string(b), "12345678") {
		t.Fatalf("masked case leaks personal data: %s", b)
	}
}
