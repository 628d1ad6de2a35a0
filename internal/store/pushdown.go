package store

import (
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// This file translates pushdown filters into SQL on the hot columns. A
// translation may select more rows than the filter (the evaluator checks
// every row again) but never fewer; a filter that cannot be translated
// that way is skipped.

type kind int

const (
	kStr        kind = iota // a KQL string column: SQL NULL means ""
	kDyn                    // a string inside a dynamic column: SQL NULL means absent or null
	kKey                    // audit_id: holds a hash where the event has no auditID
	kTime                   // exactly Event.Time
	kTimeStage              // a timestamp that equals Event.Time whenever it is set
	kCode                   // responseStatus.code
	kGroups                 // user.groups, stored as a JSON array
	kDataSource             // CloudAuditEvents.DataSource, derived from cluster_resource_id
	kActionType             // CloudAuditEvents.ActionType, derived from verb
)

type target struct {
	col      string
	kind     kind
	nullable bool // SQL NULL exactly when the value is null (kDyn)
}

// key names a filter's value: its column and path.
func key(col string, path ...string) string {
	return strings.Join(append([]string{col}, path...), "\x00")
}

// eventTargets adds the targets for the user, objectRef and
// responseStatus of an event, found in column col ("" when they are
// columns themselves), with PascalCase names when pascal.
func eventTargets(m map[string]target, col string, pascal bool) {
	key := func(col string, path ...string) string {
		if col == "" {
			return key(path[0], path[1:]...)
		}
		return key(col, path...)
	}
	name := func(camel, pas string) string {
		if pascal {
			return pas
		}
		return camel
	}
	user, ref, status := name("user", "User"), name("objectRef", "ObjectRef"), name("responseStatus", "ResponseStatus")
	m[key(col, user, "username")] = target{"username", kDyn, true}
	m[key(col, user, "groups")] = target{"groups", kGroups, true}
	for _, f := range [][2]string{
		{"resource", "resource"}, {"subresource", "subresource"}, {"namespace", "namespace"},
		{"name", "name"}, {"apiGroup", "api_group"},
	} {
		m[key(col, ref, f[0])] = target{f[1], kDyn, true}
	}
	m[key(col, status, "code")] = target{"code", kCode, true}
}

var targets = func() map[string]map[string]target {
	ka := map[string]target{
		"verb": {"verb", kStr, false}, "auditID": {"audit_id", kKey, false},
		"stage": {"stage", kStr, false}, "requestURI": {"request_uri", kStr, false},
		"userAgent": {"user_agent", kStr, false}, "stageTimestamp": {"time", kTimeStage, false},
		"Cluster": {"cluster", kStr, false}, "ClusterResourceId": {"cluster_resource_id", kStr, false},
	}
	eventTargets(ka, "", false)

	cae := map[string]target{
		"Timestamp": {"time", kTime, false}, "TimeGenerated": {"time", kTime, false},
		"ReportId": {"audit_id", kKey, false}, "OperationName": {"verb", kStr, false},
		"IPAddress": {"source_ip", kStr, false}, "UserAgent": {"user_agent", kStr, false},
		"AzureResourceId": {"cluster_resource_id", kStr, false},
		"ResourceId":      {"cluster_resource_id", kStr, false},
		"Cluster":         {"cluster", kStr, false}, "DataSource": {"cluster_resource_id", kDataSource, false},
		"ActionType":                           {"verb", kActionType, false},
		key("RawEventData", "Verb"):            {"verb", kDyn, true},
		key("RawEventData", "Stage"):           {"stage", kDyn, false},
		key("RawEventData", "AuditId"):         {"audit_id", kKey, false},
		key("RawEventData", "RequestURI"):      {"request_uri", kDyn, true},
		key("RawEventData", "UserAgent"):       {"user_agent", kDyn, true},
		key("RawEventData", "principaloid"):    {"principal_oid", kDyn, true},
		key("RawEventData", "AzureResourceId"): {"cluster_resource_id", kDyn, false},
		key("AdditionalFields", "Cluster"):     {"cluster", kDyn, false},
	}
	eventTargets(cae, "RawEventData", true)

	aks := map[string]target{
		"TimeGenerated": {"time", kTime, false}, "StageReceivedTime": {"time", kTimeStage, false},
		"Verb": {"verb", kStr, false}, "AuditId": {"audit_id", kKey, false},
		"Stage": {"stage", kStr, false}, "RequestUri": {"request_uri", kStr, false},
		"UserAgent": {"user_agent", kStr, false}, "_ResourceId": {"cluster_resource_id", kStr, false},
		"Cluster": {"cluster", kStr, false},
	}
	eventTargets(aks, "", true)
	return map[string]map[string]target{audit.KubeAudit: ka, audit.CloudAuditEvents: cae, audit.AKSAudit: aks}
}()

// clause is one SQL condition and its arguments.
type clause struct {
	sql  string
	args []any
}

// translate returns the SQL for f on table, or false to skip it.
func translate(tbl string, f table.Filter) (clause, bool) {
	t, ok := targets[tbl][key(f.Column, f.Path...)]
	if !ok {
		return clause{}, false
	}
	switch t.kind {
	case kStr, kDyn, kKey:
		return strClause(t, f)
	case kTime, kTimeStage:
		return timeClause(t, f)
	case kCode:
		return codeClause(f)
	case kGroups:
		return groupsClause(f)
	case kDataSource:
		return dataSourceClause(f)
	case kActionType:
		return actionTypeClause(f)
	}
	return clause{}, false
}

// nonEmpty returns v as a non-empty string.
func nonEmpty(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok && s != ""
}

func strClause(t target, f table.Filter) (clause, bool) {
	c := t.col
	switch f.Op {
	case table.IsNull, table.IsNotNull:
		if t.kind != kDyn || !t.nullable {
			return clause{}, false
		}
		if f.Op == table.IsNull {
			return clause{c + " IS NULL", nil}, true
		}
		return clause{c + " IS NOT NULL", nil}, true
	case table.In:
		l, ok := f.Value.([]any)
		if !ok || len(l) == 0 || len(l) > 500 {
			return clause{}, false
		}
		for _, x := range l {
			if _, ok := nonEmpty(x); !ok {
				return clause{}, false
			}
		}
		return clause{c + " IN (" + placeholders(len(l)) + ")", l}, true
	}
	v, ok := nonEmpty(f.Value)
	if !ok {
		return clause{}, false
	}
	switch f.Op {
	case table.Eq:
		return clause{c + " = ?", []any{v}}, true
	case table.Ne:
		if t.kind == kKey {
			return clause{}, false
		}
		return clause{"(" + c + " IS NULL OR " + c + " <> ?)", []any{v}}, true
	}
	return likeClause(c, f.Op, v)
}

// likeClause translates the case-insensitive string operators.
func likeClause(col string, op table.Op, v string) (clause, bool) {
	pat, ok := likePattern(v)
	if !ok {
		return clause{}, false
	}
	switch op {
	case table.EqFold:
	case table.StartsWith:
		pat += "%"
	case table.Has, table.Contains:
		pat = "%" + pat + "%"
	default:
		return clause{}, false
	}
	return clause{col + ` LIKE ? ESCAPE '\'`, []any{pat}}, true
}

// likePattern makes a LIKE pattern matching at least every string that
// equals v ignoring case. SQLite's LIKE folds ASCII only, so values with
// other characters are not translated, and i, k and s, which non-ASCII
// letters fold or lower to (İ, K, ſ), match any character.
func likePattern(v string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= utf8.RuneSelf {
			return "", false
		}
		switch c {
		case 'i', 'I', 'k', 'K', 's', 'S':
			b.WriteByte('_')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func timeClause(t target, f table.Filter) (clause, bool) {
	switch f.Op {
	case table.IsNotNull:
		return clause{"time <> ?", []any{NoTime}}, true
	case table.IsNull:
		if t.kind != kTime {
			return clause{}, false
		}
		return clause{"time = ?", []any{NoTime}}, true
	}
	tv, ok := f.Value.(time.Time)
	if !ok {
		return clause{}, false
	}
	ns, ok := unixNanos(tv)
	if !ok || ns == NoTime {
		return clause{}, false
	}
	switch f.Op {
	case table.Eq:
		return clause{"time = ?", []any{ns}}, true
	case table.Lt:
		return clause{"time < ? AND time <> ?", []any{ns, NoTime}}, true
	case table.Le:
		return clause{"time <= ? AND time <> ?", []any{ns, NoTime}}, true
	case table.Gt:
		return clause{"time > ?", []any{ns}}, true
	case table.Ge:
		return clause{"time >= ?", []any{ns}}, true
	case table.Ne:
		if t.kind != kTime {
			return clause{}, false
		}
		return clause{"time <> ?", []any{ns}}, true
	}
	return clause{}, false
}

// number returns v as an SQL-comparable number.
func number(v any) (any, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case float64:
		return x, !math.IsNaN(x)
	}
	return nil, false
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			if !(i == 0 && s[i] == '-') {
				return false
			}
		}
	}
	return true
}

