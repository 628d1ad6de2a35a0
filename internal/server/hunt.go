package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/hunt"
	"github.com/kdfir/kdfir/internal/kql/syntax"
	"github.com/kdfir/kdfir/internal/kql/table"
	"github.com/kdfir/kdfir/internal/store"
)

// Hunt's bounds: the rows an answer holds by default and at most, and how
// long a query may run.
const (
	defaultHuntRows = 10000
	maxHuntRows     = 50000
	huntTimeout     = 60 * time.Second
	// maxHuntBytes bounds an answer's rows, encoded: past it, it is
	// truncated.
	maxHuntBytes = 32 << 20
	// maxHunts is how many hunts and rule tests run at once; DuckDB
	// takes every core for one.
	maxHunts = 4
)

// huntRoutes are the Hunt, Evidence and Rules pages' endpoints.
func (s *Server) huntRoutes(route func(pattern, name, scope string, h func(http.ResponseWriter, *http.Request, *auth.Key))) {
	route("POST /v1/hunt", "hunt", auth.ScopeHunt, s.postHunt)
	route("GET /v1/hunt/schema", "hunt-schema", auth.ScopeRead, s.huntSchema)
	route("GET /v1/hunt/queries", "hunt-queries", auth.ScopeRead, s.huntQueries)
	route("GET /v1/evidence", "evidence-list", auth.ScopeRead, s.listEvidence)
	route("GET /v1/evidence/{id}", "evidence-get", auth.ScopeRead, s.getEvidence)
	route("GET /v1/evidence/{id}/artifacts/{name...}", "evidence-artifact", auth.ScopeRead, s.evidenceArtifact)
	route("POST /v1/evidence/{id}/verify", "evidence-verify", auth.ScopeRead, s.verifyEvidence)
	route("GET /v1/rules", "rules-list", auth.ScopeRead, s.listRules)
	route("POST /v1/rules/{id}/test", "rules-test", auth.ScopeHunt, s.testRule)
}

// huntRequest is POST /v1/hunt's body.
type huntRequest struct {
	Query string `json:"query"`
	// Since and Until bound every table the query reads: a duration back
	// from now (24h, 7d) or an RFC 3339 time. Since defaults to 24h.
	Since   string `json:"since,omitempty"`
	Until   string `json:"until,omitempty"`
	MaxRows int    `json:"maxRows,omitempty"`
}

type huntColumn struct {
	Name string     `json:"name"`
	Type table.Type `json:"type"`
}

// huntResult is a query's answer. Scanned is how many rows the store
// handed over to the query.
type huntResult struct {
	Columns   []huntColumn      `json:"columns"`
	Rows      []json.RawMessage `json:"rows"`
	ElapsedMs int64             `json:"elapsedMs"`
	Scanned   int64             `json:"scanned"`
	Truncated bool              `json:"truncated"`
	Chart     *chartSpec        `json:"chart,omitempty"`
	Warnings  []string          `json:"warnings,omitempty"`
}

// chartSpec says how to draw a result: X against the Y columns, one
// series per value of Series when it is set.
type chartSpec struct {
	Kind   string   `json:"kind"` // timechart, columnchart, barchart, piechart
	X      string   `json:"x"`
	Y      []string `json:"y"`
	Series string   `json:"series,omitempty"`
}

// queryError is a 400 for an error in the query, at its position.
type queryError struct {
	Error string `json:"error"`
	Line  int    `json:"line,omitempty"`
	Col   int    `json:"col,omitempty"`
}

