package detect

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kdfir/kdfir/internal/kql/syntax"
)

// Exception excepts the rows of a rule's result that it matches, as Falco
// exceptions and Sentinel's allowlists do. It matches a row when every
// field it sets matches (and, within a field, any of its values does):
//
//	exceptions:
//	- name: kube-system-controllers
//	  reason: controllers start the privileged pods of system DaemonSets
//	  namespaces: [kube-system]
//	  users: ["system:serviceaccount:kube-system:*"]
//	- name: trusted-nginx
//	  images: ["nginx", "nginx:*", "docker.io/library/nginx:*"]
//	- name: ci-runner
//	  serviceAccounts: ["ci/runner"]
//	  when: Workload startswith "jobs/"
//
// images, namespaces, users, groups and serviceAccounts take wildcards
// (* for any run of characters, ? for one). They read the result columns
// Image, Namespace, Username, Groups (an array) and Username again
// (system:serviceaccount:NS:NAME is ServiceAccount NS/NAME). when is a KQL
// condition over the result columns. An image matches in the form written
// and in its full form (nginx:1.25 is also docker.io/library/nginx:1.25).
type Exception struct {
	Name            string   `yaml:"name" json:"name"`
	Reason          string   `yaml:"reason" json:"reason,omitempty"`
	Images          []string `yaml:"images" json:"images,omitempty"`
	Namespaces      []string `yaml:"namespaces" json:"namespaces,omitempty"`
	Users           []string `yaml:"users" json:"users,omitempty"`
	Groups          []string `yaml:"groups" json:"groups,omitempty"`
	ServiceAccounts []string `yaml:"serviceAccounts" json:"serviceAccounts,omitempty"`
	When            string   `yaml:"when" json:"when,omitempty"`

	// In an exceptions file: the rules the exception applies to.
	Rule  string   `yaml:"rule" json:"-"`
	Rules []string `yaml:"rules" json:"-"`

	images, namespaces, users, groups, sas []*regexp.Regexp
	whenCol                                string // result column holding the when condition
}

// Excepted is a result row an exception suppressed.
type Excepted struct {
	Rule      string         `json:"rule"`
	Exception string         `json:"exception"`
	ReportID  string         `json:"reportId"`
	Fields    map[string]any `json:"fields"`
}

var posRE = regexp.MustCompile(`^1:(\d+): (.*)$`)

// exceptionColumn prefixes the result columns that hold when conditions.
const exceptionColumn = "__kdfir_exception_"

// compile checks an exception against the rule's result columns and
// builds its matchers.
func (x *Exception) compile(cols map[string]bool) error {
	if x.Name == "" {
		return errors.New("name is required")
	}
	if len(x.Images)+len(x.Namespaces)+len(x.Users)+len(x.Groups)+len(x.ServiceAccounts) == 0 && x.When == "" {
		return errors.New("set at least one of images, namespaces, users, groups, serviceAccounts, when")
	}
	for _, f := range []struct {
		name, col string
		vals      []string
		dst       *[]*regexp.Regexp
	}{
		{"images", "Image", x.Images, &x.images},
		{"namespaces", "Namespace", x.Namespaces, &x.namespaces},
		{"users", "Username", x.Users, &x.users},
		{"groups", "Groups", x.Groups, &x.groups},
		{"serviceAccounts", "Username", x.ServiceAccounts, &x.sas},
	} {
		if len(f.vals) == 0 {
			continue
		}
		if !cols[f.col] {
			return fmt.Errorf("%s needs the %s column in the rule's result", f.name, f.col)
		}
		*f.dst = nil
		for _, v := range f.vals {
			if v == "" {
				return fmt.Errorf("%s: empty value", f.name)
			}
			*f.dst = append(*f.dst, wildcard(v))
		}
	}
	return nil
}

// wildcard compiles a pattern with * and ? to an anchored regexp.
func wildcard(p string) *regexp.Regexp {
	q := regexp.QuoteMeta(p)
	q = strings.ReplaceAll(q, `\*`, ".*")
	q = strings.ReplaceAll(q, `\?`, ".")
	return regexp.MustCompile("^(?:" + q + ")$")
}

func anyMatch(res []*regexp.Regexp, vals ...string) bool {
	for _, re := range res {
		for _, v := range vals {
			if re.MatchString(v) {
				return true
			}
		}
	}
	return false
}

// fullImage spells an image reference out: nginx:1.25 is
// docker.io/library/nginx:1.25, and bitnami/redis is docker.io/bitnami/redis.
func fullImage(img string) string {
	first, _, hasSlash := strings.Cut(img, "/")
	if hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return img
	}
	if !hasSlash {
		return "docker.io/library/" + img
	}
	return "docker.io/" + img
}

// matches reports whether the exception matches a result row.
func (x *Exception) matches(get func(string) string, row func(string) any) bool {
	if x.images != nil {
		img := get("Image")
		if !anyMatch(x.images, img, fullImage(img)) {
			return false
		}
	}
	if x.namespaces != nil && !anyMatch(x.namespaces, get("Namespace")) {
		return false
	}
	if x.users != nil && !anyMatch(x.users, get("Username")) {
		return false
	}
	if x.groups != nil {
		var gs []string
		switch v := row("Groups").(type) {
		case []any:
			for _, g := range v {
				if s, ok := g.(string); ok {
					gs = append(gs, s)
				}
			}
		case string:
			gs = append(gs, v)
		}
		if !anyMatch(x.groups, gs...) {
			return false
		}
	}
	if x.sas != nil {
		rest, ok := strings.CutPrefix(get("Username"), "system:serviceaccount:")
		ns, name, ok2 := strings.Cut(rest, ":")
		if !ok || !ok2 || !anyMatch(x.sas, ns+"/"+name) {
			return false
		}
	}
	if x.whenCol != "" {
		if b, _ := row(x.whenCol).(bool); !b {
			return false
		}
	}
	return true
}

