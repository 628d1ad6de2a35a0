package audit

import (
	"bytes"
	"encoding/json"
	"time"
)

// Record is an event shredded for a columnar store: every top-level member
// of the event JSON in its own column, so that a query reads only the
// members it uses, and the hot fields again as typed values. Together the
// members rebuild the event: the table views (KubeAudit, CloudAuditEvents,
// AKSAudit) need nothing else.
//
// A member that is absent has a nil slice (JSON members) or an empty
// string with its presence bit clear. String members hold the text the
// views show (str): the string itself, or the JSON of a non-string value.
type Record struct {
	Time                            time.Time // Event.Time; zero when unknown
	RequestReceived, StageTimestamp time.Time // the members, parsed; zero when absent or invalid

	// The string members: kind, apiVersion, level, auditID, stage,
	// requestURI, verb, userAgent, as the views render them.
	Kind, APIVersion, Level, AuditID, Stage, RequestURI, Verb, UserAgent string
	// Strs has a bit set for each string member that is present and not
	// null, in the order above (1<<0 kind ... 1<<7 userAgent); NullStrs
	// one for each that is present with a null value.
	Strs, NullStrs uint8

	// The JSON members, compact: user, impersonatedUser, sourceIPs,
	// objectRef, responseStatus, requestObject, responseObject,
	// annotations. A member present with a null value is "null".
	User, ImpersonatedUser, SourceIPs, ObjectRef, ResponseStatus []byte
	RequestObject, ResponseObject, Annotations                   []byte

	// Extra holds every other member as a JSON object whose keys are
	// already the RawEventData (PascalCase) keys; nil when there is none.
	Extra []byte
}

// String member bits of Record.Strs.
const (
	StrKind uint8 = 1 << iota
	StrAPIVersion
	StrLevel
	StrAuditID
	StrStage
	StrRequestURI
	StrVerb
	StrUserAgent
)

// Shred splits an event (from ParseEvent or Decode) into a Record.
func Shred(e *Event) Record {
	r := Record{Time: e.Time}
	var extra []byte
	_ = eachField(e.Raw, func(k string, v []byte) bool {
		switch k {
		case "kind":
			r.Kind = r.setStr(v, StrKind)
		case "apiVersion":
			r.APIVersion = r.setStr(v, StrAPIVersion)
		case "level":
			r.Level = r.setStr(v, StrLevel)
		case "auditID":
			r.AuditID = r.setStr(v, StrAuditID)
		case "stage":
			r.Stage = r.setStr(v, StrStage)
		case "requestURI":
			r.RequestURI = r.setStr(v, StrRequestURI)
		case "verb":
			r.Verb = r.setStr(v, StrVerb)
		case "userAgent":
			r.UserAgent = r.setStr(v, StrUserAgent)
		case "user":
			r.User = compact(v)
		case "impersonatedUser":
			r.ImpersonatedUser = compact(v)
		case "sourceIPs":
			r.SourceIPs = compact(v)
		case "objectRef":
			r.ObjectRef = compact(v)
		case "responseStatus":
			r.ResponseStatus = compact(v)
		case "requestObject":
			r.RequestObject = compact(v)
		case "responseObject":
			r.ResponseObject = compact(v)
		case "annotations":
			r.Annotations = compact(v)
		case "requestReceivedTimestamp":
			if jsonKind(v) == 's' {
				r.RequestReceived, _ = ParseTime(decodeString(v))
			}
			extra = appendExtra(extra, k, v)
		case "stageTimestamp":
			if jsonKind(v) == 's' {
				r.StageTimestamp, _ = ParseTime(decodeString(v))
			}
			extra = appendExtra(extra, k, v)
		default:
			extra = appendExtra(extra, k, v)
		}
		return true
	})
	if extra != nil {
		r.Extra = append(extra, '}')
	}
	return r
}

// setStr records a string member and returns its text as the views show it.
func (r *Record) setStr(v []byte, bit uint8) string {
	switch jsonKind(v) {
	case 'z':
		r.Strs &^= bit
		r.NullStrs |= bit
		return ""
	case 's':
		r.Strs |= bit
		return decodeString(v)
	}
	r.Strs |= bit
	return string(compact(v))
}

// appendExtra adds a member to the Extra object under its RawEventData key.
// The two timestamps are kept there verbatim too (as strings, the views
// need them as written; the typed columns only serve time arithmetic).
func appendExtra(b []byte, k string, v []byte) []byte {
	p, ok := pascalKey(k)
	if !ok {
		return b
	}
	if b == nil {
		b = append(b, '{')
	} else {
		b = append(b, ',')
	}
	kb, _ := json.Marshal(p)
	b = append(b, kb...)
	b = append(b, ':')
	return append(b, compact(v)...)
}

// compact returns v without insignificant whitespace; v itself when it
// has none.
func compact(v []byte) []byte {
	if !spaced(v) {
		return v
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return v
	}
	return b.Bytes()
}

// spaced reports whether valid JSON v has whitespace outside its strings.
func spaced(v []byte) bool {
	for i := 0; i < len(v); {
		j := bytes.IndexAny(v[i:], " \t\r\n\"")
		if j < 0 {
			return false
		}
		if i += j; v[i] != '"' {
			return true
		}
		i = skipString(v, i)
	}
	return false
}
