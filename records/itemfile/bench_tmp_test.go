package itemfile

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"time"
	"os"
	"testing"

	"github.com/stationsync/stationsync/records"
)

func BenchmarkReadXLSXExample(b *testing.B) {
	data, _ := os.ReadFile(exampleXLSX)
	for i := 0; i < b.N; i++ {
		if _, err := Read(bytes.NewReader(data), XLSX, records.OriginLocal, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteXLSXExample(b *testing.B) {
	data, _ := os.ReadFile(exampleXLSX)
	items, _ := Read(bytes.NewReader(data), XLSX, records.OriginLocal, 1)
	for i := 0; i < b.N; i++ {
		var buf bytes.Buffer
		if err := Write(&buf, XLSX, items); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTimeCorpus(t *testing.T) {
	dir := os.Getenv("CORPUS")
	if dir == "" {
		t.Skip()
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		raw, _ := os.ReadFile(dir + "/" + e.Name())
		s := string(raw)
		s = s[strings.Index(s, "[]byte(")+7 : strings.LastIndex(s, ")")]
		v, err := strconv.Unquote(s)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		_, rerr := Read(strings.NewReader(v), XLSX, records.OriginLocal, 1)
		runtime.ReadMemStats(&ms)
		t.Logf("%s %d bytes: %v, %d MB alloc: %v", e.Name(), len(v), time.Since(start), (ms.TotalAlloc-before)>>20, rerr)
	}
}
