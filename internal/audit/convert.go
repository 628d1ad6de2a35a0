package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
)

// This file turns rows exported from Azure Monitor (AKSAudit) and from
// Defender XDR (CloudAuditEvents) back into audit Events.

// pascalKeys maps audit Event keys to the RawEventData keys of
// CloudAuditEvents. Other keys get their first letter upper-cased.
var pascalKeys = map[string]string{
	"kind": "Kind", "apiVersion": "ApiVersion", "level": "Level", "auditID": "AuditId",
	"stage": "Stage", "requestURI": "RequestURI", "verb": "Verb", "user": "User",
	"impersonatedUser": "ImpersonatedUser", "sourceIPs": "SourceIPs", "userAgent": "UserAgent",
	"objectRef": "ObjectRef", "responseStatus": "ResponseStatus", "requestObject": "RequestObject",
	"responseObject": "ResponseObject", "requestReceivedTimestamp": "RequestReceivedTimestamp",
	"stageTimestamp": "StageTimestamp", "annotations": "Annotations",
}

// Keys that RawEventData adds to the event.
const (
	rawResourceIDKey = "AzureResourceId"
	rawOIDKey        = "principaloid"
)

var camelKeys = func() map[string]string {
	m := map[string]string{}
	for k, v := range pascalKeys {
		m[v] = k
	}
	return m
}()

// pascalKey returns the RawEventData key for an event key, and false when
// the key must be left out because it would collide with a reserved one.
func pascalKey(k string) (string, bool) {
	if p, ok := pascalKeys[k]; ok {
		return p, true
	}
	p := k
	if p != "" && 'a' <= p[0] && p[0] <= 'z' {
		p = string(p[0]-'a'+'A') + p[1:]
	}
	if _, reserved := camelKeys[p]; reserved || p == rawResourceIDKey || p == rawOIDKey {
		return "", false
	}
	return p, true
}

func camelKey(k string) string {
	if c, ok := camelKeys[k]; ok {
		return c
	}
	if k != "" && 'A' <= k[0] && k[0] <= 'Z' {
		return string(k[0]-'A'+'a') + k[1:]
	}
	return k
}

type converted struct {
	raw        []byte
	resourceID string
	cluster    string
	time       time.Time
}

// eventWriter builds event JSON from raw member values. The first value
// given for a key wins; kind and apiVersion come first and default to
// "Event" and "audit.k8s.io/v1" when defaults is set.
type eventWriter struct {
	keys     []string
	vals     map[string][]byte
	defaults bool
}

func newEventWriter(defaults bool) *eventWriter {
	return &eventWriter{vals: map[string][]byte{}, defaults: defaults}
}

func (w *eventWriter) member(k string, raw []byte) {
	if _, seen := w.vals[k]; seen {
		return
	}
	w.keys = append(w.keys, k)
	w.vals[k] = raw
}

func (w *eventWriter) done() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	write := func(k string, v []byte) {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		kq, _ := json.Marshal(k)
		b.Write(kq)
		b.WriteByte(':')
		b.Write(v)
	}
	for _, kd := range [][2]string{{"kind", `"Event"`}, {"apiVersion", `"audit.k8s.io/v1"`}} {
		if v, ok := w.vals[kd[0]]; ok {
			write(kd[0], v)
		} else if w.defaults {
			write(kd[0], []byte(kd[1]))
		}
	}
	for _, k := range w.keys {
		if k != "kind" && k != "apiVersion" {
			write(k, w.vals[k])
		}
	}
	b.WriteByte('}')
	out := b.Bytes()
	if !validJSON(out) {
		return nil, errors.New("converted event is not valid JSON")
	}
	return out, nil
}

// jsonInString returns the JSON object or array a string value holds, or
// the value itself.
func jsonInString(v []byte) []byte {
	if jsonKind(v) != 's' {
		return v
	}
	s := []byte(decodeString(v))
	t := bytes.TrimSpace(s)
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') && validJSON(t) {
		return t
	}
	return v
}

func emptyValue(v []byte) bool {
	return len(v) == 0 || jsonKind(v) == 'z' || string(v) == `""`
}

// fromCloudAuditEvents converts a CloudAuditEvents row.
func fromCloudAuditEvents(row []byte) (converted, error) {
	var c converted
	var red, addl []byte
	var ts string
	_ = eachField(row, func(k string, v []byte) bool {
		switch k {
		case "RawEventData":
			red = jsonInString(v)
		case "AdditionalFields":
			addl = jsonInString(v)
		case "Timestamp":
			ts = optString(v)
		case "AzureResourceId", "ResourceId":
			if c.resourceID == "" {
				c.resourceID = optString(v)
			}
		case "Cluster":
			c.cluster = optString(v)
		}
		return true
	})
	if jsonKind(red) != 'o' {
		return c, errors.New("CloudAuditEvents row: RawEventData is not an object")
	}
	if c.cluster == "" && jsonKind(addl) == 'o' {
		_ = eachField(addl, func(k string, v []byte) bool {
			if k == "Cluster" {
				c.cluster = optString(v)
			}
			return true
		})
	}
	c.time, _ = ParseTime(ts)
	w := newEventWriter(false)
	_ = eachField(red, func(k string, v []byte) bool {
		switch k {
		case rawResourceIDKey:
			if c.resourceID == "" {
				c.resourceID = optString(v)
			}
		case rawOIDKey:
		default:
			w.member(camelKey(k), v)
		}
		return true
	})
	var err error
	c.raw, err = w.done()
	return c, err
}

// aksColumns maps AKSAudit columns to event keys.
var aksColumns = map[string]string{
	"AuditId": "auditID", "Stage": "stage", "Verb": "verb", "Level": "level",
	"RequestUri": "requestURI", "UserAgent": "userAgent", "User": "user",
	"SourceIps": "sourceIPs", "ObjectRef": "objectRef", "ResponseStatus": "responseStatus",
	"RequestObject": "requestObject", "ResponseObject": "responseObject",
	"Annotations": "annotations", "ImpersonatedUser": "impersonatedUser",
	"RequestReceivedTime": "requestReceivedTimestamp", "StageReceivedTime": "stageTimestamp",
}

// fromAKSAudit converts an AKSAudit row. Dynamic columns may be objects or
// JSON text; empty values are left out.
func fromAKSAudit(row []byte) (converted, error) {
	var c converted
	var tg string
	w := newEventWriter(true)
	_ = eachField(row, func(k string, v []byte) bool {
		switch k {
		case "TimeGenerated":
			tg = optString(v)
		case "_ResourceId":
			c.resourceID = optString(v)
		case "Cluster":
			c.cluster = optString(v)
		default:
			if ek, ok := aksColumns[k]; ok && !emptyValue(v) {
				w.member(ek, jsonInString(v))
			}
		}
		return true
	})
	c.time, _ = ParseTime(tg)
	var err error
	c.raw, err = w.done()
	return c, err
}