func (s *Server) postHunt(w http.ResponseWriter, r *http.Request, k *auth.Key) {
	if s.Events == nil {
		writeError(w, http.StatusNotFound, "this server has no event store")
		return
	}
	var req huntRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if strings.TrimSpace(req.Query) == "" {
		writeError(w, http.StatusBadRequest, "query is required")
		return
	}
	if req.MaxRows < 0 || req.MaxRows > maxHuntRows {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("maxRows must be between 1 and %d", maxHuntRows))
		return
	}
	if req.MaxRows == 0 {
		req.MaxRows = defaultHuntRows
	}
	now := time.Now().UTC()
	opts, err := s.huntWindow(k, req.Since, req.Until, now)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, done, ok := s.hunts.start(w, r)
	if !ok {
		return
	}
	defer done()
	start := time.Now()
	res, err := runHunt(ctx, s.Events, opts, req.Query, now, req.MaxRows)
	if err != nil {
		writeHuntError(w, err)
		return
	}
	res.ElapsedMs = time.Since(start).Milliseconds()
	res.Chart = chartFor(req.Query, res.Columns)
	writeJSON(w, http.StatusOK, res)
}

// huntSlots bounds the queries that run at once.
type huntSlots struct {
	once sync.Once
	ch   chan struct{}
}

// start takes a slot for a query of r and bounds it by huntTimeout; done
// gives the slot back. With every slot taken it answers 429 and returns
// false.
func (h *huntSlots) start(w http.ResponseWriter, r *http.Request) (ctx context.Context, done func(), ok bool) {
	h.once.Do(func() { h.ch = make(chan struct{}, maxHunts) })
	select {
	case h.ch <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%d hunts are running: try again in a moment", maxHunts))
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), huntTimeout)
	return ctx, func() { cancel(); <-h.ch }, true
}

// huntWindow turns since (the last 24 hours when "") and until into the
// store's bounds; a key bound to a cluster hunts only that cluster's
// events.
func (s *Server) huntWindow(k *auth.Key, since, until string, now time.Time) (store.SourceOptions, error) {
	var opts store.SourceOptions
	var err error
	if since == "" {
		since = "24h"
	}
	if opts.Since, err = hunt.ParseWhen(since, now); err != nil {
		return opts, fmt.Errorf("since: %w", err)
	}
	if opts.Until, err = hunt.ParseWhen(until, now); err != nil {
		return opts, fmt.Errorf("until: %w", err)
	}
	if !opts.Until.IsZero() && !opts.Until.After(opts.Since) {
		return opts, errors.New("until must be after since")
	}
	if k.Cluster != "" {
		opts.Cluster = k.Cluster
		if s.ClusterName != nil {
			if n := s.ClusterName(k.Cluster); n != "" {
				opts.Cluster = n
			}
		}
	}
	return opts, nil
}

