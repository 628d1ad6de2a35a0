// Package detect runs detection rules: KQL queries over the audit tables
// that raise alerts. Near-real-time (NRT) rules run on each ingested batch
// of events; scheduled rules run every interval over a lookback window.
package detect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/config"
	"github.com/kdfir/kdfir/internal/kql/eval"
	"github.com/kdfir/kdfir/internal/kql/syntax"
)

// Rule is one detection rule, one YAML file:
//
//	id: k8s-exec-into-pod
//	title: Exec into a pod
//	description: Someone ran a command in a container through the API server.
//	severity: high
//	tactics: [Execution]
//	techniques: [T1609]
//	query: |
//	  KubeAudit | where objectRef.subresource == "exec" | ...
//	nrt: true                          # or: schedule: {every: 5m, lookback: 15m}
//	entities:                          # result columns → alert entities
//	- {type: pod, namespace: PodNamespace, name: PodName}
//	- {type: user, name: Username}
//	alert:
//	  title: "Exec into {{PodNamespace}}/{{PodName}}: {{Command}}"
//	  description: "{{Username}} ran {{Command}}"
//	suppress: {by: [PodNamespace, PodName], window: 10m}
//	max_alerts: 20
//	playbooks: [collect-then-isolate]
//	disabled: false                    # shipped off when it fires on ordinary workloads
//	exceptions:                        # see Exception
//	- {name: ci, serviceAccounts: ["ci/*"]}
type Rule struct {
	ID          string       `yaml:"id" json:"id"`
	Title       string       `yaml:"title" json:"title"`
	Description string       `yaml:"description" json:"description"`
	Severity    string       `yaml:"severity" json:"severity"`
	Tactics     []string     `yaml:"tactics" json:"tactics,omitempty"`
	Techniques  []string     `yaml:"techniques" json:"techniques,omitempty"`
	Query       string       `yaml:"query" json:"query"`
	NRT         bool         `yaml:"nrt" json:"nrt"`
	Schedule    *Schedule    `yaml:"schedule" json:"schedule,omitempty"`
	Entities    []EntityMap  `yaml:"entities" json:"entities"`
	Alert       AlertFormat  `yaml:"alert" json:"alert"`
	Suppress    *Suppression `yaml:"suppress" json:"suppress,omitempty"`
	MaxAlerts   int          `yaml:"max_alerts" json:"maxAlerts,omitempty"`
	Playbooks   []string     `yaml:"playbooks" json:"playbooks,omitempty"`
	// Params are values a rule's query can use as {{name}} (for example a
	// registry allowlist); the config can override them.
	Params map[string]string `yaml:"params" json:"params,omitempty"`
	// Disabled rules are loaded (listed, tested) but not run; an
	// exceptions file can enable them.
	Disabled bool `yaml:"disabled" json:"disabled,omitempty"`
	// Exceptions suppress the result rows they match (see Exception).
	Exceptions []Exception `yaml:"exceptions" json:"exceptions,omitempty"`

	File  string        `yaml:"-" json:"file"`
	query *syntax.Query `yaml:"-"`
	// timeCol and idCol are the result columns holding the event time and
	// the report id.
	timeCol, idCol string
}

// Schedule runs a rule every Every over the last Lookback.
type Schedule struct {
	Every    Duration `yaml:"every" json:"every"`
	Lookback Duration `yaml:"lookback" json:"lookback"`
}

// Suppression drops alerts whose key (the By columns) already raised one
// within Window.
type Suppression struct {
	By     []string `yaml:"by" json:"by"`
	Window Duration `yaml:"window" json:"window"`
}

// EntityMap maps result columns to one alert entity.
type EntityMap struct {
	Type      string `yaml:"type" json:"type"`
	Name      string `yaml:"name" json:"name,omitempty"`
	Namespace string `yaml:"namespace" json:"namespace,omitempty"`
	Cluster   string `yaml:"cluster" json:"cluster,omitempty"`
	Address   string `yaml:"address" json:"address,omitempty"`
}

// AlertFormat holds the alert title and description templates; {{Col}}
// is replaced by the column's value in the matching row.
type AlertFormat struct {
	Title       string `yaml:"title" json:"title,omitempty"`
	Description string `yaml:"description" json:"description,omitempty"`
}