func codeClause(f table.Filter) (clause, bool) {
	switch f.Op {
	case table.IsNull:
		return clause{"code IS NULL", nil}, true
	case table.IsNotNull:
		return clause{"code IS NOT NULL", nil}, true
	case table.In:
		l, ok := f.Value.([]any)
		if !ok || len(l) == 0 || len(l) > 500 {
			return clause{}, false
		}
		for _, x := range l {
			if _, ok := number(x); !ok {
				return clause{}, false
			}
		}
		return clause{"code IN (" + placeholders(len(l)) + ")", l}, true
	case table.StartsWith, table.Has, table.Contains, table.EqFold:
		s, ok := f.Value.(string)
		if !ok || !digits(s) {
			return clause{}, false
		}
		switch f.Op {
		case table.StartsWith:
			return clause{"CAST(code AS TEXT) LIKE ?", []any{s + "%"}}, true
		case table.EqFold:
			return clause{"CAST(code AS TEXT) = ?", []any{s}}, true
		}
		return clause{"CAST(code AS TEXT) LIKE ?", []any{"%" + s + "%"}}, true
	}
	n, ok := number(f.Value)
	if !ok {
		return clause{}, false
	}
	op := map[table.Op]string{table.Eq: "=", table.Lt: "<", table.Le: "<=", table.Gt: ">", table.Ge: ">="}[f.Op]
	if f.Op == table.Ne {
		return clause{"(code IS NULL OR code <> ?)", []any{n}}, true
	}
	if op == "" {
		return clause{}, false
	}
	return clause{"code " + op + " ?", []any{n}}, true
}

