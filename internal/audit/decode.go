package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Options tag the events of one input.
type Options struct {
	// Cluster names the cluster. When empty it is derived from the
	// cluster resource id (AKS, EKS or GKE form), if there is one.
	Cluster string
	// ClusterResourceID is the cluster's Azure resource id (or EKS ARN, or
	// GKE resource name). When empty, an Azure record's resourceId, an
	// AKSAudit row's _ResourceId or a CloudAuditEvents row's
	// AzureResourceId is used.
	ClusterResourceID string
	// AssumeTime is the time of events that carry none: no
	// stageTimestamp, requestReceivedTimestamp or legacy timestamp, and
	// no envelope time. When zero, such events are rejected (a store
	// keeps events by time, and one at year 1 is lost to every time
	// filter). Test fixtures written without times set it.
	AssumeTime time.Time
}

// Problem is one input element that did not yield an event.
type Problem struct {
	Line    int    // 1-based line where the element starts
	Reason  string //
	Skipped bool   // recognised but unsupported (e.g. a non-Kubernetes Cloud Audit Log entry), not malformed
}

// MaxProblems bounds Stats.Problems; the counts go on past it.
const MaxProblems = 100

// Stats describes one decoded input.
type Stats struct {
	Events   int       // events emitted
	Rejected int       // malformed or unrecognised elements
	Skipped  int       // recognised, unsupported elements
	Problems []Problem // the first MaxProblems rejections and skips
}

func (s *Stats) problem(line int, skipped bool, format string, args ...any) {
	if skipped {
		s.Skipped++
	} else {
		s.Rejected++
	}
	if len(s.Problems) < MaxProblems {
		s.Problems = append(s.Problems, Problem{Line: line, Reason: fmt.Sprintf(format, args...), Skipped: skipped})
	}
}

// MaxValueSize bounds one JSON value (line, or element of a document).
const MaxValueSize = 64 << 20

// Decode reads audit events from r and calls emit for each, in input order.
// It detects the input's shape:
//
//   - JSON lines, each an audit.k8s.io/v1 Event, an EventList, an Azure
//     diagnostic record (category kube-audit or kube-audit-admin, event in
//     properties.log as a JSON string or object), a {"records": [...]}
//     batch of such records, a row in AKSAudit or CloudAuditEvents shape,
//     a GKE Cloud Audit Log entry (protoPayload, see gke.go), or an EKS
//     CloudWatch Logs export (see cloudwatch.go), possibly with the
//     time in front of the JSON ("2024-01-02T03:04:05Z {...}");
//   - or a JSON document (possibly pretty-printed, possibly several
//     concatenated): any of the above, or a JSON array of them. A
//     top-level "records" or "items" array is streamed element by element.
//
// The input is JSON lines when its first non-blank line, or failing that
// its second, is a complete JSON object. In JSON lines a malformed line
// is counted and reported; in a document a malformed element is, and the
// scan resumes at the next line that starts with '{' or '['.
//
// An event's time is its stageTimestamp, else requestReceivedTimestamp,
// else its envelope's time, else Options.AssumeTime; an event with none
// is rejected.
//
// Decode returns an error only when reading r fails or emit returns one.
func Decode(r io.Reader, opts Options, emit func(Event) error) (Stats, error) {
	d := &decoder{opts: opts, emit: emit, br: bufio.NewReaderSize(r, 1<<20)}
	err := d.run()
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return d.stats, err
}

// DecodeAll is Decode collecting the events.
func DecodeAll(r io.Reader, opts Options) ([]Event, Stats, error) {
	var evs []Event
	st, err := Decode(r, opts, func(e Event) error { evs = append(evs, e); return nil })
	return evs, st, err
}

type decoder struct {
	opts  Options
	emit  func(Event) error
	br    *bufio.Reader
	line  int // lines consumed so far
	stats Stats
	arena []byte
	err   error // from emit
	lbuf  []byte
	// lineTime is the time a line's prefix gave (CloudWatch export to
	// S3: "2024-01-02T03:04:05.000Z {...}"), while that line is decoded.
	lineTime time.Time
}