// withExceptions appends one extend per when condition to the query, so
// that the evaluator computes each condition beside the row.
func (r *Rule) withExceptions(q string) string {
	var b strings.Builder
	b.WriteString(q)
	for i := range r.Exceptions {
		x := &r.Exceptions[i]
		x.whenCol = ""
		if x.When == "" {
			continue
		}
		x.whenCol = fmt.Sprintf("%s%d", exceptionColumn, i)
		fmt.Fprintf(&b, "\n| extend %s = tobool(%s)", x.whenCol, x.When)
	}
	return b.String()
}

// checkExceptions validates the exceptions against the result columns of
// the rule's own query (without the when columns).
func (r *Rule) checkExceptions(cols map[string]bool) error {
	seen := map[string]bool{}
	for i := range r.Exceptions {
		x := &r.Exceptions[i]
		if err := x.compile(cols); err != nil {
			return fmt.Errorf("exception %q: %w", orName(x.Name, i), err)
		}
		if seen[x.Name] {
			return fmt.Errorf("exception %q: name used twice", x.Name)
		}
		seen[x.Name] = true
		if x.When != "" {
			if _, _, err := syntax.Parse("T | where " + x.When); err != nil {
				msg, _, _ := strings.Cut(err.Error(), "\n")
				if m := posRE.FindStringSubmatch(msg); m != nil {
					col, _ := strconv.Atoi(m[1])
					msg = fmt.Sprintf("column %d: %s", max(col-len("T | where "), 1), m[2])
				}
				return fmt.Errorf("exception %q: when %q: %s", x.Name, x.When, msg)
			}
		}
	}
	return nil
}

func orName(name string, i int) string {
	if name == "" {
		return fmt.Sprintf("#%d", i+1)
	}
	return name
}

// Tuning is an exceptions file: exceptions for rules of the pack or of
// the user, and rules to enable (those shipped disabled) or disable.
//
//	enable: [k8s-image-latest-or-untagged]
//	disable: [k8s-exposed-service]
//	exceptions:
//	- rule: k8s-privileged-container        # or rules: [a, b], or rule: "*"
//	  name: trusted-nginx
//	  images: ["nginx:*"]
type Tuning struct {
	Enable     []string    `yaml:"enable"`
	Disable    []string    `yaml:"disable"`
	Exceptions []Exception `yaml:"exceptions"`
	File       string      `yaml:"-"`
}

// LoadTuning reads an exceptions file.
func LoadTuning(path string) (*Tuning, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("exceptions file: %w", err)
	}
	var t Tuning
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("exceptions file %s: %w", path, err)
	}
	t.File = path
	return &t, nil
}

// Apply enables, disables and adds the exceptions to the rules. Every rule
// id it names must exist; an exception that does not fit a rule (a field
// whose column the rule lacks, a bad when) is an error.
func (t *Tuning) Apply(rules []*Rule) error {
	byID := map[string]*Rule{}
	for _, r := range rules {
		byID[r.ID] = r
	}
	var errs []error
	for _, id := range t.Enable {
		if r := byID[id]; r == nil {
			errs = append(errs, fmt.Errorf("%s: enable: no rule %q", t.File, id))
		} else {
			r.Disabled = false
		}
	}
	for _, id := range t.Disable {
		if r := byID[id]; r == nil {
			errs = append(errs, fmt.Errorf("%s: disable: no rule %q", t.File, id))
		} else {
			r.Disabled = true
		}
	}
	for i, x := range t.Exceptions {
		ids := x.Rules
		if x.Rule != "" {
			ids = append(slices.Clone(ids), x.Rule)
		}
		if len(ids) == 0 {
			errs = append(errs, fmt.Errorf("%s: exception %q: rule or rules is required", t.File, orName(x.Name, i)))
			continue
		}
		for _, id := range ids {
			targets := []*Rule{byID[id]}
			if id == "*" {
				targets = rules
			} else if byID[id] == nil {
				errs = append(errs, fmt.Errorf("%s: exception %q: no rule %q", t.File, orName(x.Name, i), id))
				continue
			}
			for _, r := range targets {
				y := x
				y.Rule, y.Rules = "", nil
				if err := r.AddException(y); err != nil {
					if id == "*" && strings.Contains(err.Error(), "column in the rule's result") {
						continue // "*" applies where the rule has the columns
					}
					errs = append(errs, fmt.Errorf("%s: rule %s: %w", t.File, r.ID, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// AddException adds an exception to the rule and recompiles its query.
func (r *Rule) AddException(x Exception) error {
	r.Exceptions = append(r.Exceptions, x)
	if err := r.validate(); err != nil {
		r.Exceptions = r.Exceptions[:len(r.Exceptions)-1]
		if err2 := r.validate(); err2 != nil {
			return errors.Join(err, err2)
		}
		return err
	}
	return nil
}
