package store

import (
	"fmt"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/kql/sqlc"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// This file defines the table views (KubeAudit, CloudAuditEvents,
// AKSAudit, AKSAuditAdmin, AzureDiagnostics) as SQL over the events table, for the KQL compiler. They give
// exactly the rows that audit.Mapper builds from an event in memory; the
// tests hold the two to each other.

// SourceOptions restrict what a query sees.
type SourceOptions struct {
	Since   time.Time // when set, only events at or after Since
	Until   time.Time // when set, only events before Until
	Cluster string    // when set, only this cluster's events
}

// where is the SQL condition for opts ("" for none). With a time bound,
// events without a time are left out.
func (o SourceOptions) where() string {
	var w []string
	if o.Cluster != "" {
		w = append(w, "cluster = "+quote(o.Cluster))
	}
	if !o.Since.IsZero() {
		w = append(w, "time >= "+tsLit(o.Since))
	}
	if !o.Until.IsZero() {
		w = append(w, "time < "+tsLit(o.Until))
	}
	return strings.Join(w, " AND ")
}

// Catalog returns the table views restricted by opts, for sqlc.
func (s *Store) Catalog(opts SourceOptions) sqlc.Catalog {
	return catalog{where: opts.where()}
}

type catalog struct{ where string }

func (c catalog) Tables() []string { return audit.Tables() }

func (c catalog) Table(name string) (*sqlc.Table, bool) {
	cols, ok := views[name]
	if !ok {
		return nil, false
	}
	t := &sqlc.Table{Name: name, From: "events", Where: c.where, Columns: cols}
	switch name {
	case audit.AKSAuditAdmin:
		t.Where = and(t.Where, adminSQL)
	case audit.AzureDiagnostics:
		// Every event as kube-audit, admin events again as
		// kube-audit-admin (see audit.IsAdmin).
		t.From = `(SELECT *, '` + audit.CategoryAudit + `' AS diag_category FROM events
	UNION ALL SELECT *, '` + audit.CategoryAuditAdmin + `' AS diag_category FROM events WHERE ` + adminSQL + `) AS events`
	}
	return t, true
}

// adminSQL mirrors audit.IsAdmin.
const adminSQL = "coalesce(verb, '') NOT IN ('get', 'list')"

func and(a, b string) string {
	if a == "" {
		return b
	}
	return a + " AND " + b
}

func str(name, sql string) *sqlc.Column {
	return &sqlc.Column{Name: name, Type: table.String, SQL: "coalesce(" + sql + ", '')"}
}

func col(name string, t table.Type, sql string) *sqlc.Column {
	return &sqlc.Column{Name: name, Type: t, SQL: sql}
}

// dstr is a dynamic value the store keeps as a plain string column.
func dstr(name, sql string) *sqlc.Column {
	return &sqlc.Column{Name: name, Type: table.Dynamic, SQL: sql, StringRep: true}
}

// dyn is a dynamic value the store keeps as JSON text in a column; a
// member that was null is kept as 'null', which is null to queries.
func dyn(name, sql string, fields ...*sqlc.Column) *sqlc.Column {
	c := &sqlc.Column{Name: name, Type: table.Dynamic, SQL: "nullif(" + sql + ", 'null')"}
	if len(fields) > 0 {
		c.Fields = map[string]*sqlc.Column{}
		for _, f := range fields {
			c.Fields[f.Name] = f
		}
	}
	return c
}

func userCol(name string) *sqlc.Column {
	return dyn(name, `"user"`, dstr("username", "username"))
}

// statusCol is responseStatus: its code reads the integer column, as JSON
// text (the store refuses a code that is not an integer, and keeps NULL
// for a code that is null or absent), instead of parsing the object.
func statusCol(name string) *sqlc.Column {
	return dyn(name, "response_status", &sqlc.Column{Name: "code", Type: table.Dynamic, SQL: "CAST(code AS VARCHAR)"})
}

func objectRefCol(name string) *sqlc.Column {
	return dyn(name, "object_ref", dstr("resource", "resource"), dstr("subresource", "subresource"),
		dstr("namespace", "namespace"), dstr("name", "name"), dstr("apiGroup", "api_group"))
}

// dataSourceSQL mirrors audit.DataSource.
const dataSourceSQL = `CASE
	WHEN contains(lower(cluster_resource_id), '/providers/microsoft.containerservice/managedclusters/') THEN 'Azure Kubernetes Service'
	WHEN starts_with(lower(cluster_resource_id), 'arn:') AND contains(lower(cluster_resource_id), ':eks:') THEN 'Amazon Elastic Kubernetes Service'
	WHEN starts_with(lower(cluster_resource_id), '//container.googleapis.com/')
	  OR (starts_with(lower(cluster_resource_id), 'projects/') AND contains(lower(cluster_resource_id), '/clusters/')) THEN 'Google Kubernetes Engine'
	ELSE 'Kubernetes' END`

// diagLogSQL mirrors audit.DiagnosticsLog: the event as JSON text with
// the API server's member names and order.
var diagLogSQL = func() string {
	strs := []struct {
		key, col string
		bit      uint8
	}{
		{"kind", "kind", audit.StrKind}, {"apiVersion", "api_version", audit.StrAPIVersion},
		{"level", "level", audit.StrLevel}, {"auditID", "audit_id", audit.StrAuditID},
		{"stage", "stage", audit.StrStage}, {"requestURI", "request_uri", audit.StrRequestURI},
		{"verb", "verb", audit.StrVerb}, {"userAgent", "user_agent", audit.StrUserAgent},
	}
	str := func(key string) string {
		for _, s := range strs {
			if s.key == key {
				return fmt.Sprintf(`'"%s":' || coalesce(CAST(to_json(%s) AS VARCHAR), CASE WHEN null_strs & %d <> 0 THEN 'null' END)`, key, s.col, s.bit)
			}
		}
		panic(key)
	}
	obj := func(key, col string) string { return `'"` + key + `":' || ` + col }
	stamp := func(key, pascal string) string {
		return fmt.Sprintf(`CASE WHEN json_type(extra, '$.%[2]s') = 'VARCHAR' THEN '"%[1]s":' || CAST(json_extract(extra, '$.%[2]s') AS VARCHAR) END`, key, pascal)
	}
	parts := []string{
		str("kind"), str("apiVersion"), str("level"), str("auditID"), str("stage"), str("requestURI"), str("verb"),
		obj("user", `"user"`), obj("impersonatedUser", "impersonated_user"), obj("sourceIPs", "source_ips"),
		str("userAgent"), obj("objectRef", "object_ref"), obj("responseStatus", "response_status"),
		obj("requestObject", "request_object"), obj("responseObject", "response_object"),
		stamp("requestReceivedTimestamp", "RequestReceivedTimestamp"), stamp("stageTimestamp", "StageTimestamp"),
		obj("annotations", "annotations"),
	}
	return "'{' || concat_ws(',', " + strings.Join(parts, ", ") + ") || '}'"
}()

// diagLogParsed is parse_json(log_s): its members read the stored
// columns they come from (the timestamps, and anything else, the text).
var diagLogParsed = &sqlc.Column{Name: "log", Type: table.Dynamic, SQL: diagLogSQL, FieldsRest: diagLogSQL, Fields: map[string]*sqlc.Column{
	"kind": dstr("kind", "kind"), "apiVersion": dstr("apiVersion", "api_version"), "level": dstr("level", "level"),
	"auditID": dstr("auditID", "audit_id"), "stage": dstr("stage", "stage"), "requestURI": dstr("requestURI", "request_uri"),
	"verb": dstr("verb", "verb"), "user": userCol("user"), "impersonatedUser": dyn("impersonatedUser", "impersonated_user"),
	"sourceIPs": dyn("sourceIPs", "source_ips"), "userAgent": dstr("userAgent", "user_agent"), "objectRef": objectRefCol("objectRef"),
	"responseStatus": statusCol("responseStatus"), "requestObject": dyn("requestObject", "request_object"),
	"responseObject": dyn("responseObject", "response_object"), "annotations": dyn("annotations", "annotations"),
}}

// aksIDPart is a part of an AKS cluster resource id (” for other ids);
// see audit.AKSResourceIDPattern.
func aksIDPart(i int) string {
	return fmt.Sprintf("regexp_extract(cluster_resource_id, '%s', %d)", audit.AKSResourceIDPattern, i)
}

// ifAKS is v for an AKS cluster, else ”.
func ifAKS(v string) string {
	return fmt.Sprintf("CASE WHEN regexp_matches(cluster_resource_id, '%s') THEN %s ELSE '' END", audit.AKSResourceIDPattern, v)
}

// actionTypeSQL mirrors audit.ActionType.
const actionTypeSQL = `('Kubernetes' || CASE WHEN verb IS NULL OR verb = '' THEN ''
	WHEN substring(verb, 1, 1) BETWEEN 'a' AND 'z' THEN upper(substring(verb, 1, 1)) || substring(verb, 2)
	ELSE verb END)`

// rawEventDataSQL rebuilds CloudAuditEvents.RawEventData: the event's
// members under their PascalCase keys, the cluster's resource id and the
// principal's object id. It is written as text: the members are JSON
// already, and the keys of extra never collide with the others (see
// audit.Record), so nothing is parsed.
var rawEventDataSQL = func() string {
	members := [][2]string{
		{"Kind", "to_json(kind)"}, {"ApiVersion", "to_json(api_version)"}, {"Level", "to_json(level)"},
		{"AuditId", "to_json(audit_id)"}, {"Stage", "to_json(stage)"}, {"RequestURI", "to_json(request_uri)"},
		{"Verb", "to_json(verb)"}, {"User", `"user"`}, {"ImpersonatedUser", "impersonated_user"},
		{"SourceIPs", "source_ips"}, {"UserAgent", "to_json(user_agent)"}, {"ObjectRef", "object_ref"},
		{"ResponseStatus", "response_status"}, {"RequestObject", "request_object"},
		{"ResponseObject", "response_object"}, {"Annotations", "annotations"},
		{"AzureResourceId", "to_json(nullif(cluster_resource_id, ''))"}, {"principaloid", "to_json(principal_oid)"},
	}
	// The string members, which may have been null: their bits in null_strs.
	nullBits := map[string]uint8{
		"Kind": audit.StrKind, "ApiVersion": audit.StrAPIVersion, "Level": audit.StrLevel, "AuditId": audit.StrAuditID,
		"Stage": audit.StrStage, "RequestURI": audit.StrRequestURI, "Verb": audit.StrVerb, "UserAgent": audit.StrUserAgent,
	}
	parts := make([]string, 0, len(members)+1)
	for _, m := range members {
		v := "CAST(" + m[1] + " AS VARCHAR)"
		if bit, ok := nullBits[m[0]]; ok {
			v = fmt.Sprintf("coalesce(%s, CASE WHEN null_strs & %d <> 0 THEN 'null' END)", v, bit)
		}
		parts = append(parts, `'"`+m[0]+`":' || `+v)
	}
	parts = append(parts, "nullif(substring(extra, 2, length(extra) - 2), '')")
	return "'{' || concat_ws(',', " + strings.Join(parts, ", ") + ") || '}'"
}()

func aksColumns(typ string) []*sqlc.Column {
	return []*sqlc.Column{
		col("TimeGenerated", table.DateTime, "time"), str("Level", "level"), str("AuditId", "audit_id"),
		str("Stage", "stage"), str("RequestUri", "request_uri"), str("Verb", "verb"), userCol("User"),
		dyn("SourceIps", "source_ips"), str("UserAgent", "user_agent"), objectRefCol("ObjectRef"),
		statusCol("ResponseStatus"), dyn("RequestObject", "request_object"),
		dyn("ResponseObject", "response_object"), dyn("Annotations", "annotations"),
		col("RequestReceivedTime", table.DateTime, "request_received"), col("StageReceivedTime", table.DateTime, "stage_timestamp"),
		col("_ResourceId", table.String, "cluster_resource_id"), col("Cluster", table.String, "cluster"),
		col("Type", table.String, "'"+typ+"'"),
	}
}

var views = map[string][]*sqlc.Column{
	audit.KubeAudit: {
		str("kind", "kind"), str("apiVersion", "api_version"), str("level", "level"),
		str("auditID", "audit_id"), str("stage", "stage"), str("requestURI", "request_uri"),
		str("verb", "verb"), userCol("user"), dyn("impersonatedUser", "impersonated_user"),
		dyn("sourceIPs", "source_ips"), str("userAgent", "user_agent"), objectRefCol("objectRef"),
		statusCol("responseStatus"), dyn("requestObject", "request_object"),
		dyn("responseObject", "response_object"), col("requestReceivedTimestamp", table.DateTime, "request_received"),
		col("stageTimestamp", table.DateTime, "stage_timestamp"), dyn("annotations", "annotations"),
		col("Cluster", table.String, "cluster"), col("ClusterResourceId", table.String, "cluster_resource_id"),
	},
	audit.CloudAuditEvents: {
		col("Timestamp", table.DateTime, "time"), col("TimeGenerated", table.DateTime, "time"),
		str("ReportId", "audit_id"), col("DataSource", table.String, dataSourceSQL),
		col("ActionType", table.String, actionTypeSQL), str("OperationName", "verb"),
		col("AzureResourceId", table.String, "cluster_resource_id"), col("ResourceId", table.String, "cluster_resource_id"),
		str("IPAddress", "source_ip"), str("UserAgent", "user_agent"), col("Cluster", table.String, "cluster"),
		{Name: "RawEventData", Type: table.Dynamic, SQL: rawEventDataSQL, FieldsRest: "extra", Fields: map[string]*sqlc.Column{
			"Kind": dstr("Kind", "kind"), "ApiVersion": dstr("ApiVersion", "api_version"), "Level": dstr("Level", "level"),
			"AuditId": dstr("AuditId", "audit_id"), "Stage": dstr("Stage", "stage"), "RequestURI": dstr("RequestURI", "request_uri"),
			"Verb": dstr("Verb", "verb"), "User": userCol("User"), "ImpersonatedUser": dyn("ImpersonatedUser", "impersonated_user"),
			"SourceIPs": dyn("SourceIPs", "source_ips"), "UserAgent": dstr("UserAgent", "user_agent"),
			"ObjectRef": objectRefCol("ObjectRef"), "ResponseStatus": statusCol("ResponseStatus"),
			"RequestObject": dyn("RequestObject", "request_object"), "ResponseObject": dyn("ResponseObject", "response_object"),
			"Annotations": dyn("Annotations", "annotations"), "AzureResourceId": dstr("AzureResourceId", "nullif(cluster_resource_id, '')"),
			"principaloid": dstr("principaloid", "principal_oid"),
		}},
		{Name: "AdditionalFields", Type: table.Dynamic, SQL: "CAST(json_object('Cluster', cluster) AS VARCHAR)"},
		col("IsAnonymousProxy", table.Bool, "CAST(NULL AS BOOLEAN)"), col("CountryCode", table.String, "''"),
		col("City", table.String, "''"), col("Isp", table.String, "''"),
	},
	audit.AKSAudit:      aksColumns(audit.AKSAudit),
	audit.AKSAuditAdmin: aksColumns(audit.AKSAuditAdmin),
	audit.AzureDiagnostics: {
		col("TimeGenerated", table.DateTime, "time"), col("Category", table.String, "diag_category"),
		{Name: "log_s", Type: table.String, SQL: diagLogSQL, Parsed: diagLogParsed}, col("ResourceId", table.String, "upper(cluster_resource_id)"),
		col("_ResourceId", table.String, "cluster_resource_id"), col("SubscriptionId", table.String, aksIDPart(1)),
		col("ResourceGroup", table.String, "upper("+aksIDPart(2)+")"), col("Resource", table.String, "upper("+aksIDPart(3)+")"),
		col("ResourceProvider", table.String, ifAKS("'MICROSOFT.CONTAINERSERVICE'")),
		col("ResourceType", table.String, ifAKS("'MANAGEDCLUSTERS'")),
		col("OperationName", table.String, ifAKS("'Microsoft.ContainerService/managedClusters/diagnosticLogs/Read'")),
		col("SourceSystem", table.String, "'Azure'"), col("Cluster", table.String, "cluster"),
		col("Type", table.String, "'AzureDiagnostics'"),
	},
}