// own copies b into an arena so that many small events share allocations.
func (d *decoder) own(b []byte) []byte {
	if len(b) > 64<<10 {
		return append([]byte(nil), b...)
	}
	if cap(d.arena)-len(d.arena) < len(b) {
		d.arena = make([]byte, 0, 1<<20)
	}
	n := len(d.arena)
	d.arena = append(d.arena, b...)
	return d.arena[n : n+len(b) : n+len(b)]
}

// readLine returns the next line without its newline; long lines are
// capped at MaxValueSize (the rest is dropped and tooLong set).
func (d *decoder) readLine() (line []byte, tooLong bool, err error) {
	d.lbuf = d.lbuf[:0]
	for {
		frag, e := d.br.ReadSlice('\n')
		if len(d.lbuf)+len(frag) <= MaxValueSize {
			if e == nil && len(d.lbuf) == 0 {
				d.line++
				return frag[:len(frag)-1], false, nil
			}
			d.lbuf = append(d.lbuf, frag...)
		} else {
			tooLong = true
		}
		switch {
		case e == nil:
			d.line++
			return d.lbuf[:len(d.lbuf)-1], tooLong, nil
		case errors.Is(e, bufio.ErrBufferFull):
			continue
		case errors.Is(e, io.EOF):
			if len(d.lbuf) == 0 && !tooLong {
				return nil, false, io.EOF
			}
			d.line++
			return d.lbuf, tooLong, nil
		default:
			return nil, false, e
		}
	}
}

func (d *decoder) run() error {
	if d.looksLikeLines() {
		return d.parallelLines()
	}
	return d.document()
}

// looksLikeLines peeks (without consuming) at the first two non-blank
// lines: the input is JSON lines if either is a complete JSON object.
func (d *decoder) looksLikeLines() bool {
	data, err := d.br.Peek(d.br.Size())
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return false
	}
	atEOF := errors.Is(err, io.EOF)
	for seen := 0; seen < 2 && len(data) > 0; {
		i := bytes.IndexByte(data, '\n')
		if i < 0 && !atEOF {
			return false // a first line longer than the buffer: a document
		}
		line := data
		if i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		t := bytes.TrimSpace(line)
		if len(t) == 0 {
			continue
		}
		seen++
		if t[0] == '{' && validJSON(t) {
			return true
		}
		if _, rest, ok := timePrefixed(t); ok && validJSON(rest) {
			return true
		}
	}
	return false
}

// oneLineOwned decodes one line of JSON lines; l is not reused, so the
// events may keep it.
func (d *decoder) oneLineOwned(l []byte, no int, tooLong bool) {
	if tooLong {
		d.stats.problem(no, false, "line longer than %d bytes", MaxValueSize)
		return
	}
	t := bytes.TrimSpace(l)
	if len(t) == 0 {
		return
	}
	if ts, rest, ok := timePrefixed(t); ok {
		d.lineTime = ts
		d.value(rest, no, false)
		d.lineTime = time.Time{}
		return
	}
	d.value(t, no, false)
}

// value handles one complete JSON value. transient says v is a reused
// buffer whose bytes must be copied before being kept.
func (d *decoder) value(v []byte, line int, transient bool) {
	if !validJSON(v) {
		d.stats.problem(line, false, "invalid JSON: %v", syntaxErr(v))
		return
	}
	if transient {
		v = d.own(v)
	}
	switch jsonKind(v) {
	case 'a':
		_ = eachElem(v, func(el []byte) {
			if d.err == nil {
				d.object(el, line)
			}
		})
	case 'o':
		d.object(v, line)
	default:
		d.stats.problem(line, false, "not a JSON object: %.20s", v)
	}
}

func syntaxErr(v []byte) error {
	var m json.RawMessage
	err := json.Unmarshal(v, &m)
	if err == nil {
		err = errors.New("malformed")
	}
	return err
}