// Duration is a time.Duration written as "5m", "1h" or "1d".
type Duration time.Duration

// UnmarshalYAML reads a duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := config.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes a duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d Duration) String() string { return time.Duration(d).String() }

var entityTypes = []string{alert.EntityPod, alert.EntityNamespace, alert.EntityNode, alert.EntityUser, alert.EntityServiceAccount, alert.EntityCluster, alert.EntityIP, alert.EntityContainer}

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)

// Time and report id columns, as Defender's custom detections require:
// Timestamp and ReportId, or their KubeAudit and AKSAudit equivalents.
var (
	timeColumns = []string{"Timestamp", "TimeGenerated", "stageTimestamp", "requestReceivedTimestamp"}
	idColumns   = []string{"ReportId", "AuditId", "auditID"}
)

// Parse reads one rule and validates it, with overrides for its params.
func Parse(file string, b []byte, params map[string]string) (*Rule, error) {
	var r Rule
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	r.File = file
	for k, v := range params {
		if _, ok := r.Params[k]; ok {
			r.Params[k] = v
		}
	}
	if err := r.validate(); err != nil {
		name := r.ID
		if name == "" {
			name = filepath.Base(file)
		}
		return nil, fmt.Errorf("rule %s (%s): %w", name, file, err)
	}
	return &r, nil
}

func (r *Rule) validate() error {
	switch {
	case !idRE.MatchString(r.ID):
		return fmt.Errorf("id %q: want lowercase letters, digits and dashes", r.ID)
	case r.Title == "":
		return errors.New("title is required")
	case r.Query == "":
		return errors.New("query is required")
	case r.NRT && r.Schedule != nil:
		return errors.New("a rule is either nrt or scheduled, not both")
	case !r.NRT && r.Schedule == nil:
		return errors.New("either nrt: true or schedule: {every, lookback} is required")
	case r.Schedule != nil && (r.Schedule.Every <= 0 || r.Schedule.Lookback < r.Schedule.Every):
		return errors.New("schedule: every must be positive and lookback at least every")
	case len(r.Entities) == 0:
		return errors.New("at least one mapped entity is required")
	case r.MaxAlerts < 0:
		return errors.New("max_alerts must not be negative")
	}
	if s := strings.ToLower(r.Severity); !slices.Contains([]string{"informational", "low", "medium", "high", "critical"}, s) {
		return fmt.Errorf("severity %q: want informational, low, medium, high or critical", r.Severity)
	}
	r.Severity = strings.ToLower(r.Severity)
	q, _, err := syntax.Parse(r.expandParams(r.Query))
	if err != nil {
		return fmt.Errorf("query: %v", err)
	}
	r.query = q
	info := syntax.Inspect(q)
	if r.NRT {
		switch {
		case len(info.Tables) != 1:
			return fmt.Errorf("an NRT rule reads exactly one table, this query reads %d (%s)", len(info.Tables), strings.Join(info.Tables, ", "))
		case info.HasJoin:
			return errors.New("an NRT rule cannot use join")
		case info.HasUnion:
			return errors.New("an NRT rule cannot use union")
		case info.HasSummarize:
			return errors.New("an NRT rule cannot use summarize")
		}
	}
	for _, t := range info.Tables {
		if !slices.Contains(audit.Tables(), t) {
			return fmt.Errorf("query reads unknown table %q (tables: %s)", t, strings.Join(audit.Tables(), ", "))
		}
	}
	// Run the query on no events to learn its result columns.
	res, err := eval.Run(context.Background(), audit.NewBatchSource(nil), q, eval.Options{})
	if err != nil {
		return fmt.Errorf("query: %v", err)
	}
	cols := map[string]bool{}
	for _, c := range res.Columns {
		cols[c.Name] = true
	}
	for _, c := range timeColumns {
		if cols[c] {
			r.timeCol = c
			break
		}
	}
	for _, c := range idColumns {
		if cols[c] {
			r.idCol = c
			break
		}
	}
	if r.timeCol == "" {
		return fmt.Errorf("the result needs a time column (one of %s)", strings.Join(timeColumns, ", "))
	}
	if r.idCol == "" {
		return fmt.Errorf("the result needs a report id column (one of %s)", strings.Join(idColumns, ", "))
	}
	for i, m := range r.Entities {
		if !slices.Contains(entityTypes, m.Type) {
			return fmt.Errorf("entities[%d]: type %q: want one of %s", i, m.Type, strings.Join(entityTypes, ", "))
		}
		for _, c := range []string{m.Name, m.Namespace, m.Cluster, m.Address} {
			if c != "" && !cols[c] {
				return fmt.Errorf("entities[%d]: column %q is not in the query's result", i, c)
			}
		}
		if m.Name == "" && m.Address == "" {
			return fmt.Errorf("entities[%d]: name (or address for ip) is required", i)
		}
	}
	if r.Suppress != nil {
		if r.Suppress.Window <= 0 || len(r.Suppress.By) == 0 {
			return errors.New("suppress needs by columns and a positive window")
		}
		for _, c := range r.Suppress.By {
			if !cols[c] {
				return fmt.Errorf("suppress.by: column %q is not in the query's result", c)
			}
		}
	}
	for _, tpl := range []string{r.Alert.Title, r.Alert.Description} {
		for _, m := range placeholderRE.FindAllStringSubmatch(tpl, -1) {
			if !cols[m[1]] {
				return fmt.Errorf("alert template uses {{%s}}, which is not in the query's result", m[1])
			}
		}
	}
	if err := r.checkExceptions(cols); err != nil {
		return err
	}
	if full := r.withExceptions(r.expandParams(r.Query)); full != r.expandParams(r.Query) {
		q, _, err := syntax.Parse(full)
		if err != nil {
			return fmt.Errorf("exceptions: %v", err)
		}
		if _, err := eval.Run(context.Background(), audit.NewBatchSource(nil), q, eval.Options{}); err != nil {
			return fmt.Errorf("exceptions: %v", err)
		}
		r.query = q
	}
	return nil
}

