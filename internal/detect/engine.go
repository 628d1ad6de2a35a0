package detect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/kql/eval"
	"github.com/kdfir/kdfir/internal/kql/table"
)

// Sink receives the alerts rules raise (the service stores them and runs
// their playbooks).
type Sink interface {
	Raise(ctx context.Context, a *alert.Alert) error
}

// State persists what scheduled rules need across restarts.
type State interface {
	// LastRun is the end of the rule's last completed window (zero if none).
	LastRun(ctx context.Context, rule string) (time.Time, error)
	SetLastRun(ctx context.Context, rule string, end time.Time) error
	// Seen reports which of the report ids already raised an alert for
	// the rule.
	Seen(ctx context.Context, rule string, reportIDs []string) (map[string]bool, error)
}

// WindowSource returns the tables restricted to events in [since, until).
type WindowSource func(since, until time.Time) table.Source

// Engine runs rules.
type Engine struct {
	Rules  []*Rule
	Sink   Sink
	State  State
	Window WindowSource
	Log    *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu         sync.Mutex
	suppressed map[string]time.Time // rule + key → until
	running    map[string]*sync.Mutex
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.Default()
}

// OnBatch runs every NRT rule on a batch of newly stored events, and only
// on those, so ingest cost grows with the batch and not with the store.
// It returns the alerts raised.
func (e *Engine) OnBatch(ctx context.Context, events []audit.Event) ([]*alert.Alert, error) {
	if len(events) == 0 {
		return nil, nil
	}
	src := audit.NewBatchSource(events)
	// A batch from a single cluster names it on alerts whose rule does
	// not project a Cluster column.
	cluster := events[0].Cluster
	for _, ev := range events {
		if ev.Cluster != cluster {
			cluster = ""
			break
		}
	}
	var raised []*alert.Alert
	for _, r := range e.Rules {
		if !r.NRT || r.Disabled {
			continue
		}
		alerts, err := e.Evaluate(ctx, r, src)
		if err != nil {
			e.log().Error("nrt rule failed", "rule", r.ID, "err", err)
			continue
		}
		for _, a := range alerts {
			if a.Cluster == "" && cluster != "" {
				a.Cluster = cluster
				for i := range a.Entities {
					if t := a.Entities[i].Type; a.Entities[i].Cluster == "" && t != alert.EntityUser && t != alert.EntityIP {
						a.Entities[i].Cluster = cluster
					}
				}
			}
			if err := e.Sink.Raise(ctx, a); err != nil {
				return raised, fmt.Errorf("raise alert for rule %s: %w", r.ID, err)
			}
			raised = append(raised, a)
		}
	}
	return raised, nil
}

// Evaluate runs one rule on a source and returns the alerts it would raise,
// after de-duplication by report id, suppression and max_alerts. It raises
// nothing itself.
func (e *Engine) Evaluate(ctx context.Context, r *Rule, src table.Source) ([]*alert.Alert, error) {
	alerts, _, err := e.EvaluateDetail(ctx, r, src)
	return alerts, err
}

// EvaluateDetail is Evaluate that also returns the rows the rule's
// exceptions suppressed (one per report id and exception).
func (e *Engine) EvaluateDetail(ctx context.Context, r *Rule, src table.Source) ([]*alert.Alert, []Excepted, error) {
	res, err := eval.Run(ctx, src, r.query, eval.Options{Now: e.now(), MaxRows: eval.DefaultMaxRows})
	if err != nil {
		return nil, nil, err
	}
	idx := map[string]int{}
	for i, c := range res.Columns {
		idx[c.Name] = i
	}
	get := func(row []any, col string) string {
		if col == "" {
			return ""
		}
		i, ok := idx[col]
		if !ok || row[i] == nil {
			return ""
		}
		return display(row[i])
	}
	// Events without an audit id (trimmed exports) get one derived from
	// the row, so they still alert, once.
	ids := make([]string, len(res.Rows))
	for i, row := range res.Rows {
		ids[i] = get(row, r.idCol)
		if ids[i] == "" {
			b, _ := json.Marshal(row)
			sum := sha256.Sum256(b)
			ids[i] = "row-" + hex.EncodeToString(sum[:12])
		}
	}
	seen := map[string]bool{}
	if e.State != nil && len(ids) > 0 {
		if seen, err = e.State.Seen(ctx, r.ID, ids); err != nil {
			return nil, nil, err
		}
	}
	now := e.now()
	var out []*alert.Alert
	var excepted []Excepted
	exceptedSeen := map[string]bool{}
	for i, row := range res.Rows {
		id := ids[i]
		if seen[id] {
			continue
		}
		if x := r.exceptionFor(row, get, idx); x != nil {
			if k := id + "\x00" + x.Name; !exceptedSeen[k] {
				exceptedSeen[k] = true
				excepted = append(excepted, Excepted{Rule: r.ID, Exception: x.Name, ReportID: id, Fields: rowFields(row, res.Columns)})
			}
			continue
		}
		seen[id] = true // the two stages of one long-running request share an id
		if r.Suppress != nil {
			parts := make([]string, len(r.Suppress.By))
			for i, c := range r.Suppress.By {
				parts[i] = get(row, c)
			}
			key := r.ID + "\x00" + strings.Join(parts, "\x00")
			e.mu.Lock()
			if e.suppressed == nil {
				e.suppressed = map[string]time.Time{}
			}
			until, hit := e.suppressed[key]
			if hit && now.Before(until) {
				e.mu.Unlock()
				continue
			}
			e.suppressed[key] = now.Add(time.Duration(r.Suppress.Window))
			e.mu.Unlock()
		}
		if r.MaxAlerts > 0 && len(out) >= r.MaxAlerts {
			e.log().Warn("rule hit max_alerts; dropping the rest of this run", "rule", r.ID, "max_alerts", r.MaxAlerts)
			break
		}
		out = append(out, r.alertFor(id, row, res.Columns, get))
	}
	return out, excepted, nil
}

