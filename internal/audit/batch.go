package audit

import (
	"context"
	"strconv"
	"strings"
	"sync"

	"github.com/kdfir/kdfir/internal/kql/table"
)

// NewBatchSource returns an in-memory table.Source over events, for
// near-real-time detection on an ingested batch and for rule tests.
//
// It is built for many queries over one batch: pushdown filters on hot
// fields (verb, stage, audit id, object reference, response code,
// username) are checked against the decoded Event before any row is built,
// and each event is turned into a table's row at most once, then shared by
// every later scan. The events must come from ParseEvent or Decode and
// must not change while the source is used.
func NewBatchSource(events []Event) table.Source {
	return &batchSource{events: events, cache: map[string][][]any{}}
}

type batchSource struct {
	events []Event
	mu     sync.Mutex
	cache  map[string][][]any // table → row per event, nil until built
}

func (b *batchSource) Schema(_ context.Context, name string) ([]table.Column, error) {
	return Schema(name)
}

func (b *batchSource) Scan(ctx context.Context, req table.ScanRequest) (table.Rows, error) {
	m, err := NewColumnMapper(req.Table, req.Columns)
	if err != nil {
		return nil, err
	}
	cacheKey := req.Table
	if req.Columns != nil {
		cacheKey += "\x00" + strings.Join(req.Columns, "\x00")
	}
	var checks []func(*Event) bool
	for _, f := range req.Filters {
		if c := hotCheck(req.Table, f); c != nil {
			checks = append(checks, c)
		}
	}
	b.mu.Lock()
	rows := b.cache[cacheKey]
	if rows == nil {
		rows = make([][]any, len(b.events)*passes(req.Table))
		b.cache[cacheKey] = rows
	}
	b.mu.Unlock()
	return &batchRows{ctx: ctx, src: b, table: req.Table, rows: rows, m: m, checks: checks, i: -1}, nil
}

type batchRows struct {
	ctx    context.Context
	src    *batchSource
	table  string
	rows   [][]any // per slot: pass*len(events) + event index
	m      *Mapper
	checks []func(*Event) bool
	i      int
	row    []any
	err    error
}

func (r *batchRows) Next() bool {
	n := len(r.src.events)
	for r.err == nil && r.i+1 < len(r.rows) {
		r.i++
		if r.i%1024 == 0 {
			if err := r.ctx.Err(); err != nil {
				r.err = err
				return false
			}
		}
		e := &r.src.events[r.i%n]
		pass := r.i / n
		ok := shows(r.table, e, pass)
		for _, c := range r.checks {
			if !c(e) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		r.src.mu.Lock()
		row := r.rows[r.i]
		if row == nil {
			row = append([]any(nil), r.m.rowOf(e, pass)...)
			r.rows[r.i] = row
		}
		r.src.mu.Unlock()
		r.row = row
		return true
	}
	return false
}

func (r *batchRows) Row() []any          { return r.row }
func (r *batchRows) Err() error          { return r.err }
func (r *batchRows) Close() error        { r.i = len(r.rows); return nil }
func (r *batchRows) RowsAreStable() bool { return true }

// hotField names the decoded Event field a table column (and path into it)
// holds, or "" when it is not one.
func hotField(tableName string, f table.Filter) string {
	key := f.Column
	for _, p := range f.Path {
		key += "." + p
	}
	switch tableName {
	case KubeAudit:
		switch key {
		case "verb", "stage", "auditID", "requestURI":
			return key
		case "objectRef.resource", "objectRef.subresource", "objectRef.namespace", "objectRef.name", "objectRef.apiGroup":
			return key[len("objectRef."):]
		case "responseStatus.code":
			return "code"
		case "user.username":
			return "username"
		}
	case CloudAuditEvents:
		switch key {
		case "OperationName", "RawEventData.Verb":
			return "verb"
		case "ReportId", "RawEventData.AuditId":
			return "auditID"
		case "RawEventData.Stage":
			return "stage"
		case "RawEventData.RequestURI":
			return "requestURI"
		case "RawEventData.ObjectRef.resource", "RawEventData.ObjectRef.subresource", "RawEventData.ObjectRef.namespace", "RawEventData.ObjectRef.name", "RawEventData.ObjectRef.apiGroup":
			return key[len("RawEventData.ObjectRef."):]
		case "RawEventData.ResponseStatus.code":
			return "code"
		case "RawEventData.User.username":
			return "username"
		}
	case AKSAudit, AKSAuditAdmin:
		switch key {
		case "Verb":
			return "verb"
		case "AuditId":
			return "auditID"
		case "Stage":
			return "stage"
		case "RequestUri":
			return "requestURI"
		case "ObjectRef.resource", "ObjectRef.subresource", "ObjectRef.namespace", "ObjectRef.name", "ObjectRef.apiGroup":
			return key[len("ObjectRef."):]
		case "ResponseStatus.code":
			return "code"
		case "User.username":
			return "username"
		}
	}
	return ""
}

// hotValue reads a hot field as its string form, and whether it is present.
func hotValue(e *Event, field string) (string, bool) {
	switch field {
	case "verb":
		return e.Verb, e.Has(FieldVerb)
	case "stage":
		return e.Stage, e.Has(FieldStage)
	case "auditID":
		return e.AuditID, e.Has(FieldAuditID)
	case "requestURI":
		return e.RequestURI, e.Has(FieldRequestURI)
	case "resource":
		return e.ObjectRef.Resource, e.Has(FieldResource)
	case "subresource":
		return e.ObjectRef.Subresource, e.Has(FieldSubresource)
	case "namespace":
		return e.ObjectRef.Namespace, e.Has(FieldNamespace)
	case "name":
		return e.ObjectRef.Name, e.Has(FieldName)
	case "apiGroup":
		return e.ObjectRef.APIGroup, e.Has(FieldAPIGroup)
	case "username":
		return e.User.Username, e.Has(FieldUsername)
	case "code":
		return strconv.FormatInt(e.Code, 10), e.Has(FieldCode)
	}
	return "", false
}

// hotCheck compiles a filter into a check on the decoded event, when the
// filter is on a hot field and its outcome is certain there: equality, in,
// and null tests. Anything else returns nil and is left to the evaluator,
// which applies every filter again anyway.
func hotCheck(tableName string, f table.Filter) func(*Event) bool {
	field := hotField(tableName, f)
	if field == "" {
		return nil
	}
	switch f.Op {
	case table.IsNull:
		return func(e *Event) bool { v, ok := hotValue(e, field); return !ok || (v == "" && field != "code") }
	case table.IsNotNull:
		// A present empty string is not null.
		return func(e *Event) bool { _, ok := hotValue(e, field); return ok }
	case table.Eq:
		want, ok := scalarString(f.Value)
		if !ok || want == "" {
			// An absent string column reads as "", so "" is not certain.
			return nil
		}
		return func(e *Event) bool { v, ok := hotValue(e, field); return ok && v == want }
	case table.In:
		list, ok := f.Value.([]any)
		if !ok {
			return nil
		}
		set := make(map[string]bool, len(list))
		for _, x := range list {
			s, ok := scalarString(x)
			if !ok || s == "" {
				return nil
			}
			set[s] = true
		}
		return func(e *Event) bool { v, ok := hotValue(e, field); return ok && set[v] }
	}
	return nil
}

// scalarString renders a filter value that compares by its string form: a
// string, or a whole number (KQL treats a dynamic 101 as equal to "101").
func scalarString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case int64:
		return strconv.FormatInt(v, 10), true
	case int:
		return strconv.Itoa(v), true
	}
	return "", false
}
