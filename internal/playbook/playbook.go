// Package playbook matches alerts to playbooks and runs their steps in
// order: each step an action or collection on the alert's entities, with
// dry run, approval gates and a failure policy.
package playbook

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kdfir/kdfir/internal/alert"
)

// Playbook is one YAML file.
//
//	name: isolate-pod-on-exec
//	description: ...
//	match:
//	  source: [defender, falco, kdfir]   # any of
//	  title: "(?i)exec|shell"             # regular expression
//	  alert_type: [K8S.NODE_*]            # any of; * is a wildcard
//	  rule: [k8s-exec-into-pod]           # kdfir detection rule ids
//	  severity: high                      # at least this severe
//	  entities: [pod]                     # all of these entity types present
//	  fields: {k8s.ns.name: shop}         # source fields equal (as strings)
//	dry_run: false
//	steps:
//	- name: evidence
//	  action: collect-pod                 # see Actions
//	  target: pod                         # entity type the step acts on (default: the action's)
//	  params: {destination: default}
//	  on_failure: continue                # or stop (default)
//	- action: isolate-pod
//	  requires_approval: true             # waits in pending_approval until approved
type Playbook struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Match       Match  `yaml:"match"`
	DryRun      bool   `yaml:"dry_run"`
	Steps       []Step `yaml:"steps"`

	// File and Line locate the playbook for error messages.
	File string `yaml:"-"`
	Line int    `yaml:"-"`
}

// Match selects the alerts a playbook runs on. Every condition given must
// hold; an empty Match matches every alert.
type Match struct {
	Source    []string          `yaml:"source"`
	Title     string            `yaml:"title"`
	AlertType []string          `yaml:"alert_type"`
	Rule      []string          `yaml:"rule"`
	Severity  string            `yaml:"severity"`
	Entities  []string          `yaml:"entities"`
	Fields    map[string]string `yaml:"fields"`

	title *regexp.Regexp
}

// Step is one action of a playbook.
type Step struct {
	Name             string         `yaml:"name"`
	Action           string         `yaml:"action"`
	Target           string         `yaml:"target"`
	Params           map[string]any `yaml:"params"`
	RequiresApproval bool           `yaml:"requires_approval"`
	OnFailure        string         `yaml:"on_failure"`

	Line int `yaml:"-"`
}

// Actions maps each action a step may name to the entity type it acts on.
var Actions = map[string]string{
	"isolate-pod":         alert.EntityPod,
	"unisolate-pod":       alert.EntityPod,
	"isolate-namespace":   alert.EntityNamespace,
	"unisolate-namespace": alert.EntityNamespace,
	"cordon-node":         alert.EntityNode,
	"uncordon-node":       alert.EntityNode,
	"collect-pod":         alert.EntityPod,
	"collect-namespace":   alert.EntityNamespace,
	"collect-node":        alert.EntityNode,
	"exec-pod":            alert.EntityPod,
}

var severities = []string{alert.SeverityInformational, alert.SeverityLow, alert.SeverityMedium, alert.SeverityHigh, alert.SeverityCritical}

// LoadDirs reads every *.yaml and *.yml file in the directories, validates
// each playbook, and returns them sorted by name. Errors name the file and
// line.
func LoadDirs(dirs ...string) ([]*Playbook, error) {
	var all []*Playbook
	var errs []error
	names := map[string]string{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("playbook directory: %w", err)
		}
		for _, e := range entries {
			ext := filepath.Ext(e.Name())
			if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
				continue
			}
			path := filepath.Join(dir, e.Name())
			b, err := os.ReadFile(path)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			p, err := Parse(path, b)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if prev, dup := names[p.Name]; dup {
				errs = append(errs, fmt.Errorf("%s:%d: playbook %q already defined in %s", path, p.Line, p.Name, prev))
				continue
			}
			names[p.Name] = path
			all = append(all, p)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all, nil
}

// Parse decodes and validates one playbook file.
func Parse(file string, b []byte) (*Playbook, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty playbook", file)
	}
	root := doc.Content[0]
	var p Playbook
	if err := decodeStrict(root, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	p.File, p.Line = file, root.Line
	if steps := mapValue(root, "steps"); steps != nil {
		for i, n := range steps.Content {
			if i < len(p.Steps) {
				p.Steps[i].Line = n.Line
			}
		}
	}
	if err := p.validate(root); err != nil {
		return nil, err
	}
	return &p, nil
}

