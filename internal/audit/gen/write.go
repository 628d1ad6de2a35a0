package gen

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// user is an authenticated identity.
type user struct {
	name   string
	groups []string
	oid    string // Entra object id, written to extra["oid"]
	ua     string
	ip     string
}

type objRef struct {
	resource, subresource, namespace, name, apiGroup, apiVersion string
}

// ev is one event to write.
type ev struct {
	auditID     string
	level       string
	stage       string
	uri         string
	verb        string
	u           *user
	ref         *objRef
	code        int
	reason      string // authorization reason; decision is forbid when code is 403
	reqObj      []byte // raw JSON, may be nil
	respObj     []byte // raw JSON, may be nil
	podSecurity bool   // add the pod-security admission annotation
	recv, stamp time.Time
}

const tsLayout = "2006-01-02T15:04:05.000000Z07:00"

func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			default:
				b = append(b, `\u00`...)
				b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
			}
			i++
			continue
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		b = append(b, s[i:i+n]...)
		i += n
	}
	return append(b, '"')
}

func appendKV(b []byte, k, v string) []byte {
	b = append(b, '"')
	b = append(b, k...)
	b = append(b, '"', ':')
	return appendQuoted(b, v)
}

// appendEvent writes e as one JSON line in the API server's key order.
func appendEvent(b []byte, e *ev) []byte {
	b = append(b, `{"kind":"Event","apiVersion":"audit.k8s.io/v1",`...)
	b = appendKV(b, "level", e.level)
	b = append(b, ',')
	b = appendKV(b, "auditID", e.auditID)
	b = append(b, ',')
	b = appendKV(b, "stage", e.stage)
	b = append(b, ',')
	b = appendKV(b, "requestURI", e.uri)
	b = append(b, ',')
	b = appendKV(b, "verb", e.verb)
	b = append(b, `,"user":{`...)
	b = appendKV(b, "username", e.u.name)
	b = append(b, `,"groups":[`...)
	for i, g := range e.u.groups {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendQuoted(b, g)
	}
	b = append(b, ']')
	if e.u.oid != "" {
		b = append(b, `,"extra":{"oid":[`...)
		b = appendQuoted(b, e.u.oid)
		b = append(b, `]}`...)
	}
	b = append(b, `},"sourceIPs":[`...)
	b = appendQuoted(b, e.u.ip)
	b = append(b, `],`...)
	b = appendKV(b, "userAgent", e.u.ua)
	if r := e.ref; r != nil {
		b = append(b, `,"objectRef":{`...)
		b = appendKV(b, "resource", r.resource)
		for _, kv := range [...][2]string{
			{"subresource", r.subresource}, {"namespace", r.namespace}, {"name", r.name},
			{"apiGroup", r.apiGroup}, {"apiVersion", r.apiVersion},
		} {
			if kv[1] != "" {
				b = append(b, ',')
				b = appendKV(b, kv[0], kv[1])
			}
		}
		b = append(b, '}')
	}
	b = append(b, `,"responseStatus":{"metadata":{}`...)
	if e.code >= 400 {
		b = append(b, `,"status":"Failure","reason":"Forbidden"`...)
	}
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(e.code), 10)
	b = append(b, '}')
	if e.reqObj != nil {
		b = append(b, `,"requestObject":`...)
		b = append(b, e.reqObj...)
	}
	if e.respObj != nil {
		b = append(b, `,"responseObject":`...)
		b = append(b, e.respObj...)
	}
	b = append(b, `,"requestReceivedTimestamp":"`...)
	b = e.recv.UTC().AppendFormat(b, tsLayout)
	b = append(b, `","stageTimestamp":"`...)
	b = e.stamp.UTC().AppendFormat(b, tsLayout)
	b = append(b, `","annotations":{"authorization.k8s.io/decision":`...)
	if e.code == 403 {
		b = append(b, `"forbid"`...)
	} else {
		b = append(b, `"allow"`...)
	}
	b = append(b, ',')
	b = appendKV(b, "authorization.k8s.io/reason", e.reason)
	if e.podSecurity {
		b = append(b, `,"pod-security.kubernetes.io/enforce-policy":"privileged:latest"`...)
	}
	return append(b, "}}\n"...)
}
