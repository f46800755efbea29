package itemfile

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/stationsync/stationsync/records"
)

// update rewrites the example XLSX from the example CSV:
//
//	go test ./records/itemfile/ -run TestExampleFiles -args -update
var update = flag.Bool("update", false, "rewrite configs/samples/items-example.xlsx from items-example.csv")

const (
	exampleCSV  = "../../configs/samples/items-example.csv"
	exampleXLSX = "../../configs/samples/items-example.xlsx"
)

// fullItem has every field set, with text that CSV and XLSX must quote or
// escape.
func fullItem() records.Item {
	return records.Item{
		Code:     "XC-S-0099",
		BaseCode: "000123456789",
		Name:     `企业设立登记（含"名称自主申报"）, 一件事`,
		Type:     records.ItemType{Code: "01", Name: "行政许可"},
		Basis:    "《中华人民共和国公司法》\n《中华人民共和国市场主体登记管理条例》第三条",
		Level:    4,
		Department: &records.Department{
			Name:       "苏州市相城区行政审批局",
			CreditCode: "113205070000000194",
		},
		Conditions: "=1+1 不是公式；_x0041_ 不是转义\n第二行\t带制表符",
		Objects:    []int{1, 2, 3, 4, 5, 6},
		Procedure:  "申请→受理→审查→决定→送达",
		Materials: []records.Material{
			{Name: "公司登记（备案）申请书", Issuer: "申请人", Originals: 1, Copies: 0, Required: true},
			{Name: "股东、法定代表人身份证明", Issuer: "", Originals: 0, Copies: 2, Required: false},
			{Name: "住所使用证明", Issuer: "产权人", Originals: 12, Copies: 3, Required: true},
		},
		LegalLimit:    &records.Limit{Value: 20, Unit: "working_days"},
		PromisedLimit: &records.Limit{Value: 2, Unit: "hours"},
		Result:        &records.Result{Name: "营业执照", Sample: "https://example.org/样本.pdf"},
		Fee:           &records.Fee{Charged: true, Basis: "《关于不动产登记收费有关政策问题的通知》"},
		Instant:       true,
		Channels:      []int{1, 2, 3, 4},
		Online:        true,
		Appointment:   true,
		Origin:        records.OriginDistrict,
		Version:       9,
	}
}

// normalise returns items as Read returns them when read with origin and
// version.
func normalise(items []records.Item, origin string, version uint64) []records.Item {
	out := make([]records.Item, len(items))
	for i, it := range items {
		it.Origin, it.Version = origin, version
		if it.Type.Name == "" {
			it.Type.Name = records.TypeName(it.Type.Code)
		}
		if it.Department != nil && *it.Department == (records.Department{}) {
			it.Department = nil
		}
		if it.Result != nil && *it.Result == (records.Result{}) {
			it.Result = nil
		}
		out[i] = it
	}
	return out
}

func readString(t testing.TB, s string, f Format) ([]records.Item, error) {
	t.Helper()
	return Read(strings.NewReader(s), f, records.OriginLocal, 1)
}

func TestRoundTrip(t *testing.T) {
	items := []records.Item{
		fullItem(),
		{Code: "XC-S-0100", Name: "最少字段", Type: records.ItemType{Code: "20"}, Origin: records.OriginLocal},
		{Code: "XC-S-0101", Name: "空结构", Type: records.ItemType{Code: "21", Name: "惠企服务"},
			Department: &records.Department{}, Result: &records.Result{}, Fee: &records.Fee{},
			LegalLimit: &records.Limit{Value: 30, Unit: "days"}, PromisedLimit: &records.Limit{Value: 5, Unit: "working_days"},
			Level: 6, Objects: []int{6}, Channels: []int{4}, Origin: records.OriginLocal},
	}
	for _, f := range []Format{CSV, XLSX} {
		t.Run(string(f), func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, f, items); err != nil {
				t.Fatal(err)
			}
			got, err := Read(bytes.NewReader(buf.Bytes()), f, records.OriginLocal, 42)
			if err != nil {
				t.Fatal(err)
			}
			want := normalise(items, records.OriginLocal, 42)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
			// What Read returns is already normal: a second trip changes nothing.
			buf.Reset()
			if err := Write(&buf, f, got); err != nil {
				t.Fatal(err)
			}
			again, err := Read(&buf, f, records.OriginLocal, 42)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("second round trip: %v\n got %+v\nwant %+v", err, again, got)
			}
		})
	}
}

