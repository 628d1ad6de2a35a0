// Package audit models Kubernetes API-server audit events
// (audit.k8s.io/v1 Event), decodes them from the shapes they are exported
// in, and maps them to the KQL tables KubeAudit, CloudAuditEvents and
// AKSAudit.
package audit

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Field names one hot field of an Event, for Event.Has.
type Field uint32

// Hot fields whose presence is tracked. A field is present when its key
// is in the event JSON with a non-null value.
const (
	FieldAuditID Field = 1 << iota
	FieldStage
	FieldVerb
	FieldUsername
	FieldUID
	FieldGroups
	FieldSourceIPs
	FieldUserAgent
	FieldResource
	FieldSubresource
	FieldNamespace
	FieldName
	FieldAPIGroup
	FieldAPIVersion
	FieldRequestURI
	FieldCode
	FieldLevel
)

// Event is one audit.k8s.io/v1 Event. Raw holds the event JSON exactly as
// it was read (for an Azure record carrying the event as a string, the
// unescaped string; for an AKSAudit or CloudAuditEvents row, the
// reconstructed event). The other fields are decoded from Raw, except
// Cluster, ClusterResourceID and, when the event has no timestamp, Time.
type Event struct {
	Raw []byte

	// Time is stageTimestamp, else requestReceivedTimestamp, else the
	// legacy top-level timestamp, else the envelope's time; zero if none.
	Time time.Time

	AuditID     string
	Stage       string
	Verb        string
	Level       string
	User        UserInfo
	SourceIPs   []string
	UserAgent   string
	ObjectRef   ObjectRef
	RequestURI  string
	Code        int64 // responseStatus.code, 0 when absent
	Annotations map[string]string

	// PrincipalOID is the Entra (Azure AD) object id of the user, when one
	// can be found: user.extra["oid"], else user.extra
	// ["http://schemas.microsoft.com/identity/claims/objectidentifier"],
	// else the username itself when it is a GUID (AKS uses the object id
	// as username for service principals and managed identities).
	PrincipalOID string

	Cluster           string // cluster name given at ingest
	ClusterResourceID string // Azure resource id (or EKS ARN, GKE name); may be empty

	Present Field // which hot fields are present
}

// UserInfo is the event's user (authentication.k8s.io/v1 UserInfo).
type UserInfo struct {
	Username string
	UID      string
	Groups   []string
	Extra    map[string][]string
}

// ObjectRef is the event's objectRef.
type ObjectRef struct {
	Resource, Subresource, Namespace, Name, APIGroup, APIVersion string
}

// Has reports whether the hot field f is present in the event.
func (e *Event) Has(f Field) bool { return e.Present&f != 0 }

// ErrNotEvent is returned (wrapped) for JSON that is not an audit Event.
var ErrNotEvent = errors.New("not a Kubernetes audit Event")

// ParseEvent decodes the hot fields of one audit Event given as JSON.
// raw is kept (not copied) as Event.Raw. Hot fields must have their
// documented JSON types (strings, string arrays, an integer code);
// anything else is an error, so that the indexed columns and the table
// views never disagree.
func ParseEvent(raw []byte) (Event, error) {
	if !validJSON(raw) {
		return Event{Raw: raw}, errors.New("invalid JSON")
	}
	return parseValid(raw)
}