// runHunt streams a query's rows and keeps at most maxRows of them, and
// about maxHuntBytes.
func runHunt(ctx context.Context, st *store.Store, opts store.SourceOptions, query string, now time.Time, maxRows int) (*huntResult, error) {
	cur, warns, err := hunt.Run(ctx, st, opts, query, now)
	if err != nil {
		return nil, err
	}
	defer cur.Close()
	res := &huntResult{Rows: []json.RawMessage{}}
	size := 0
	for _, c := range cur.Columns() {
		res.Columns = append(res.Columns, huntColumn{Name: c.Name, Type: c.Type})
	}
	for _, wn := range warns {
		res.Warnings = append(res.Warnings, wn.String())
	}
	for cur.Next() {
		if len(res.Rows) == maxRows || size > maxHuntBytes {
			res.Truncated = true
			break
		}
		row := cur.Row()
		out := make([]any, len(row))
		for i, v := range row {
			out[i] = hunt.JSONValue(v)
		}
		b, err := json.Marshal(out)
		if err != nil {
			return nil, fmt.Errorf("encode row %d: %w", len(res.Rows)+1, err)
		}
		size += len(b)
		res.Rows = append(res.Rows, b)
	}
	res.Scanned = cur.Scanned()
	if err := cur.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// writeHuntError answers a failed query: 400 with the position of an error
// in the query, 400 for a query that ran too long or failed as it ran (the
// caller's query, not the server, is at fault), 500 only for the store.
func writeHuntError(w http.ResponseWriter, err error) {
	var el *syntax.ErrorList
	switch {
	case errors.As(err, &el) && len(el.Errors) > 0:
		e := el.Errors[0]
		writeJSON(w, http.StatusBadRequest, queryError{Error: strings.Join(el.Lines(), "\n"), Line: e.Pos.Line, Col: e.Pos.Col})
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the query did not finish within %v: narrow the time range or the query", huntTimeout))
	case errors.Is(err, context.Canceled):
		writeError(w, http.StatusBadRequest, "the query was canceled")
	case errors.Is(err, store.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusBadRequest, err.Error())
	}
}

var (
	// renderRE finds a query's render operator and its chart kind.
	renderRE = regexp.MustCompile(`(?i)\|\s*render\s+([a-z]+)`)
	// binRE finds a summarize grouped by bin().
	binRE = regexp.MustCompile(`(?is)\|\s*summarize\b[^|]*\bby\b[^|]*\bbin\s*\(`)
	// lineComment is a KQL comment, left out before looking for either.
	lineComment = regexp.MustCompile(`//[^\n]*`)
)

// chartFor picks the chart for a query whose last render names one, or
// that summarizes by bin(): X is the first datetime column (a time chart)
// or else the first string column, Y the numeric columns, and a second
// string column splits the series.
func chartFor(query string, cols []huntColumn) *chartSpec {
	q := lineComment.ReplaceAllString(query, "")
	kind := ""
	if m := renderRE.FindAllStringSubmatch(q, -1); len(m) > 0 {
		kind = strings.ToLower(m[len(m)-1][1])
		switch kind {
		case "timechart", "columnchart", "barchart", "piechart":
		case "linechart", "areachart", "scatterchart":
			kind = "timechart"
		default:
			kind = "columnchart"
		}
	} else if !binRE.MatchString(q) {
		return nil
	}
	c := &chartSpec{Kind: kind}
	for _, col := range cols {
		if col.Type == table.DateTime && c.X == "" && kind != "piechart" {
			c.X = col.Name
		}
	}
	for _, col := range cols {
		switch {
		case col.Name == c.X:
		case col.Type == table.Long || col.Type == table.Int || col.Type == table.Real:
			c.Y = append(c.Y, col.Name)
		case col.Type == table.String && c.X == "":
			c.X = col.Name
		case col.Type == table.String && c.Series == "":
			c.Series = col.Name
		}
	}
	if c.X == "" || len(c.Y) == 0 {
		return nil
	}
	if c.Kind == "" {
		c.Kind = "columnchart"
		if xType(cols, c.X) == table.DateTime {
			c.Kind = "timechart"
		}
	}
	return c
}

func xType(cols []huntColumn, name string) table.Type {
	for _, c := range cols {
		if c.Name == name {
			return c.Type
		}
	}
	return ""
}

// huntSchema is GET /v1/hunt/schema: the tables a query may read, with
// their columns, for the editor's completion.
type huntSchema struct {
	Tables []huntTable `json:"tables"`
}

type huntTable struct {
	Name    string       `json:"name"`
	Columns []huntColumn `json:"columns"`
}

func (s *Server) huntSchema(w http.ResponseWriter, _ *http.Request, _ *auth.Key) {
	out := huntSchema{Tables: []huntTable{}}
	for _, name := range audit.Tables() {
		cols, err := audit.Schema(name)
		if err != nil {
			continue
		}
		t := huntTable{Name: name, Columns: []huntColumn{}}
		for _, c := range cols {
			t.Columns = append(t.Columns, huntColumn{Name: c.Name, Type: c.Type})
		}
		out.Tables = append(out.Tables, t)
	}
	writeJSON(w, http.StatusOK, out)
}

// huntQueries is GET /v1/hunt/queries: the built-in hunting library.
func (s *Server) huntQueries(w http.ResponseWriter, _ *http.Request, _ *auth.Key) {
	writeJSON(w, http.StatusOK, map[string]any{"queries": hunt.Library()})
}