func TestWriteCSVFormat(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, CSV, []records.Item{fullItem()}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.HasPrefix(out, "\ufeff事项编码,基本编码,事项名称,事项类型编码,") {
		t.Errorf("CSV does not start with the BOM and the header: %.60q", out)
	}
	if !strings.Contains(out, ",可预约\r\n") {
		t.Errorf("CSV lines do not end with CRLF")
	}
	for _, want := range []string{"县(区)", "20个工作日", "2小时", "自然人、企业法人、事业法人、社会组织法人、行政机关、其他组织",
		"窗口办理、网上办理、掌上办理、快递", "公司登记（备案）申请书|申请人|原件1份|复印件0份|必要",
		"股东、法定代表人身份证明||原件0份|复印件2份|非必要"} {
		if !strings.Contains(out, want) {
			t.Errorf("CSV lacks %q", want)
		}
	}
}

func TestWriteXLSXFormat(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, XLSX, []records.Item{fullItem()}); err != nil {
		t.Fatal(err)
	}
	f, err := excelize.OpenReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.GetSheetList(); !reflect.DeepEqual(got, []string{SheetName}) {
		t.Fatalf("sheets = %v, want [%s]", got, SheetName)
	}
	styleID, err := f.GetCellStyle(SheetName, "A1")
	if err != nil {
		t.Fatal(err)
	}
	style, err := f.GetStyle(styleID)
	if err != nil {
		t.Fatal(err)
	}
	if style.Font == nil || !style.Font.Bold {
		t.Errorf("header is not bold: %+v", style.Font)
	}
	for col, min := range map[string]float64{"C": 25, "M": 40, "D": 6} {
		w, err := f.GetColWidth(SheetName, col)
		if err != nil || w < min {
			t.Errorf("width of column %s = %v (%v), want at least %v", col, w, err, min)
		}
	}
	if v, _ := f.GetCellValue(SheetName, "D2"); v != "01" {
		t.Errorf("D2 (事项类型编码) = %q, want the text 01", v)
	}
}