// exceptionFor returns the first exception that matches the row, or nil.
func (r *Rule) exceptionFor(row []any, get func([]any, string) string, idx map[string]int) *Exception {
	for i := range r.Exceptions {
		x := &r.Exceptions[i]
		if x.matches(func(c string) string { return get(row, c) }, func(c string) any {
			if j, ok := idx[c]; ok {
				return row[j]
			}
			return nil
		}) {
			return x
		}
	}
	return nil
}

// rowFields is a result row by column name, without the exception columns.
func rowFields(row []any, cols []table.Column) map[string]any {
	fields := map[string]any{}
	for i, c := range cols {
		if row[i] != nil && !strings.HasPrefix(c.Name, exceptionColumn) {
			fields[c.Name] = row[i]
		}
	}
	return fields
}

func (r *Rule) alertFor(id string, row []any, cols []table.Column, get func([]any, string) string) *alert.Alert {
	fields := rowFields(row, cols)
	render := func(tpl, def string) string {
		if tpl == "" {
			return def
		}
		return placeholderRE.ReplaceAllStringFunc(tpl, func(m string) string {
			return get(row, placeholderRE.FindStringSubmatch(m)[1])
		})
	}
	a := &alert.Alert{
		Source:      alert.SourceKdfir,
		SourceID:    r.ID + ":" + id,
		Title:       render(r.Alert.Title, r.Title),
		AlertType:   r.ID,
		Rule:        r.ID,
		Severity:    r.Severity,
		Description: render(r.Alert.Description, r.Description),
		ReportIDs:   []string{id},
		Fields:      fields,
	}
	if t, ok := row[indexOf(cols, r.timeCol)].(time.Time); ok {
		a.Time = t
	}
	// A Severity column raises (never lowers) the rule's severity for the
	// rows that deserve it, as the exec rule does for known-bad commands.
	if sev := get(row, "Severity"); severityRank[sev] > severityRank[a.Severity] {
		a.Severity = sev
	}
	cluster := get(row, "Cluster")
	for _, m := range r.Entities {
		ent := alert.Entity{Type: m.Type, Name: get(row, m.Name), Namespace: get(row, m.Namespace), Address: get(row, m.Address)}
		if m.Type == alert.EntityIP {
			ent.Address = get(row, m.Address)
			if ent.Address == "" {
				ent.Address = ent.Name
				ent.Name = ""
			}
		}
		ent.Cluster = get(row, m.Cluster)
		if ent.Cluster == "" && m.Type != alert.EntityUser && m.Type != alert.EntityIP {
			ent.Cluster = cluster
		}
		if ent.Name == "" && ent.Address == "" {
			continue
		}
		a.Entities = append(a.Entities, ent)
	}
	a.Cluster = cluster
	return a
}

var severityRank = map[string]int{"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}

func indexOf(cols []table.Column, name string) int {
	for i, c := range cols {
		if c.Name == name {
			return i
		}
	}
	return 0
}

// display renders a value for templates and entity names.
func display(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case []any, map[string]any:
		b, _ := json.Marshal(v)
		return string(b)
	default:
		return fmt.Sprint(v)
	}
}

// RunScheduled runs one scheduled rule's window ending now: from the end of
// its last window (so nothing is missed across a restart) or its lookback,
// whichever is earlier. Report ids that already raised an alert are skipped,
// so overlapping windows never alert twice. It never runs a rule twice at
// once: a run that finds the rule busy returns at once.
func (e *Engine) RunScheduled(ctx context.Context, r *Rule) ([]*alert.Alert, error) {
	e.mu.Lock()
	if e.running == nil {
		e.running = map[string]*sync.Mutex{}
	}
	lock, ok := e.running[r.ID]
	if !ok {
		lock = &sync.Mutex{}
		e.running[r.ID] = lock
	}
	e.mu.Unlock()
	if !lock.TryLock() {
		return nil, nil
	}
	defer lock.Unlock()

	end := e.now()
	since := end.Add(-time.Duration(r.Schedule.Lookback))
	last, err := e.State.LastRun(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	if !last.IsZero() && last.Before(since) {
		since = last
	}
	alerts, err := e.Evaluate(ctx, r, e.Window(since, end))
	if err != nil {
		return nil, err
	}
	for _, a := range alerts {
		if err := e.Sink.Raise(ctx, a); err != nil {
			return nil, err
		}
	}
	return alerts, e.State.SetLastRun(ctx, r.ID, end)
}

// Start runs every scheduled rule on its schedule until ctx ends: at once,
// then every interval.
func (e *Engine) Start(ctx context.Context) {
	for _, r := range e.Rules {
		if r.Schedule == nil || r.Disabled {
			continue
		}
		go func() {
			t := time.NewTicker(time.Duration(r.Schedule.Every))
			defer t.Stop()
			for {
				if _, err := e.RunScheduled(ctx, r); err != nil && ctx.Err() == nil {
					e.log().Error("scheduled rule failed", "rule", r.ID, "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
}
