package itemfile

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestTimeCorpusTmp(t *testing.T) {
	dir := os.Getenv("CORPUS")
	ents, _ := os.ReadDir(dir)
	var worst time.Duration
	var name string
	for _, e := range ents {
		raw, _ := os.ReadFile(dir + "/" + e.Name())
		s := string(raw)
		s = s[strings.Index(s, "[]byte(")+7 : strings.LastIndex(s, ")")]
		v, err := strconv.Unquote(s)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		checkRead(t, []byte(v), Format(os.Getenv("FMT")))
		if d := time.Since(start); d > worst {
			worst, name = d, e.Name()
		}
	}
	t.Logf("%d inputs, worst %v (%s)", len(ents), worst, name)
}