// decodeStrict decodes a node, rejecting unknown keys.
func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		// Line numbers are relative to the re-encoded node; shift them.
		return shiftLines(err, n.Line-1)
	}
	return nil
}

var lineRE = regexp.MustCompile(`line (\d+)`)

func shiftLines(err error, by int) error {
	msg := lineRE.ReplaceAllStringFunc(err.Error(), func(s string) string {
		var n int
		fmt.Sscanf(s, "line %d", &n)
		return fmt.Sprintf("line %d", n+by)
	})
	return errors.New(strings.ReplaceAll(msg, "yaml: unmarshal errors:\n  ", ""))
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func (p *Playbook) errorf(line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d: playbook %q: %s", p.File, line, p.Name, fmt.Sprintf(format, args...))
}

func (p *Playbook) validate(root *yaml.Node) error {
	line := func(key string) int {
		if v := mapValue(root, key); v != nil {
			return v.Line
		}
		return root.Line
	}
	if p.Name == "" {
		return fmt.Errorf("%s:%d: name is required", p.File, root.Line)
	}
	if len(p.Steps) == 0 {
		return p.errorf(root.Line, "steps: at least one step is required")
	}
	m := &p.Match
	if m.Title != "" {
		re, err := regexp.Compile(m.Title)
		if err != nil {
			return p.errorf(line("match"), "match.title: %v", err)
		}
		m.title = re
	}
	if m.Severity != "" && !slices.Contains(severities, strings.ToLower(m.Severity)) {
		return p.errorf(line("match"), "match.severity %q: want one of %s", m.Severity, strings.Join(severities, ", "))
	}
	for _, s := range m.Source {
		if !slices.Contains([]string{alert.SourceDefender, alert.SourceSentinel, alert.SourceFalco, alert.SourceKdfir}, strings.ToLower(s)) {
			return p.errorf(line("match"), "match.source %q: want defender, sentinel, falco or kdfir", s)
		}
	}
	for i := range p.Steps {
		s := &p.Steps[i]
		want, ok := Actions[s.Action]
		if !ok {
			return p.errorf(s.Line, "steps[%d]: unknown action %q (known: %s)", i, s.Action, strings.Join(sortedKeys(Actions), ", "))
		}
		if s.Target == "" {
			s.Target = want
		}
		if s.Target != want {
			return p.errorf(s.Line, "steps[%d]: action %s acts on a %s, not a %s", i, s.Action, want, s.Target)
		}
		switch s.OnFailure {
		case "":
			s.OnFailure = "stop"
		case "stop", "continue":
		default:
			return p.errorf(s.Line, "steps[%d]: on_failure %q: want continue or stop", i, s.OnFailure)
		}
		if s.Name == "" {
			s.Name = fmt.Sprintf("%d-%s", i+1, s.Action)
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Matches reports whether the playbook runs on the alert.
func (p *Playbook) Matches(a *alert.Alert) bool {
	m := &p.Match
	if len(m.Source) > 0 && !containsFold(m.Source, a.Source) {
		return false
	}
	if m.title != nil && !m.title.MatchString(a.Title) {
		return false
	}
	if len(m.AlertType) > 0 && !slices.ContainsFunc(m.AlertType, func(pat string) bool { return globFold(pat, a.AlertType) }) {
		return false
	}
	if len(m.Rule) > 0 && !containsFold(m.Rule, a.Rule) {
		return false
	}
	if m.Severity != "" && alert.SeverityRank(a.Severity) < alert.SeverityRank(m.Severity) {
		return false
	}
	for _, t := range m.Entities {
		if !a.HasType(strings.ToLower(t)) {
			return false
		}
	}
	for k, want := range m.Fields {
		got, ok := a.Fields[k]
		if !ok || !strings.EqualFold(fmt.Sprint(got), want) {
			return false
		}
	}
	return true
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}

// globFold matches s against a pattern where * stands for any run of
// characters, without regard to case.
func globFold(pattern, s string) bool {
	parts := strings.Split(strings.ToLower(pattern), "*")
	s = strings.ToLower(s)
	if len(parts) == 1 {
		return s == parts[0]
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}
