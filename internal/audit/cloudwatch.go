package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// This file reads EKS audit logs exported from CloudWatch Logs, where each
// log event's message is the audit Event as a JSON string:
//
//   - a subscription (Kinesis, Firehose, Lambda) payload:
//     {"messageType":"DATA_MESSAGE","owner":"123456789012",
//     "logGroup":"/aws/eks/NAME/cluster","logEvents":[{"id","timestamp","message"}]}
//   - the output of aws logs filter-log-events or get-log-events:
//     {"events":[{"timestamp","message","logStreamName"}]}
//   - a Logs Insights result row: {"@timestamp","@message","@log"}
//   - an export to S3: lines "2024-01-02T03:04:05.000Z {...event...}"
//
// The log event's timestamp (milliseconds since the epoch) is the
// envelope time; the log group names the cluster.

// cloudWatch handles a subscription payload or a log-events listing.
func (d *decoder) cloudWatch(v []byte, s shape, line int) {
	var env struct {
		MessageType string `json:"messageType"`
		Owner       string `json:"owner"`
		LogGroup    string `json:"logGroup"`
	}
	_ = json.Unmarshal(v, &env)
	if env.MessageType != "" && env.MessageType != "DATA_MESSAGE" {
		d.stats.problem(line, true, "CloudWatch %s is not a log payload", env.MessageType)
		return
	}
	arr := s.logEvents
	if arr == nil {
		arr = s.cwEvents
	}
	if jsonKind(arr) != 'a' {
		d.stats.problem(line, false, "CloudWatch log events are not an array")
		return
	}
	resID := eksResourceID(env.Owner, env.LogGroup)
	_ = eachElem(arr, func(el []byte) {
		if d.err != nil {
			return
		}
		var le struct {
			Timestamp *float64 `json:"timestamp"`
			Message   *string  `json:"message"`
		}
		if jsonKind(el) != 'o' || json.Unmarshal(el, &le) != nil || le.Message == nil {
			d.stats.problem(line, false, "CloudWatch log event without a string message")
			return
		}
		var t time.Time
		if le.Timestamp != nil {
			t = msTime(*le.Timestamp)
		}
		d.cloudWatchMessage([]byte(*le.Message), line, resID, t)
	})
}

// cloudWatchRow handles a Logs Insights row.
func (d *decoder) cloudWatchRow(v []byte, s shape, line int) {
	if jsonKind(s.cwMessage) != 's' {
		d.stats.problem(line, false, "CloudWatch @message is not a string")
		return
	}
	var row struct {
		Timestamp string `json:"@timestamp"`
		Log       string `json:"@log"`
	}
	_ = json.Unmarshal(v, &row)
	t, _ := parseEnvelopeTime(row.Timestamp)
	owner, group, _ := strings.Cut(row.Log, ":")
	d.cloudWatchMessage([]byte(decodeString(s.cwMessage)), line, eksResourceID(owner, group), t)
}

// cloudWatchMessage decodes one log event's message.
func (d *decoder) cloudWatchMessage(msg []byte, line int, resID string, t time.Time) {
	msg = bytes.TrimSpace(msg)
	if !validJSON(msg) || jsonKind(msg) != 'o' {
		d.stats.problem(line, false, "CloudWatch message is not a JSON object")
		return
	}
	if d.opts.ClusterResourceID == "" && resID != "" {
		saved := d.opts.ClusterResourceID
		d.opts.ClusterResourceID = resID
		defer func() { d.opts.ClusterResourceID = saved }()
	}
	savedT := d.lineTime
	if !t.IsZero() {
		d.lineTime = t
	}
	d.object(msg, line)
	d.lineTime = savedT
}

// eksResourceID builds an EKS cluster ARN from the account and the log
// group /aws/eks/NAME/cluster; "" when the group is not an EKS one.
func eksResourceID(owner, group string) string {
	rest, ok := strings.CutPrefix(group, "/aws/eks/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	if name == "" {
		return ""
	}
	return "arn:aws:eks::" + owner + ":cluster/" + name
}

func msTime(ms float64) time.Time {
	if ms <= 0 || ms > 1e15 {
		return time.Time{}
	}
	t, _ := ParseTime(time.UnixMilli(int64(ms)).UTC().Format(time.RFC3339Nano))
	return t
}

// timePrefixed splits a line "TIME {json}" (a CloudWatch export to S3)
// into its time and JSON; ok is false for any other line.
func timePrefixed(l []byte) (time.Time, []byte, bool) {
	if len(l) == 0 || l[0] < '0' || l[0] > '9' {
		return time.Time{}, nil, false
	}
	i := bytes.IndexByte(l, ' ')
	if i < 0 || i > 40 {
		return time.Time{}, nil, false
	}
	t, ok := ParseTime(string(l[:i]))
	if !ok {
		return time.Time{}, nil, false
	}
	rest := bytes.TrimSpace(l[i+1:])
	if len(rest) == 0 || rest[0] != '{' {
		return time.Time{}, nil, false
	}
	return t, rest, true
}
