// Package itemfile reads and writes a station's service item list (事项清单)
// as the CSV and XLSX files an office edits in Excel or WPS.
//
// The package opens no files: Read takes an io.Reader, Write an io.Writer,
// and FormatOf only looks at a file name's extension.
//
// # Layout
//
// The first non-empty row is the header; every later non-empty row is one
// item. Row numbers in errors are the row numbers Excel shows (1 = the
// header row in the usual file). Columns are named by their Chinese header,
// may come in any order, and only 事项编码, 事项名称 and 事项类型编码 are
// required. A header may carry a required-marker star ("*事项名称") and use
// full-width parentheses; a few aliases used by provincial platforms are
// accepted too (实施编码 for 事项编码, for example; see Columns). An unknown
// header is an error naming it; a column without header must stay empty.
//
// A CSV file is UTF-8, with or without the byte order mark Excel writes, with
// CRLF or LF line ends. A CSV file without byte order mark that is not valid
// UTF-8 is read as GB18030 (GBK), which is what "CSV (逗号分隔)" in a Chinese
// Excel saves. An XLSX file
// is read from the sheet named 事项清单, or from its first sheet when there is
// none of that name; cell values are read raw, not as formatted on screen.
//
// # Columns
//
//	header                    item field              cell
//	事项编码 *                 code                    text, no spaces or '/', at most 64 characters
//	基本编码                   base_code               text
//	事项名称 *                 name                    text
//	事项类型编码 *             type.code               01-10, 20 (national), 11-19, 21-99 (local); "1" is read as "01"
//	事项类型                   type.name               text; empty: the national name of the code (01 行政许可 ...)
//	设定依据                   basis                   text, may span lines
//	行使层级                   level                   1-6 or 国家, 省, 市, 县(区), 镇(街道), 村(社区)
//	实施主体                   department.name         text
//	实施主体统一社会信用代码   department.credit_code  18 characters
//	受理条件                   conditions              text, may span lines
//	服务对象                   objects                 list of 自然人, 企业法人, 事业法人, 社会组织法人, 行政机关, 其他组织 or 1-6
//	办理流程                   procedure               text, may span lines
//	申请材料                   materials               one material per line (see below)
//	法定办结时限               legal_limit             time limit (see below)
//	承诺办结时限               promised_limit          time limit
//	办理结果                   result.name             text
//	结果样本                   result.sample           text (name or link of a sample)
//	是否收费                   fee.charged             是 or 否
//	收费依据                   fee.basis               text
//	即办件                     instant                 是 (即办件) or 否 (承诺件)
//	办理形式                   channels                list of 窗口办理, 网上办理, 掌上办理, 快递 or 1-4
//	网上可办                   online                  是 or 否
//	可预约                     appointment             是 or 否
//
// (* = required column.) An empty cell leaves the field unset: no level, no
// department, no limit, 否 for the yes/no columns.
//
// Lists (服务对象, 办理形式) are separated by 、 , ， ; ； / or line breaks:
// "自然人、企业法人" or "1、2". Repeated entries are kept once.
//
// Yes/no cells hold 是 or 否 (true/false, 1/0, yes/no and y/n are accepted
// too); 即办件 also accepts the words 即办件 and 承诺件. 行使层级 also accepts
// the usual short forms (国家级, 省级, 县, 区, 乡镇, 街道, 社区 ...).
//
// A time limit is a positive whole number with an optional unit: "20" or
// "20个工作日" is 20 working days (the default unit), "30天" or "30日" is 30
// calendar days, "2小时" is 2 hours. Write writes 个工作日, 天 and 小时. Note
// that a bare 日 means calendar days here: write 个工作日 for working days.
// Weeks, months and Chinese numerals are refused.
//
// 申请材料 holds one material per line (a line break inside the cell: Alt+Enter
// in Excel); ； or ; also separate materials. A material is up to five fields
// separated by | (or the full-width ｜):
//
//	名称|出具单位|原件数|复印件数|必要
//	营业执照|市场监督管理部门|原件1份|复印件1份|必要
//	法定代表人身份证|公安机关|1|1|非必要
//	公司登记（备案）申请书
//
// Only the name is required; trailing fields may be left out. 原件数 and 复印件数
// are whole numbers, written bare ("1") or with their label and 份 ("原件1份",
// "复印件2份"); empty means 0. The last field is 必要 (also 必须, 是) or 非必要
// (also 非必须, 可选, 否); a material is 必要 when it is left out. Write writes
// the full form of the second example, so material names and issuers cannot
// contain |, ；, ; or line breaks.
//
// # Cells and limits
//
// Cells are trimmed; line breaks inside a cell are kept (as "\n"). Full-width
// digits and letters are accepted in numbers, levels, limits and yes/no cells.
// A cell may not hold control characters and may hold at most 32,767
// characters (Excel's limit) and MaxCellBytes bytes. A file may have at most
// MaxRows item rows and MaxFileBytes bytes; an XLSX file may unzip to at most
// MaxUnzipBytes bytes (excelize spills worksheets larger than 16 MiB to a
// temporary file and removes it when done).
//
// # Errors
//
// Every row is converted and validated with records.Item.Validate. The first
// bad cell is returned as a *RowError naming the row and the column header, and
// no item is returned then, so nothing of a bad file is applied. A code used by
// two rows is an error naming both. A RowError unwraps to a *records.Error
// (code invalid) whose Field is the item field; problems with the file as a
// whole (too large, not a CSV or XLSX file) are a *records.Error with field
// "file".
//
// # Writing
//
// Write writes every column in the order above. CSV is written with a
// UTF-8 byte order mark and CRLF line ends so that Excel shows the Chinese text
// correctly; XLSX has one sheet named 事项清单 with a bold, frozen header row,
// column widths suited to the content and every cell formatted as text, so
// that Excel does not turn codes like 01 into numbers. What Write writes, Read
// reads back to the same items, up to trimming, the national type name filled
// in, an empty department or result dropped and the origin and version Read is
// given.
package itemfile
