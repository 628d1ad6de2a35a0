package audit

import (
	"regexp"
	"strings"
)

// This file holds what the two Azure Monitor tables of AKS audit events
// need beyond AKSAudit: AKSAuditAdmin (the kube-audit-admin category) and
// the legacy AzureDiagnostics table.
//
// Microsoft documents kube-audit-admin as kube-audit without the events
// whose verb is get or list; watch events stay, as the documentation
// says nothing of them.
//
// AzureDiagnostics holds a row per event and diagnostic category. kdfir
// shows it as if both audit categories were enabled, which is what a
// workspace that collects kube-audit and kube-audit-admin holds: every
// event once with Category "kube-audit", and each admin event (IsAdmin)
// once more with Category "kube-audit-admin". A query that filters on
// Category sees each event once; one that does not sees admin events twice,
// as in Azure.

// Diagnostic categories of AzureDiagnostics.
const (
	CategoryAudit      = "kube-audit"
	CategoryAuditAdmin = "kube-audit-admin"
)

// AzureDiagnostics constants of AKS rows.
const (
	diagOperationName    = "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read"
	diagResourceProvider = "MICROSOFT.CONTAINERSERVICE"
	diagResourceType     = "MANAGEDCLUSTERS"
)

// IsAdmin reports whether an event belongs to the kube-audit-admin
// category: its verb is neither get nor list.
func IsAdmin(e *Event) bool {
	return !e.Has(FieldVerb) || e.Verb != "get" && e.Verb != "list"
}

// shows reports whether a table has a row for e in pass p (see passes).
func shows(name string, e *Event, pass int) bool {
	switch name {
	case AKSAuditAdmin:
		return IsAdmin(e)
	case AzureDiagnostics:
		return pass == 0 || IsAdmin(e)
	}
	return true
}

// passes is how many times a table goes over the events: AzureDiagnostics
// twice (the kube-audit rows, then the kube-audit-admin rows).
func passes(name string) int {
	if name == AzureDiagnostics {
		return 2
	}
	return 1
}

// AKSResourceIDPattern matches an AKS cluster resource id, capturing the
// subscription, the resource group and the cluster name. The store's SQL
// view uses the same expression (RE2 in both).
const AKSResourceIDPattern = `(?i)^/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/microsoft\.containerservice/managedclusters/([^/]+)`

var aksResourceID = regexp.MustCompile(AKSResourceIDPattern)

func diagRow(r []any, e *Event, pass int) {
	category := CategoryAudit
	if pass == 1 {
		category = CategoryAuditAdmin
	}
	var sub, group, name, provider, rtype, op string
	if m := aksResourceID.FindStringSubmatch(e.ClusterResourceID); m != nil {
		sub, group, name = m[1], strings.ToUpper(m[2]), strings.ToUpper(m[3])
		provider, rtype, op = diagResourceProvider, diagResourceType, diagOperationName
	}
	r[0], r[1], r[2] = timeOrNil(e.Time), category, DiagnosticsLog(e)
	r[3], r[4], r[5] = strings.ToUpper(e.ClusterResourceID), e.ClusterResourceID, sub
	r[6], r[7], r[8], r[9] = group, name, provider, rtype
	r[10], r[11], r[12], r[13] = op, "Azure", e.Cluster, AzureDiagnostics
}

// DiagnosticsLog renders an event as the log_s text of AzureDiagnostics:
// a JSON object of the audit.k8s.io Event members in the API server's
// order (kind, apiVersion, level, auditID, stage, requestURI, verb, user,
// impersonatedUser, sourceIPs, userAgent, objectRef, responseStatus,
// requestObject, responseObject, requestReceivedTimestamp,
// stageTimestamp, annotations). Members the event does not have, other
// members, and timestamps that are not strings are left out. It is
// written from the shredded Record exactly as the store's SQL writes it
// from the stored columns, so that the two are equal byte for byte:
// strings escaped as DuckDB's to_json escapes them, the JSON members
// compact as stored.
func DiagnosticsLog(e *Event) string {
	r := Shred(e)
	var b strings.Builder
	b.WriteByte('{')
	n := 0
	member := func(key string) {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.WriteString(`"` + key + `":`)
	}
	str := func(key, v string, bit uint8) {
		switch {
		case r.Strs&bit != 0:
			member(key)
			writeJSONString(&b, v)
		case r.NullStrs&bit != 0:
			member(key)
			b.WriteString("null")
		}
	}
	obj := func(key string, v []byte) {
		if v != nil {
			member(key)
			b.Write(v)
		}
	}
	stamp := func(key, pascal string) {
		if r.Extra == nil {
			return
		}
		_ = eachField(r.Extra, func(k string, v []byte) bool {
			if k != pascal {
				return true
			}
			if jsonKind(v) == 's' {
				member(key)
				writeJSONString(&b, decodeString(v))
			}
			return false
		})
	}
	str("kind", r.Kind, StrKind)
	str("apiVersion", r.APIVersion, StrAPIVersion)
	str("level", r.Level, StrLevel)
	str("auditID", r.AuditID, StrAuditID)
	str("stage", r.Stage, StrStage)
	str("requestURI", r.RequestURI, StrRequestURI)
	str("verb", r.Verb, StrVerb)
	obj("user", r.User)
	obj("impersonatedUser", r.ImpersonatedUser)
	obj("sourceIPs", r.SourceIPs)
	str("userAgent", r.UserAgent, StrUserAgent)
	obj("objectRef", r.ObjectRef)
	obj("responseStatus", r.ResponseStatus)
	obj("requestObject", r.RequestObject)
	obj("responseObject", r.ResponseObject)
	stamp("requestReceivedTimestamp", "RequestReceivedTimestamp")
	stamp("stageTimestamp", "StageTimestamp")
	obj("annotations", r.Annotations)
	b.WriteByte('}')
	return b.String()
}

// writeJSONString writes s as a JSON string the way DuckDB's to_json does:
// quote and backslash escaped, \b \f \n \r \t, other control characters
// as \u00XX (upper-case hex), everything else as it is.
func writeJSONString(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&15])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}
