package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

var update = flag.Bool("update", false, "rewrite the want.json files of the golden tests")

// TestGolden runs testdata/<case>/query.kql over the fixture dataset and
// compares the result (or error) with testdata/<case>/want.json.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/query.kql")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no golden cases")
	}
	src := fixtureSource()
	for _, qf := range dirs {
		dir := filepath.Dir(qf)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			query, err := os.ReadFile(qf)
			if err != nil {
				t.Fatal(err)
			}
			got := goldenOutput(src, string(query))
			wf := filepath.Join(dir, "want.json")
			if *update {
				if err := os.WriteFile(wf, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wf)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("result differs from %s (-want +got):\n%s", wf, cmp.Diff(string(want), string(got)))
			}
		})
	}
}

func goldenOutput(src table.Source, query string) []byte {
	res, warns, err := Query(context.Background(), src, query, Options{Now: testNow})
	var b bytes.Buffer
	b.WriteString("{\n")
	if len(warns) > 0 {
		ws := make([]string, len(warns))
		for i, w := range warns {
			ws[i] = w.String()
		}
		writeField(&b, "warnings", ws)
		b.WriteString(",\n")
	}
	if err != nil {
		writeField(&b, "error", strings.Split(err.Error(), "\n"))
		b.WriteString("\n}\n")
		return b.Bytes()
	}
	b.WriteString(`  "columns": [`)
	for i, c := range res.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		enc, _ := json.Marshal(map[string]string{"name": c.Name, "type": string(c.Type)})
		b.Write(enc)
	}
	b.WriteString("],\n  \"rows\": [")
	for i, row := range res.Rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    ")
		vals := make([]any, len(row))
		for j, v := range row {
			vals[j] = jsonable(v)
		}
		b.Write(marshal(vals))
	}
	if len(res.Rows) > 0 {
		b.WriteString("\n  ")
	}
	b.WriteString("]\n}\n")
	return b.Bytes()
}

func writeField(b *bytes.Buffer, name string, v any) {
	b.WriteString(`  "` + name + `": `)
	b.Write(marshal(v))
}

func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return []byte(`"` + err.Error() + `"`)
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// jsonable maps result values to JSON: datetimes and timespans as Kusto
// strings, non-finite reals as strings.
func jsonable(v any) any {
	switch x := v.(type) {
	case time.Time:
		return syntax.FormatDatetime(x)
	case time.Duration:
		return syntax.FormatTimespan(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return formatReal(x)
		}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	}
	return v
}