func TestExampleFiles(t *testing.T) {
	csvData, err := os.ReadFile(exampleCSV)
	if err != nil {
		t.Fatal(err)
	}
	fromCSV, err := Read(bytes.NewReader(csvData), CSV, records.OriginDistrict, 3)
	if err != nil {
		t.Fatalf("%s: %v", exampleCSV, err)
	}
	if *update {
		var buf bytes.Buffer
		if err := Write(&buf, XLSX, fromCSV); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(exampleXLSX, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	xlsxData, err := os.ReadFile(exampleXLSX)
	if err != nil {
		t.Fatal(err)
	}
	fromXLSX, err := Read(bytes.NewReader(xlsxData), XLSX, records.OriginDistrict, 3)
	if err != nil {
		t.Fatalf("%s: %v", exampleXLSX, err)
	}
	if !reflect.DeepEqual(fromCSV, fromXLSX) {
		t.Errorf("the example files differ (run go test ./records/itemfile/ -run TestExampleFiles -args -update):\n csv %+v\nxlsx %+v", fromCSV, fromXLSX)
	}
	if n := len(fromCSV); n < 5 || n > 8 {
		t.Errorf("%d example items, want 5-8", n)
	}
	used := make([]bool, len(columns))
	for i := range fromCSV {
		it := &fromCSV[i]
		if err := it.Validate(); err != nil {
			t.Errorf("item %s: %v", it.Code, err)
		}
		if !strings.HasPrefix(it.Code, "XC-S-00") {
			t.Errorf("item code %q is not a sample code XC-S-00NN", it.Code)
		}
		for c, col := range columns {
			if v, _ := col.get(it); v != "" && v != "否" {
				used[c] = true
			}
		}
	}
	for c, u := range used {
		if !u {
			t.Errorf("no example item uses column %s", columns[c].Header)
		}
	}
}

// errorCases are bad CSV files: the row and column the error must name and
// a part of its message.
var errorCases = []struct {
	name, csv   string
	row         int
	column, msg string
}{
	{"unknown column", "事项编码,事项名称,事项类型编码,备注\nXC-1,a,01,x\n", 1, "备注", `unknown column "备注" (column D)`},
	{"missing required column", "事项编码,事项名称\nXC-1,a\n", 1, "事项类型编码", "required column 事项类型编码 is missing"},
	{"same column twice", "事项编码,事项名称,事项类型编码,实施编码\n", 1, "实施编码", "same column as 事项编码"},
	{"bad level", "事项编码,事项名称,事项类型编码,行使层级\nXC-1,a,01,县\nXC-2,b,01,7\n", 3, "行使层级", `"7" must be 1-6 or 国家`},
	{"bad level name", "事项编码,事项名称,事项类型编码,行使层级\nXC-1,a,01,乡村\n", 2, "行使层级", `"乡村" must be 1-6`},
	{"negative limit", "事项编码,事项名称,事项类型编码,承诺办结时限\nXC-1,a,01,5\nXC-2,b,01,-3\n", 3, "承诺办结时限", `"-3" must be a positive number`},
	{"zero limit", "事项编码,事项名称,事项类型编码,法定办结时限\nXC-1,a,01,0\n", 2, "法定办结时限", `"0" must be a positive number`},
	{"word limit", "事项编码,事项名称,事项类型编码,法定办结时限\nXC-1,a,01,abc\n", 2, "法定办结时限", `"abc" must be a positive number`},
	{"weeks", "事项编码,事项名称,事项类型编码,承诺办结时限\nXC-1,a,01,3周\n", 2, "承诺办结时限", `"3周" must be a positive number`},
	{"bad yes/no", "事项编码,事项名称,事项类型编码,即办件\nXC-1,a,01,可能\n", 2, "即办件", `"可能" must be 是 or 否`},
	{"bad fee yes/no", "事项编码,事项名称,事项类型编码,是否收费\nXC-1,a,01,免费\n", 2, "是否收费", `"免费" must be 是 or 否`},
	{"bad object", "事项编码,事项名称,事项类型编码,服务对象\nXC-1,a,01,自然人、法人\n", 2, "服务对象", `"法人" is not a 服务对象`},
	{"object number", "事项编码,事项名称,事项类型编码,服务对象\nXC-1,a,01,1、7\n", 2, "服务对象", `"7" is not a 服务对象`},
	{"bad channel", "事项编码,事项名称,事项类型编码,办理形式\nXC-1,a,01,窗口办理、传真\n", 2, "办理形式", `"传真" is not a 办理形式`},
	{"bad material count", "事项编码,事项名称,事项类型编码,申请材料\nXC-1,a,01,\"身份证\n户口簿|公安|x\"\n", 2, "申请材料", `material 2 "户口簿|公安|x": 原件数 "x" must be a whole number`},
	{"material fields", "事项编码,事项名称,事项类型编码,申请材料\nXC-1,a,01,a|b|1|1|必要|x\n", 2, "申请材料", "has 6 fields"},
	{"material required", "事项编码,事项名称,事项类型编码,申请材料\nXC-1,a,01,a|b|1|1|也许\n", 2, "申请材料", `"也许" must be 必要 or 非必要`},
	{"material without name", "事项编码,事项名称,事项类型编码,申请材料\nXC-1,a,01,|公安|1\n", 2, "申请材料", "has no name"},
	{"duplicate code", "事项编码,事项名称,事项类型编码\nXC-1,a,01\nXC-2,b,01\nXC-1,c,01\n", 4, "事项编码", "rows 2 and 4 have the same code"},
	{"empty code", "事项编码,事项名称,事项类型编码\nXC-1,a,01\n,b,01\n", 3, "事项编码", "is required"},
	{"code with space", "事项编码,事项名称,事项类型编码\nXC 1,a,01\n", 2, "事项编码", "without spaces"},
	{"empty name", "事项编码,事项名称,事项类型编码\nXC-1,,01\n", 2, "事项名称", "is required"},
	{"bad type", "事项编码,事项名称,事项类型编码\nXC-1,a,A1\n", 2, "事项类型编码", `"A1" is not a known item type`},
	{"bad credit code", "事项编码,事项名称,事项类型编码,实施主体统一社会信用代码\nXC-1,a,01,1234\n", 2, "实施主体统一社会信用代码", "18-character"},
	{"scientific code", "事项编码,事项名称,事项类型编码\n1.13205E+23,a,01\n", 2, "事项编码", "scientific notation"},
	{"value without header", "事项编码,事项名称,事项类型编码,\nXC-1,a,01,x\n", 2, "D", "column D has no header"},
	{"header as written", "*实施编码,事项名称（简称）,事项类型编码\nXC-1,a,01\n", 1, "事项名称（简称）", "unknown column"},
	{"star header names the cell", "*实施编码,*事项名称,事项类型编码\nXC-1,,01\n", 2, "*事项名称", "is required"},
}

func TestReadErrors(t *testing.T) {
	for _, tc := range errorCases {
		for _, f := range []Format{CSV, XLSX} {
			t.Run(tc.name+"/"+string(f), func(t *testing.T) {
				data := []byte(tc.csv)
				if f == XLSX {
					data = xlsxFromCSV(t, tc.csv)
				}
				items, err := Read(bytes.NewReader(data), f, records.OriginLocal, 1)
				checkRowError(t, items, err, tc.row, tc.column, tc.msg)
			})
		}
	}
}

func checkRowError(t *testing.T, items []records.Item, err error, row int, column, msg string) {
	t.Helper()
	if items != nil {
		t.Errorf("Read returned %d items with the error", len(items))
	}
	var re *RowError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *RowError", err, err)
	}
	if re.Row != row || re.Column != column {
		t.Errorf("error at row %d, column %q, want row %d, column %q: %v", re.Row, re.Column, row, column, err)
	}
	prefix := fmt.Sprintf("row %d, column %s: ", row, column)
	if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q, want %q...%q", err, prefix, msg)
	}
	if de, ok := records.AsError(err); !ok || de.Code != records.CodeInvalid {
		t.Errorf("error %v does not unwrap to an invalid *records.Error", err)
	}
}