// groupsClause matches a term in the JSON text of user.groups. Only
// values whose characters JSON never escapes are translated.
func groupsClause(f table.Filter) (clause, bool) {
	switch f.Op {
	case table.IsNull:
		return clause{"groups IS NULL", nil}, true
	case table.IsNotNull:
		return clause{"groups IS NOT NULL", nil}, true
	case table.Has, table.Contains:
	default:
		return clause{}, false
	}
	v, ok := nonEmpty(f.Value)
	if !ok {
		return clause{}, false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(":._@/-", c) >= 0) {
			return clause{}, false
		}
	}
	return likeClause("groups", table.Contains, v)
}

func dataSourceClause(f table.Filter) (clause, bool) {
	v, ok := f.Value.(string)
	if !ok || (f.Op != table.Eq && f.Op != table.EqFold) {
		return clause{}, false
	}
	same := func(c string) bool {
		if f.Op == table.Eq {
			return v == c
		}
		return strings.EqualFold(v, c)
	}
	const col = "cluster_resource_id"
	switch {
	case same(audit.DataSourceAKS):
		return clause{col + " LIKE '%/providers/microsoft.containerservice/managedclusters/%'", nil}, true
	case same(audit.DataSourceEKS):
		return clause{"(" + col + " LIKE 'arn:%' AND " + col + " LIKE '%:eks:%')", nil}, true
	case same(audit.DataSourceGKE):
		return clause{"(" + col + " LIKE '//container.googleapis.com/%' OR (" + col +
			" LIKE 'projects/%' AND " + col + " LIKE '%/clusters/%'))", nil}, true
	}
	return clause{}, false
}

// actionTypeClause inverts audit.ActionType for equality.
func actionTypeClause(f table.Filter) (clause, bool) {
	v, ok := f.Value.(string)
	if !ok || f.Op != table.Eq || !strings.HasPrefix(v, "Kubernetes") || len(v) == len("Kubernetes") {
		return clause{}, false
	}
	r := v[len("Kubernetes"):]
	verbs := []any{r}
	if c := r[0]; 'A' <= c && c <= 'Z' {
		verbs = append(verbs, string(c-'A'+'a')+r[1:])
	}
	return clause{"verb IN (" + placeholders(len(verbs)) + ")", verbs}, true
}
