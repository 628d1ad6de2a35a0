package audit

import (
	"errors"
	"strings"
	"time"
)

// This file detects the shape of one JSON object and turns it into
// events: an Event, an EventList, a records batch, an Azure diagnostic
// record, or an AKSAudit or CloudAuditEvents row.

// shape holds what detection needs from an object's top-level members.
type shape struct {
	kind, category       string
	kindSet, kindString  bool
	records, items       []byte
	properties, proto    []byte
	rawEventData         []byte
	logEvents, cwEvents  []byte // CloudWatch subscription logEvents, filter/get-log-events events
	cwMessage            []byte // a CloudWatch Logs Insights row's @message
	aksColumns, evFields bool
}

var eventKeys = map[string]bool{
	"auditID": true, "verb": true, "stage": true, "requestURI": true, "objectRef": true,
	"user": true, "sourceIPs": true, "responseStatus": true, "requestReceivedTimestamp": true,
	"stageTimestamp": true, "level": true, "userAgent": true, "annotations": true,
}

var aksKeys = map[string]bool{
	"AuditId": true, "RequestUri": true, "Verb": true, "ObjectRef": true, "SourceIps": true,
	"StageReceivedTime": true, "RequestReceivedTime": true,
}

// object detects the shape of one JSON object (valid JSON) and emits the
// events it holds.
func (d *decoder) object(v []byte, line int) {
	var s shape
	_ = eachField(v, func(k string, val []byte) bool {
		switch k {
		case "kind":
			s.kindSet, s.kindString = true, jsonKind(val) == 's'
			s.kind = optString(val)
		case "records":
			s.records = val
		case "items":
			s.items = val
		case "category":
			s.category = optString(val)
		case "properties":
			s.properties = val
		case "protoPayload":
			s.proto = val
		case "RawEventData":
			s.rawEventData = val
		case "logEvents":
			s.logEvents = val
		case "events":
			s.cwEvents = val
		case "@message":
			s.cwMessage = val
		case "Type":
			if optString(val) == "AKSAudit" || optString(val) == "AKSAuditAdmin" {
				s.aksColumns = true
			}
		default:
			s.evFields = s.evFields || eventKeys[k]
			s.aksColumns = s.aksColumns || aksKeys[k]
		}
		return true
	})
	switch {
	case s.kind == "EventList" || (!s.kindSet && s.items != nil && jsonKind(s.items) == 'a'):
		d.list(s.items, line, "items")
	case s.records != nil:
		d.list(s.records, line, "records")
	case s.proto != nil:
		d.gke(v, line)
	case s.logEvents != nil || (s.cwEvents != nil && !s.evFields):
		d.cloudWatch(v, s, line)
	case s.cwMessage != nil && !s.evFields:
		d.cloudWatchRow(v, s, line)
	case s.category != "" || s.properties != nil:
		d.azureRecord(v, s, line)
	case s.rawEventData != nil:
		d.converted(v, line, fromCloudAuditEvents)
	case s.aksColumns && !s.evFields:
		d.converted(v, line, fromAKSAudit)
	case s.kind == "Event" || (!s.kindSet && s.evFields):
		d.event(v, line, d.opts.ClusterResourceID, time.Time{})
	case s.kindSet:
		d.stats.problem(line, false, "%s: data not recognized as a k8s audit event", kindText(v))
	default:
		d.stats.problem(line, false, "unrecognized JSON object (no audit Event fields)")
	}
}

func kindText(v []byte) string {
	var k string
	_ = eachField(v, func(key string, val []byte) bool {
		if key == "kind" {
			k = "kind " + string(val)
			if len(k) > 60 {
				k = k[:60]
			}
		}
		return true
	})
	return k
}

func (d *decoder) list(arr []byte, line int, what string) {
	if jsonKind(arr) != 'a' {
		d.stats.problem(line, false, "%s is not an array", what)
		return
	}
	_ = eachElem(arr, func(el []byte) {
		if d.err != nil {
			return
		}
		if jsonKind(el) != 'o' {
			d.stats.problem(line, false, "%s element is not an object", what)
			return
		}
		d.object(el, line)
	})
}