// xlsxFromCSV puts the records of a CSV file in the first sheet of an XLSX
// file, every cell a string.
func xlsxFromCSV(t testing.TB, s string) []byte {
	t.Helper()
	cr := csv.NewReader(strings.NewReader(s))
	cr.FieldsPerRecord = -1
	recs, err := cr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	f := excelize.NewFile()
	defer f.Close()
	for r, rec := range recs {
		row := make([]any, len(rec))
		for i, v := range rec {
			row[i] = v
		}
		if err := f.SetSheetRow("Sheet1", fmt.Sprintf("A%d", r+1), &row); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestControlCharacter(t *testing.T) {
	_, err := readString(t, "事项编码,事项名称,事项类型编码\nXC-1,a\x01b,01\n", CSV)
	checkRowError(t, nil, err, 2, "事项名称", "control character U+0001")
}

func TestValidateErrorUnwraps(t *testing.T) {
	_, err := readString(t, "事项编码,事项名称,事项类型编码\nXC-1,a,99x\n", CSV)
	de, ok := records.AsError(err)
	if !ok || de.Field != "type.code" {
		t.Errorf("error %v: records.Error %+v, want field type.code", err, de)
	}
}

func TestFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		f    Format
		msg  string
	}{
		{"empty csv", "", CSV, "is empty"},
		{"blank csv", "\ufeff\r\n,,\r\n", CSV, "is empty"},
		{"bad quoting", "事项编码,事项名称,事项类型编码\nXC-1,\"a,01\n", CSV, "not a valid CSV file"},
		{"not xlsx", "事项编码,事项名称,事项类型编码\n", XLSX, "not a readable XLSX file"},
		{"empty xlsx", "", XLSX, "not a readable XLSX file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := readString(t, tc.data, tc.f)
			if items != nil || err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Read = %v, %v; want an error with %q", items, err, tc.msg)
			}
			if de, ok := records.AsError(err); !ok || de.Field != "file" {
				t.Errorf("error %v is not a records.Error about the file", err)
			}
		})
	}
	if _, err := Read(strings.NewReader(""), CSV, "", 1); err == nil || !strings.Contains(err.Error(), "origin") {
		t.Errorf("Read with no origin: %v", err)
	}
	if _, err := Read(strings.NewReader(""), "xls", records.OriginLocal, 1); err == nil {
		t.Errorf("Read with format xls: no error")
	}
}

