// Package hunt runs KQL hunting queries over the event store, and holds
// kdfir's built-in hunting library.
package hunt

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/kql/eval"
	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
)

//go:embed queries/*.kql
var library embed.FS

// Builtin is one query of the library.
type Builtin struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Query       string `json:"query"`
	// Params are the {{name}} placeholders the query needs.
	Params []string `json:"params,omitempty"`
}

var paramRE = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

// Library lists the built-in queries by name.
func Library() []Builtin {
	entries, _ := fs.ReadDir(library, "queries")
	var out []Builtin
	for _, e := range entries {
		b, err := fs.ReadFile(library, "queries/"+e.Name())
		if err != nil {
			continue
		}
		q := string(b)
		var desc []string
		for _, line := range strings.Split(q, "\n") {
			if d, ok := strings.CutPrefix(line, "//"); ok {
				desc = append(desc, strings.TrimSpace(d))
			} else {
				break
			}
		}
		var params []string
		seen := map[string]bool{}
		for _, m := range paramRE.FindAllStringSubmatch(q, -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				params = append(params, m[1])
			}
		}
		out = append(out, Builtin{Name: strings.TrimSuffix(e.Name(), ".kql"), Description: strings.Join(desc, " "), Query: q, Params: params})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Find returns a built-in query by name.
func Find(name string) (Builtin, bool) {
	for _, b := range Library() {
		if b.Name == name {
			return b, true
		}
	}
	return Builtin{}, false
}

// Expand fills a built-in query's {{params}}. Values are quoted as KQL
// strings, so they cannot change the query's structure.
func (b Builtin) Expand(params map[string]string) (string, error) {
	var missing []string
	q := paramRE.ReplaceAllStringFunc(b.Query, func(m string) string {
		name := paramRE.FindStringSubmatch(m)[1]
		v, ok := params[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return escapeKQL(v)
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("query %s needs --param %s=VALUE", b.Name, strings.Join(missing, "=VALUE --param "))
	}
	return q, nil
}

// escapeKQL escapes a value placed inside a double-quoted KQL string.
func escapeKQL(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`).Replace(s)
}

// Run parses and evaluates a query. Parse errors come back as
// *syntax.ErrorList, which formats each error with its line and a caret.
func Run(ctx context.Context, src table.Source, query string, now time.Time) (*eval.Result, []syntax.Warning, error) {
	q, warns, err := syntax.Parse(query)
	if err != nil {
		return nil, warns, err
	}
	res, err := eval.Run(ctx, src, q, eval.Options{Now: now})
	return res, warns, err
}

// IsQueryError reports whether err is an error in the query itself (as
// opposed to the store).
func IsQueryError(err error) bool {
	var el *syntax.ErrorList
	return errors.As(err, &el)
}