// event parses one event and emits it.
func (d *decoder) event(raw []byte, line int, resourceID string, envTime time.Time) {
	e, err := parseValid(raw)
	if err != nil {
		d.stats.problem(line, false, "%v", err)
		return
	}
	if e.Time.IsZero() {
		e.Time = envTime
	}
	if e.Time.IsZero() {
		e.Time = d.lineTime
	}
	if e.Time.IsZero() {
		e.Time = d.opts.AssumeTime
	}
	if e.Time.IsZero() {
		d.stats.problem(line, false, "event %s has no time: no stageTimestamp, requestReceivedTimestamp or envelope time", orText(e.AuditID, "without auditID"))
		return
	}
	if d.opts.ClusterResourceID != "" {
		resourceID = d.opts.ClusterResourceID
	}
	e.ClusterResourceID = resourceID
	e.Cluster = d.opts.Cluster
	if e.Cluster == "" {
		e.Cluster = ClusterName(resourceID)
	}
	d.stats.Events++
	if err := d.emit(e); err != nil {
		d.err = err
	}
}

// azureRecord handles an Azure diagnostic-log record.
func (d *decoder) azureRecord(v []byte, s shape, line int) {
	if s.category != "kube-audit" && s.category != "kube-audit-admin" {
		d.stats.problem(line, true, "Azure record category %q is not kube-audit", s.category)
		return
	}
	var logv []byte
	if jsonKind(s.properties) == 'o' {
		_ = eachField(s.properties, func(k string, val []byte) bool {
			if k == "log" {
				logv = val
			}
			return true
		})
	}
	var resID, tm string
	_ = eachField(v, func(k string, val []byte) bool {
		switch k {
		case "resourceId":
			resID = optString(val)
		case "time":
			tm = optString(val)
		}
		return true
	})
	envTime, _ := ParseTime(tm)
	switch jsonKind(logv) {
	case 's':
		raw := []byte(decodeString(logv))
		if !validJSON(raw) {
			d.stats.problem(line, false, "properties.log: invalid JSON: %v", syntaxErr(raw))
			return
		}
		d.event(raw, line, resID, envTime)
	case 'o':
		d.event(logv, line, resID, envTime)
	default:
		d.stats.problem(line, false, "Azure kube-audit record without properties.log")
	}
}

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// gke handles a Cloud Audit Log entry.
func (d *decoder) gke(v []byte, line int) {
	c, err := fromGKE(v)
	if errors.Is(err, errNotKubernetes) {
		d.stats.problem(line, true, "%v", err)
		return
	}
	d.emitConverted(c, err, line)
}

func (d *decoder) converted(v []byte, line int, conv func([]byte) (converted, error)) {
	c, err := conv(v)
	d.emitConverted(c, err, line)
}

func (d *decoder) emitConverted(c converted, err error, line int) {
	if err != nil {
		d.stats.problem(line, false, "%v", err)
		return
	}
	saved := d.opts.Cluster
	if saved == "" {
		d.opts.Cluster = c.cluster
	}
	d.event(c.raw, line, c.resourceID, c.time)
	d.opts.Cluster = saved
}

// ClusterName derives a cluster name from a cluster resource id: the
// segment after managedClusters/ or connectedClusters/ (Azure),
// cluster/ (EKS ARN) or clusters/ (GKE). It returns "" otherwise.
func ClusterName(resourceID string) string {
	low := asciiLower(resourceID)
	for _, marker := range []string{"/managedclusters/", "/connectedclusters/", ":cluster/", "/clusters/"} {
		if i := strings.LastIndex(low, marker); i >= 0 {
			rest := resourceID[i+len(marker):]
			if j := strings.IndexByte(rest, '/'); j >= 0 {
				rest = rest[:j]
			}
			return rest
		}
	}
	return ""
}

// asciiLower lowers ASCII letters only, keeping byte offsets (and matching
// SQLite's LIKE, which folds ASCII only).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