func TestHeaderOnly(t *testing.T) {
	items, err := readString(t, "事项编码,事项名称,事项类型编码\r\n,,\r\n", CSV)
	if err != nil || len(items) != 0 {
		t.Errorf("Read = %v, %v; want no items and no error", items, err)
	}
}

func TestBOMAndCRLF(t *testing.T) {
	in := "\ufeff事项编码,事项名称,事项类型编码,即办件,承诺办结时限,申请材料\r\n" +
		"XC-1,企业设立登记,1,是,2小时,\"申请书|申请人|原件1份|复印件0份|必要\r\n章程\"\r\n" +
		"XC-2,就业登记,20,否,5,\r\n" +
		",,,,,\r\n\r\n"
	items, err := readString(t, in, CSV)
	if err != nil {
		t.Fatal(err)
	}
	want := []records.Item{
		{Code: "XC-1", Name: "企业设立登记", Type: records.ItemType{Code: "01", Name: "行政许可"}, Instant: true,
			PromisedLimit: &records.Limit{Value: 2, Unit: "hours"},
			Materials: []records.Material{
				{Name: "申请书", Issuer: "申请人", Originals: 1, Required: true},
				{Name: "章程", Required: true},
			}, Origin: records.OriginLocal, Version: 1},
		{Code: "XC-2", Name: "就业登记", Type: records.ItemType{Code: "20", Name: "公共服务"},
			PromisedLimit: &records.Limit{Value: 5, Unit: "working_days"}, Origin: records.OriginLocal, Version: 1},
	}
	if !reflect.DeepEqual(items, want) {
		t.Errorf("got  %+v\nwant %+v", items, want)
	}
	// The same with LF only and no BOM.
	lf := strings.ReplaceAll(strings.TrimPrefix(in, "\ufeff"), "\r\n", "\n")
	if items2, err := readString(t, lf, CSV); err != nil || !reflect.DeepEqual(items2, want) {
		t.Errorf("LF: %v\n got %+v", err, items2)
	}
}

func TestGBKCSV(t *testing.T) {
	in := "事项编码,事项名称,事项类型编码,行使层级,服务对象\r\nXC-1,企业设立登记,01,县（区）,自然人、企业法人\r\n"
	gbk, err := simplifiedchinese.GBK.NewEncoder().String(in)
	if err != nil {
		t.Fatal(err)
	}
	items, err := readString(t, gbk, CSV)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Name != "企业设立登记" || items[0].Level != 4 || !reflect.DeepEqual(items[0].Objects, []int{1, 2}) {
		t.Errorf("GBK CSV read as %+v", items)
	}
}

func TestCellFormats(t *testing.T) {
	in := "*实施编码,事项名称,事项类型编码,行使层级,法定办结时限,承诺办结时限,服务对象,办理形式,网上可办,可预约,是否收费,收费依据,申请材料\n" +
		"XC-1,a,１,国家级,２０个工作日,30日,１、企业；其他组织,网办/快递送达,TRUE,0,否,不收费,\"身份证|公安|1|2\n合同||原件：3份|复印件0份|非必要\"\n" +
		"XC-2,b,21,村（社区）,2 小时,15天,\"个人\n个人\",3,Y,n,是,,a；b;c\n"
	items, err := readString(t, in, CSV)
	if err != nil {
		t.Fatal(err)
	}
	a, b := items[0], items[1]
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %+v, want %+v", name, got, want)
		}
	}
	check("type", a.Type, records.ItemType{Code: "01", Name: "行政许可"})
	check("level", a.Level, 1)
	check("legal", *a.LegalLimit, records.Limit{Value: 20, Unit: "working_days"})
	check("promised", *a.PromisedLimit, records.Limit{Value: 30, Unit: "days"})
	check("objects", a.Objects, []int{1, 2, 6})
	check("channels", a.Channels, []int{2, 4})
	check("online", a.Online, true)
	check("appointment", a.Appointment, false)
	check("fee", *a.Fee, records.Fee{Charged: false, Basis: "不收费"})
	check("materials", a.Materials, []records.Material{
		{Name: "身份证", Issuer: "公安", Originals: 1, Copies: 2, Required: true},
		{Name: "合同", Originals: 3, Copies: 0, Required: false},
	})
	check("local type", b.Type, records.ItemType{Code: "21"})
	check("level 6", b.Level, 6)
	check("hours", *b.LegalLimit, records.Limit{Value: 2, Unit: "hours"})
	check("objects once", b.Objects, []int{1})
	check("channel number", b.Channels, []int{3})
	check("fee", *b.Fee, records.Fee{Charged: true})
	check("materials by ；", len(b.Materials), 3)
}