// parseValid is ParseEvent for JSON known to be valid.
func parseValid(raw []byte) (Event, error) {
	e := Event{Raw: raw}
	if jsonKind(raw[skipWS(raw, 0):]) != 'o' {
		return e, fmt.Errorf("%w: not a JSON object", ErrNotEvent)
	}
	var ferr error
	var stageTS, recvTS, legacyTS string
	setStr := func(dst *string, f Field, name string, v []byte) {
		switch jsonKind(v) {
		case 's':
			*dst = decodeString(v)
			e.Present |= f
		case 'z':
			*dst = ""
			e.Present &^= f
		default:
			ferr = fmt.Errorf("field %s: not a string", name)
		}
	}
	err := eachField(raw, func(k string, v []byte) bool {
		switch k {
		case "kind":
			if jsonKind(v) != 's' || decodeString(v) != "Event" {
				ferr = fmt.Errorf("%w: kind is %.40s", ErrNotEvent, v)
			}
		case "auditID":
			setStr(&e.AuditID, FieldAuditID, k, v)
		case "stage":
			setStr(&e.Stage, FieldStage, k, v)
		case "verb":
			setStr(&e.Verb, FieldVerb, k, v)
		case "level":
			setStr(&e.Level, FieldLevel, k, v)
		case "userAgent":
			setStr(&e.UserAgent, FieldUserAgent, k, v)
		case "requestURI":
			setStr(&e.RequestURI, FieldRequestURI, k, v)
		case "stageTimestamp":
			stageTS = optString(v)
		case "requestReceivedTimestamp":
			recvTS = optString(v)
		case "timestamp":
			legacyTS = optString(v)
		case "sourceIPs":
			e.SourceIPs, ferr = stringArray(v, k)
			e.Present = setIf(e.Present, FieldSourceIPs, jsonKind(v) == 'a')
		case "user":
			ferr = e.parseUser(v)
		case "objectRef":
			ferr = e.parseObjectRef(v)
		case "responseStatus":
			ferr = e.parseStatus(v)
		case "annotations":
			e.Annotations = stringMap(v)
		}
		return ferr == nil
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return e, err
	}
	for _, s := range []string{stageTS, recvTS, legacyTS} {
		if t, ok := ParseTime(s); ok {
			e.Time = t
			break
		}
	}
	e.PrincipalOID = principalOID(&e.User)
	return e, nil
}

func setIf(p, f Field, on bool) Field {
	if on {
		return p | f
	}
	return p &^ f
}

func (e *Event) parseUser(v []byte) error {
	e.User = UserInfo{}
	e.Present &^= FieldUsername | FieldUID | FieldGroups
	switch jsonKind(v) {
	case 'z':
		return nil
	case 'o':
	default:
		return errors.New("field user: not an object")
	}
	var ferr error
	str := func(dst *string, f Field, name string, v []byte) {
		switch jsonKind(v) {
		case 's':
			*dst = decodeString(v)
			e.Present |= f
		case 'z':
			*dst = ""
			e.Present &^= f
		default:
			ferr = fmt.Errorf("field user.%s: not a string", name)
		}
	}
	_ = eachField(v, func(k string, v []byte) bool {
		switch k {
		case "username":
			str(&e.User.Username, FieldUsername, k, v)
		case "uid":
			str(&e.User.UID, FieldUID, k, v)
		case "groups":
			e.User.Groups, ferr = stringArray(v, "user.groups")
			e.Present = setIf(e.Present, FieldGroups, jsonKind(v) == 'a')
		case "extra":
			e.User.Extra = stringListMap(v)
		}
		return ferr == nil
	})
	return ferr
}

func (e *Event) parseObjectRef(v []byte) error {
	e.ObjectRef = ObjectRef{}
	all := FieldResource | FieldSubresource | FieldNamespace | FieldName | FieldAPIGroup | FieldAPIVersion
	e.Present &^= all
	switch jsonKind(v) {
	case 'z':
		return nil
	case 'o':
	default:
		return errors.New("field objectRef: not an object")
	}
	var ferr error
	o := &e.ObjectRef
	_ = eachField(v, func(k string, v []byte) bool {
		var dst *string
		var f Field
		switch k {
		case "resource":
			dst, f = &o.Resource, FieldResource
		case "subresource":
			dst, f = &o.Subresource, FieldSubresource
		case "namespace":
			dst, f = &o.Namespace, FieldNamespace
		case "name":
			dst, f = &o.Name, FieldName
		case "apiGroup":
			dst, f = &o.APIGroup, FieldAPIGroup
		case "apiVersion":
			dst, f = &o.APIVersion, FieldAPIVersion
		default:
			return true
		}
		switch jsonKind(v) {
		case 's':
			*dst = decodeString(v)
			e.Present |= f
		case 'z':
			*dst = ""
			e.Present &^= f
		default:
			ferr = fmt.Errorf("field objectRef.%s: not a string", k)
		}
		return ferr == nil
	})
	return ferr
}

func (e *Event) parseStatus(v []byte) error {
	e.Code = 0
	e.Present &^= FieldCode
	switch jsonKind(v) {
	case 'z':
		return nil
	case 'o':
	default:
		return errors.New("field responseStatus: not an object")
	}
	var ferr error
	_ = eachField(v, func(k string, v []byte) bool {
		if k != "code" {
			return true
		}
		switch jsonKind(v) {
		case 'z':
			e.Code = 0
			e.Present &^= FieldCode
		case 'n':
			n, ok := intLiteral(v)
			if !ok {
				ferr = errors.New("field responseStatus.code: not an integer")
				return false
			}
			e.Code = n
			e.Present |= FieldCode
		default:
			ferr = errors.New("field responseStatus.code: not a number")
		}
		return ferr == nil
	})
	return ferr
}

// intLiteral parses a JSON number literal that is integral in Kusto's
// sense (no fraction or exponent, fits in int64).
func intLiteral(v []byte) (int64, bool) {
	for _, c := range v {
		if c == '.' || c == 'e' || c == 'E' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}

func optString(v []byte) string {
	if jsonKind(v) == 's' {
		return decodeString(v)
	}
	return ""
}

func stringArray(v []byte, name string) ([]string, error) {
	switch jsonKind(v) {
	case 'z':
		return nil, nil
	case 'a':
	default:
		return nil, fmt.Errorf("field %s: not an array", name)
	}
	out := []string{}
	var bad bool
	_ = eachElem(v, func(el []byte) {
		if jsonKind(el) != 's' {
			bad = true
			return
		}
		out = append(out, decodeString(el))
	})
	if bad {
		return nil, fmt.Errorf("field %s: not an array of strings", name)
	}
	return out, nil
}

// stringMap decodes an object of strings, ignoring non-string members.
func stringMap(v []byte) map[string]string {
	if jsonKind(v) != 'o' {
		return nil
	}
	m := map[string]string{}
	_ = eachField(v, func(k string, v []byte) bool {
		if jsonKind(v) == 's' {
			m[k] = decodeString(v)
		} else {
			delete(m, k)
		}
		return true
	})
	return m
}

// stringListMap decodes user.extra, ignoring members that are not arrays
// of strings.
func stringListMap(v []byte) map[string][]string {
	if jsonKind(v) != 'o' {
		return nil
	}
	m := map[string][]string{}
	_ = eachField(v, func(k string, v []byte) bool {
		if l, err := stringArray(v, k); err == nil && l != nil {
			m[k] = l
		} else {
			delete(m, k)
		}
		return true
	})
	return m
}

// ObjectIDClaim is the claim under which Entra ID puts the object id.
const ObjectIDClaim = "http://schemas.microsoft.com/identity/claims/objectidentifier"

func principalOID(u *UserInfo) string {
	for _, k := range []string{"oid", ObjectIDClaim} {
		if l := u.Extra[k]; len(l) > 0 && l[0] != "" {
			return l[0]
		}
	}
	if isGUID(u.Username) {
		return u.Username
	}
	return ""
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// minTime and maxTime bound the times that fit in int64 Unix nanoseconds.
var (
	minTime = time.Unix(0, -1<<63).UTC()
	maxTime = time.Unix(0, 1<<63-1).UTC()
)

// ParseTime parses an RFC 3339 timestamp (any fractional precision). Times
// that do not fit in int64 Unix nanoseconds (or are its minimum, which
// the store uses for "no time") are rejected, so every valid
// time has a storable form. The result is UTC.
func ParseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	if !t.After(minTime) || t.After(maxTime) {
		return time.Time{}, false
	}
	return t.UTC(), true
}