var placeholderRE = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

// QueryText is the rule's query with its params filled in.
func (r *Rule) QueryText() string { return r.expandParams(r.Query) }

// expandParams replaces {{name}} in the query with the rule's params.
func (r *Rule) expandParams(q string) string {
	return placeholderRE.ReplaceAllStringFunc(q, func(m string) string {
		name := placeholderRE.FindStringSubmatch(m)[1]
		if v, ok := r.Params[name]; ok {
			return v
		}
		return m
	})
}

// LoadPaths reads rules from files and directories (recursively, *.yaml and
// *.yml). Every invalid rule is reported; ids must be unique.
func LoadPaths(paths []string, params map[string]string) ([]*Rule, error) {
	var rules []*Rule
	var errs []error
	seen := map[string]string{}
	add := func(path string, b []byte) {
		r, err := Parse(path, b, params)
		if err != nil {
			errs = append(errs, err)
			return
		}
		if prev, ok := seen[r.ID]; ok {
			errs = append(errs, fmt.Errorf("rule %s (%s): id already used in %s", r.ID, path, prev))
			return
		}
		seen[r.ID] = path
		rules = append(rules, r)
	}
	if err := WalkYAML(paths, add); err != nil {
		errs = append(errs, fmt.Errorf("rules: %w", err))
	}
	sort.Slice(rules, func(i, j int) bool { return rules[i].ID < rules[j].ID })
	return rules, errors.Join(errs...)
}

// WalkYAML calls fn with the contents of every *.yaml and *.yml file in
// the files and directories given (recursively), in lexical order.
func WalkYAML(paths []string, fn func(path string, b []byte)) error {
	var errs []error
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fn(path, b)
			return nil
		})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// LoadFS reads rules from an embedded file system (the built-in pack).
func LoadFS(fsys fs.FS, params map[string]string) ([]*Rule, error) {
	var rules []*Rule
	var errs []error
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		r, err := Parse("builtin:"+path, b, params)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		rules = append(rules, r)
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	sort.Slice(rules, func(i, j int) bool { return rules[i].ID < rules[j].ID })
	return rules, errors.Join(errs...)
}