func TestRowNumbers(t *testing.T) {
	// Row 2 spans three lines, a blank line is row 3, the bad cell is in
	// row 4 as Excel shows it.
	in := "事项编码,事项名称,事项类型编码,设定依据\n" +
		"XC-1,a,01,\"第一行\n第二行\n第三行\"\n" +
		"\n" +
		"XC-2,b,01x,\n"
	_, err := readString(t, in, CSV)
	checkRowError(t, nil, err, 4, "事项类型编码", "is not a known item type")

	// XLSX: rows 2 and 3 are missing from the sheet, row 4 is bad.
	f := excelize.NewFile()
	defer f.Close()
	_ = f.SetSheetRow("Sheet1", "A1", &[]any{"事项编码", "事项名称", "事项类型编码"})
	_ = f.SetSheetRow("Sheet1", "A4", &[]any{"XC-1", "a", "01x"})
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		t.Fatal(err)
	}
	items, err := Read(&buf, XLSX, records.OriginLocal, 1)
	checkRowError(t, items, err, 4, "事项类型编码", "is not a known item type")
}

func TestXLSXSheetsAndCellTypes(t *testing.T) {
	f := excelize.NewFile()
	defer f.Close()
	_ = f.SetSheetRow("Sheet1", "A1", &[]any{"说明：本工作簿第二个工作表是事项清单"})
	if _, err := f.NewSheet(SheetName); err != nil {
		t.Fatal(err)
	}
	_ = f.SetSheetRow(SheetName, "A1", &[]any{"事项编码", "事项名称", "事项类型编码", "行使层级", "即办件", "法定办结时限"})
	// Numbers and booleans as an office types them in a General cell.
	_ = f.SetSheetRow(SheetName, "A2", &[]any{"XC-1", "a", 1, 4, true, 20})
	_ = f.SetSheetRow(SheetName, "A3", &[]any{"XC-2", "b", 20, "县(区)", false, 20.0})
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		t.Fatal(err)
	}
	items, err := Read(&buf, XLSX, records.OriginLocal, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].Type.Code != "01" || items[0].Level != 4 || !items[0].Instant ||
		items[0].LegalLimit == nil || items[0].LegalLimit.Value != 20 || items[1].Type.Code != "20" || items[1].Instant {
		t.Errorf("read %+v", items)
	}
}

func TestLimits(t *testing.T) {
	t.Run("rows", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("事项编码,事项名称,事项类型编码\n")
		for i := 1; i <= MaxRows+1; i++ {
			fmt.Fprintf(&b, "XC-%d,a,01\n", i)
		}
		items, err := readString(t, b.String(), CSV)
		var re *RowError
		if items != nil || !errors.As(err, &re) || re.Row != MaxRows+2 || !strings.Contains(err.Error(), "more than 50000 item rows") {
			t.Errorf("Read of %d rows: %v", MaxRows+1, err)
		}
	})
	t.Run("cell", func(t *testing.T) {
		long := strings.Repeat("规", MaxCellBytes/3+1)
		_, err := readString(t, "事项编码,事项名称,事项类型编码,设定依据\nXC-1,a,01,"+long+"\n", CSV)
		checkRowError(t, nil, err, 2, "设定依据", "is longer than 65536 bytes")
		_, err = readString(t, "事项编码,事项名称,事项类型编码,设定依据\nXC-1,a,01,"+strings.Repeat("x", 40000)+"\n", CSV)
		checkRowError(t, nil, err, 2, "设定依据", "is longer than 32767 characters")
	})
	t.Run("file", func(t *testing.T) {
		defer func(n int64) { maxFileBytes = n }(maxFileBytes)
		maxFileBytes = 1 << 20
		for _, f := range []Format{CSV, XLSX} {
			big := io.MultiReader(strings.NewReader("事项编码,事项名称,事项类型编码\n"), zeros{})
			items, err := Read(big, f, records.OriginLocal, 1)
			if de, ok := records.AsError(err); items != nil || !ok || de.Field != "file" || !strings.Contains(err.Error(), "larger than 1 MiB") {
				t.Errorf("%s: Read of an endless file: %v", f, err)
			}
		}
	})
	t.Run("unzip", func(t *testing.T) {
		// A worksheet that claims to unzip to more than MaxUnzipBytes.
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, err := zw.CreateRaw(&zip.FileHeader{Name: "xl/worksheets/sheet1.xml", Method: zip.Deflate,
			UncompressedSize64: MaxUnzipBytes + 1, CompressedSize64: 2})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte{3, 0})
		_ = zw.Close()
		items, err := Read(&buf, XLSX, records.OriginLocal, 1)
		if items != nil || err == nil || !strings.Contains(err.Error(), "unzips to more than 64 MiB") {
			t.Errorf("Read of a zip bomb: %v", err)
		}
	})
}

func TestReaderError(t *testing.T) {
	boom := errors.New("connection reset")
	for _, f := range []Format{CSV, XLSX} {
		r := io.MultiReader(strings.NewReader("事项编码,事项名称,事项类型编码\n"), iotestErr{boom})
		items, err := Read(r, f, records.OriginLocal, 1)
		if items != nil || !errors.Is(err, boom) {
			t.Errorf("%s: Read = %v, want the reader's error", f, err)
		}
		if _, ok := records.AsError(err); ok {
			t.Errorf("%s: a reader's error %v is reported as bad input", f, err)
		}
	}
}

type iotestErr struct{ err error }

func (r iotestErr) Read([]byte) (int, error) { return 0, r.err }

// zeros is an endless reader of "0".
type zeros struct{}

var zeroBlock = bytes.Repeat([]byte("0"), 32<<10)

func (zeros) Read(p []byte) (int, error) {
	for i := 0; i < len(p); {
		i += copy(p[i:], zeroBlock)
	}
	return len(p), nil
}

func TestWriteRefuses(t *testing.T) {
	bad := func(mod func(it *records.Item)) []records.Item {
		it := fullItem()
		mod(&it)
		return []records.Item{it}
	}
	for _, tc := range []struct {
		name  string
		items []records.Item
		msg   string
	}{
		{"invalid", bad(func(it *records.Item) { it.Level = 9 }), "level"},
		{"duplicate", append(bad(func(*records.Item) {}), fullItem()), "is also the code of items[0]"},
		{"separator in material", bad(func(it *records.Item) { it.Materials[0].Name = "a|b" }), "cannot contain |"},
		{"semicolon in issuer", bad(func(it *records.Item) { it.Materials[0].Issuer = "a；b" }), "cannot contain"},
		{"control character", bad(func(it *records.Item) { it.Name = "a\x00b" }), "control character"},
		{"too long", bad(func(it *records.Item) { it.Basis = strings.Repeat("x", maxCellChars+1) }), "Excel's limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range []Format{CSV, XLSX} {
				var buf bytes.Buffer
				err := Write(&buf, f, tc.items)
				if err == nil || !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("%s: Write = %v, want an error with %q", f, err, tc.msg)
				}
				if _, ok := records.AsError(err); !ok {
					t.Errorf("%s: error %v is not a records.Error", f, err)
				}
			}
		})
	}
	// Any origin is fine for writing.
	it := fullItem()
	it.Origin = ""
	if err := Write(io.Discard, CSV, []records.Item{it}); err != nil {
		t.Errorf("Write of an item without origin: %v", err)
	}
}

func TestFormatOf(t *testing.T) {
	for name, want := range map[string]Format{"清单.csv": CSV, "a/b/清单.XLSX": XLSX, `C:\下载\items.Csv`: CSV} {
		if got, err := FormatOf(name); got != want || err != nil {
			t.Errorf("FormatOf(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	for name, msg := range map[string]string{"清单.xls": "save it as Excel workbook (.xlsx)", "清单": "no extension", "清单.txt": ".txt files are not supported"} {
		if _, err := FormatOf(name); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("FormatOf(%q) = %v, want an error with %q", name, err, msg)
		}
	}
}

func TestColumnsTable(t *testing.T) {
	cols := Columns()
	if len(cols) != 23 {
		t.Errorf("%d columns", len(cols))
	}
	cols[0].Header = "changed"
	cols[0].Aliases[0] = "changed"
	if columns[0].Header != "事项编码" || columns[0].Aliases[0] != "实施编码" {
		t.Errorf("Columns returns the table itself")
	}
	var required []string
	for _, c := range Columns() {
		if c.Required {
			required = append(required, c.Header)
		}
		if c.Format == "" || c.Field == "" {
			t.Errorf("column %s lacks its field or format", c.Header)
		}
	}
	if !reflect.DeepEqual(required, []string{"事项编码", "事项名称", "事项类型编码"}) {
		t.Errorf("required columns %v", required)
	}
}

// checkRead is the fuzz property: Read returns either valid items that
// survive a Write and Read in the same format unchanged, or an error and no
// items.
func checkRead(t *testing.T, data []byte, f Format) {
	items, err := Read(bytes.NewReader(data), f, records.OriginLocal, 7)
	if err != nil {
		if items != nil {
			t.Fatalf("Read returned %d items and the error %v", len(items), err)
		}
		if _, ok := records.AsError(err); !ok {
			t.Fatalf("error %v (%T) is not a records.Error", err, err)
		}
		return
	}
	for i := range items {
		if err := items[i].Validate(); err != nil {
			t.Fatalf("item %d does not validate: %v", i, err)
		}
	}
	var buf bytes.Buffer
	if err := Write(&buf, f, items); err != nil {
		t.Fatalf("Write of read items: %v", err)
	}
	again, err := Read(&buf, f, records.OriginLocal, 7)
	if err != nil {
		t.Fatalf("Read of written items: %v", err)
	}
	if len(items) == 0 && len(again) == 0 {
		return
	}
	if !reflect.DeepEqual(again, items) {
		t.Fatalf("round trip changed the items:\n got %+v\nwant %+v", again, items)
	}
}

func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("事项编码,事项名称,事项类型编码\nXC-1,a,01\n"))
	f.Fuzz(func(t *testing.T, data []byte) { checkRead(t, data, CSV) })
}

func FuzzReadXLSX(f *testing.F) {
	if data, err := os.ReadFile(exampleXLSX); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkRead(t, data, XLSX) })
}

func TestBadUTF8WithBOM(t *testing.T) {
	_, err := readString(t, "\ufeff事项编码,事项名称,事项类型编码\nXC-1,a\xffb,01\n", CSV)
	checkRowError(t, nil, err, 2, "事项名称", "is not valid UTF-8 text")
}

// A cell a spreadsheet would run as a formula is written with a leading
// apostrophe (shown as text) and read back as it was.
func TestCSVFormulaCellsAreGuarded(t *testing.T) {
	items := []records.Item{{Code: "XC-S-0200", Name: `=HYPERLINK("http://evil","点击")`, Type: records.ItemType{Code: "20"},
		Basis: "@SUM(A1)", Origin: records.OriginLocal}}
	var buf bytes.Buffer
	if err := Write(&buf, CSV, items); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), `,"=HYPERLINK`) || strings.Contains(buf.String(), ",=HYPERLINK") || strings.Contains(buf.String(), ",@SUM") {
		t.Fatalf("a formula cell was written as a formula:\n%s", buf.String())
	}
	got, err := Read(bytes.NewReader(buf.Bytes()), CSV, records.OriginLocal, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Name != items[0].Name || got[0].Basis != items[0].Basis {
		t.Fatalf("read back %q %q", got[0].Name, got[0].Basis)
	}
}
