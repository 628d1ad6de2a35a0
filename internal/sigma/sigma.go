// Package sigma translates Sigma rules for Kubernetes audit logs
// (logsource product: kubernetes, service: audit) into kdfir detection
// rules: the detection becomes a KQL where clause over KubeAudit.
//
// Supported: selections as maps (fields ANDed) or lists of maps (ORed),
// value lists (ORed), null, numbers and strings with the wildcards * and
// ?; the modifiers contains, startswith, endswith, re, all, cidr, exists,
// lt, lte, gt, gte; the field names of Sigma's Kubernetes rules that are
// not Event paths (apiGroup, hostPath, capabilities; see aliases);
// conditions with and, or, not, parentheses, "1 of X*",
// "all of X*", "1 of them" and "all of them". Anything else (other
// modifiers, aggregations, keyword selections, fields that are not in an
// audit Event) is refused with one line naming the file and the problem.
package sigma

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kdfir/kdfir/internal/detect"
)

// Modifiers lists the supported Sigma value modifiers.
var Modifiers = []string{"contains", "startswith", "endswith", "re", "all", "cidr", "exists", "lt", "lte", "gt", "gte"}

// doc is the part of a Sigma rule the translation reads.
type doc struct {
	Title       string         `yaml:"title"`
	ID          string         `yaml:"id"`
	Description string         `yaml:"description"`
	Level       string         `yaml:"level"`
	Tags        []string       `yaml:"tags"`
	Logsource   map[string]any `yaml:"logsource"`
	Detection   map[string]any `yaml:"detection"`
}

// Event fields a Sigma rule may name: the audit Event's members, and
// paths below the object-valued ones.
var topFields = map[string]bool{
	"verb": true, "stage": true, "level": true, "auditID": true, "requestURI": true, "userAgent": true,
	"sourceIPs": true, "kind": true, "apiVersion": true,
}

var objectFields = map[string]bool{
	"user": true, "impersonatedUser": true, "objectRef": true, "responseStatus": true,
	"requestObject": true, "responseObject": true, "annotations": true,
}

// Rule is a translated rule: its file name and the kdfir rule's YAML.
type Rule struct {
	ID   string
	YAML []byte
}

// Convert translates one Sigma rule file.
func Convert(file string, b []byte) (*Rule, error) {
	var d doc
	if err := yaml.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %v", file, firstLine(err.Error()))
	}
	if p, s := fmt.Sprint(d.Logsource["product"]), fmt.Sprint(d.Logsource["service"]); p != "kubernetes" || s != "audit" {
		return nil, fmt.Errorf("%s: logsource is product %s, service %s; only product kubernetes, service audit is imported", file, p, s)
	}
	if d.Title == "" {
		return nil, fmt.Errorf("%s: no title", file)
	}
	cond, ok := d.Detection["condition"]
	if !ok {
		return nil, fmt.Errorf("%s: detection has no condition", file)
	}
	condStr, ok := cond.(string)
	if !ok {
		return nil, fmt.Errorf("%s: condition must be one string, not %T", file, cond)
	}
	sels := map[string]string{}
	for name, v := range d.Detection {
		if name == "condition" || name == "timeframe" {
			continue
		}
		expr, err := selection(v)
		if err != nil {
			return nil, fmt.Errorf("%s: selection %s: %v", file, name, err)
		}
		sels[name] = expr
	}
	where, err := condition(condStr, sels)
	if err != nil {
		return nil, fmt.Errorf("%s: condition %q: %v", file, condStr, err)
	}
	out, err := render(d, where)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	return out, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// selection translates a selection: a map (AND of its fields) or a list
// of maps (OR).
func selection(v any) (string, error) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			e, err := field(k, v[k])
			if err != nil {
				return "", err
			}
			parts = append(parts, e)
		}
		return "(" + strings.Join(parts, " and ") + ")", nil
	case []any:
		var parts []string
		for _, el := range v {
			m, ok := el.(map[string]any)
			if !ok {
				return "", errors.New("keyword selections (values without a field) are not supported")
			}
			e, err := selection(m)
			if err != nil {
				return "", err
			}
			parts = append(parts, e)
		}
		if len(parts) == 0 {
			return "", errors.New("empty selection")
		}
		return "(" + strings.Join(parts, " or ") + ")", nil
	default:
		return "", fmt.Errorf("a selection must be a map or a list of maps, not %T", v)
	}
}

// aliases are the field names of Sigma's Kubernetes audit rules that are
// not audit Event paths: apiGroup and friends name objectRef's members,
// and hostPath and capabilities stand for the host paths and added
// capabilities of the pod spec in the request.
var aliases = map[string]string{
	"apiGroup":     "tostring(objectRef.apiGroup)",
	"resource":     "tostring(objectRef.resource)",
	"subresource":  "tostring(objectRef.subresource)",
	"namespace":    "tostring(objectRef.namespace)",
	"hostPath":     `strcat_array(extract_all(@'"hostPath":\{[^}]*"path":"([^"]*)"', tostring(requestObject.spec)), ",")`,
	"capabilities": `strcat_array(extract_all(@'"capabilities":\{[^}]*"add":\[([^\]]*)\]', tostring(requestObject.spec)), ",")`,
}

// column returns the KQL expression for a Sigma field name.
func column(name string) (string, error) {
	if a, ok := aliases[name]; ok {
		return a, nil
	}
	parts := strings.Split(name, ".")
	for _, p := range parts {
		if p == "" || !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`).MatchString(p) {
			return "", fmt.Errorf("field %q is not a field path", name)
		}
	}
	if len(parts) == 1 && topFields[name] {
		if name == "sourceIPs" {
			return "tostring(sourceIPs[0])", nil
		}
		return name, nil
	}
	if len(parts) > 1 && objectFields[parts[0]] {
		var b strings.Builder
		b.WriteString(parts[0])
		for _, p := range parts[1:] {
			if strings.Contains(p, "-") {
				b.WriteString(`["` + p + `"]`)
			} else {
				b.WriteString("." + p)
			}
		}
		return "tostring(" + b.String() + ")", nil
	}
	return "", fmt.Errorf("field %q is not in a Kubernetes audit Event (fields: verb, user.username, objectRef.resource, requestURI, userAgent, sourceIPs, responseStatus.code, requestObject..., annotations...)", name)
}

// field translates one field: value (or list of values), with modifiers.
func field(key string, v any) (string, error) {
	name, mods, _ := strings.Cut(key, "|")
	var modList []string
	if mods != "" {
		modList = strings.Split(mods, "|")
	}
	all := false
	op := ""
	for _, m := range modList {
		switch m {
		case "all":
			all = true
		case "contains", "startswith", "endswith", "re", "cidr", "exists", "lt", "lte", "gt", "gte":
			if op != "" {
				return "", fmt.Errorf("field %s: modifiers %s and %s together are not supported", name, op, m)
			}
			op = m
		default:
			return "", fmt.Errorf("field %s: modifier %q is not supported (supported: %s)", name, m, strings.Join(Modifiers, ", "))
		}
	}
	col, err := column(name)
	if err != nil {
		return "", err
	}
	vals, ok := v.([]any)
	if !ok {
		vals = []any{v}
	}
	if len(vals) == 0 {
		return "", fmt.Errorf("field %s: empty value list", name)
	}
	var parts []string
	for _, val := range vals {
		e, err := match(col, name, op, val)
		if err != nil {
			return "", err
		}
		parts = append(parts, e)
	}
	join := " or "
	if all {
		join = " and "
	}
	return "(" + strings.Join(parts, join) + ")", nil
}

// match translates one value of a field.
func match(col, name, op string, val any) (string, error) {
	if op == "exists" {
		b, ok := val.(bool)
		if !ok {
			return "", fmt.Errorf("field %s: exists takes true or false", name)
		}
		if b {
			return "isnotempty(" + col + ")", nil
		}
		return "isempty(" + col + ")", nil
	}
	if val == nil {
		if op != "" {
			return "", fmt.Errorf("field %s: null with modifier %s", name, op)
		}
		return "isempty(" + col + ")", nil
	}
	var s string
	switch x := val.(type) {
	case string:
		s = x
	case int, int64, float64, bool:
		s = fmt.Sprint(x)
	default:
		return "", fmt.Errorf("field %s: value of type %T is not supported", name, val)
	}
	switch op {
	case "lt", "lte", "gt", "gte":
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return "", fmt.Errorf("field %s: %s needs a number, not %q", name, op, s)
		}
		sym := map[string]string{"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
		return fmt.Sprintf("todouble(%s) %s %v", col, sym, n), nil
	case "re":
		if _, err := regexp.Compile(s); err != nil {
			return "", fmt.Errorf("field %s: regular expression: %v", name, err)
		}
		return col + " matches regex " + quote(s), nil
	case "cidr":
		return "ipv4_is_in_range(" + col + ", " + quote(s) + ")", nil
	}
	if s == "*" && op == "" {
		// Any value: the field is there and not empty.
		return "isnotempty(" + col + ")", nil
	}
	if strings.ContainsAny(s, "*?") {
		// Sigma wildcards, anchored according to the modifier; Sigma
		// matches case-insensitively.
		re := wildcardRE(s)
		switch op {
		case "contains":
		case "startswith":
			re = "^" + re
		case "endswith":
			re = re + "$"
		default:
			re = "^" + re + "$"
		}
		return col + " matches regex " + quote("(?is)"+re), nil
	}
	switch op {
	case "contains":
		return col + " contains " + quote(s), nil
	case "startswith":
		return col + " startswith " + quote(s), nil
	case "endswith":
		return col + " endswith " + quote(s), nil
	}
	return col + " =~ " + quote(s), nil
}

// wildcardRE turns a Sigma value with * and ? (\* and \? escaped) into a
// regular expression.
func wildcardRE(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && (s[i+1] == '*' || s[i+1] == '?' || s[i+1] == '\\'):
			b.WriteString(regexp.QuoteMeta(string(s[i+1])))
			i++
		case c == '*':
			b.WriteString(".*")
		case c == '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String()
}

// quote writes a KQL verbatim string literal.
func quote(s string) string {
	return `@"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// condition translates a Sigma condition over the translated selections.
func condition(cond string, sels map[string]string) (string, error) {
	if strings.Contains(cond, "|") {
		return "", errors.New("aggregations (| count() ...) are not supported")
	}
	toks := tokenize(cond)
	p := &condParser{toks: toks, sels: sels}
	e, err := p.or()
	if err != nil {
		return "", err
	}
	if p.i < len(p.toks) {
		return "", fmt.Errorf("unexpected %q", p.toks[p.i])
	}
	return e, nil
}

func tokenize(s string) []string {
	var toks []string
	cur := ""
	flush := func() {
		if cur != "" {
			toks = append(toks, cur)
			cur = ""
		}
	}
	for _, r := range s {
		switch r {
		case '(', ')':
			flush()
			toks = append(toks, string(r))
		case ' ', '\t', '\n':
			flush()
		default:
			cur += string(r)
		}
	}
	flush()
	return toks
}

type condParser struct {
	toks []string
	i    int
	sels map[string]string
}

func (p *condParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

func (p *condParser) or() (string, error) { return p.binary("or", p.and) }

func (p *condParser) and() (string, error) { return p.binary("and", p.unary) }

// binary parses operands joined by op (left-associative).
func (p *condParser) binary(op string, operand func() (string, error)) (string, error) {
	l, err := operand()
	if err != nil {
		return "", err
	}
	for strings.EqualFold(p.peek(), op) {
		p.i++
		r, err := operand()
		if err != nil {
			return "", err
		}
		l = "(" + l + " " + op + " " + r + ")"
	}
	return l, nil
}

func (p *condParser) unary() (string, error) {
	t := p.peek()
	switch {
	case t == "":
		return "", errors.New("unexpected end")
	case strings.EqualFold(t, "not"):
		p.i++
		e, err := p.unary()
		if err != nil {
			return "", err
		}
		return "not(" + e + ")", nil
	case t == "(":
		p.i++
		e, err := p.or()
		if err != nil {
			return "", err
		}
		if p.peek() != ")" {
			return "", errors.New("missing )")
		}
		p.i++
		return e, nil
	case t == "1" || strings.EqualFold(t, "all") || strings.EqualFold(t, "any"):
		p.i++
		if !strings.EqualFold(p.peek(), "of") {
			return "", fmt.Errorf("expected of after %s", t)
		}
		p.i++
		pat := p.peek()
		if pat == "" {
			return "", errors.New("expected a selection pattern after of")
		}
		p.i++
		var names []string
		for n := range p.sels {
			if pat == "them" || wildcardMatch(pat, n) {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			return "", fmt.Errorf("no selection matches %s", pat)
		}
		sort.Strings(names)
		var parts []string
		for _, n := range names {
			parts = append(parts, p.sels[n])
		}
		join := " or "
		if strings.EqualFold(t, "all") {
			join = " and "
		}
		return "(" + strings.Join(parts, join) + ")", nil
	default:
		e, ok := p.sels[t]
		if !ok {
			return "", fmt.Errorf("unknown selection %q", t)
		}
		p.i++
		return e, nil
	}
}

func wildcardMatch(pat, s string) bool {
	ok, _ := regexp.MatchString("^"+wildcardRE(pat)+"$", s)
	return ok
}

var tacticNames = map[string]string{
	"initial-access": "Initial Access", "execution": "Execution", "persistence": "Persistence",
	"privilege-escalation": "Privilege Escalation", "defense-evasion": "Defense Evasion",
	"credential-access": "Credential Access", "discovery": "Discovery", "lateral-movement": "Lateral Movement",
	"collection": "Collection", "command-and-control": "Command and Control", "exfiltration": "Exfiltration",
	"impact": "Impact", "reconnaissance": "Reconnaissance", "resource-development": "Resource Development",
}

var slugRE = regexp.MustCompile(`[^a-z0-9]+`)

// render writes the kdfir rule.
func render(d doc, where string) (*Rule, error) {
	slug := strings.Trim(slugRE.ReplaceAllString(strings.ToLower(d.Title), "-"), "-")
	id := "sigma-" + slug
	if len(id) > 63 {
		id = strings.TrimRight(id[:63], "-")
	}
	var tactics, techniques []string
	for _, t := range d.Tags {
		t = strings.ToLower(t)
		rest, ok := strings.CutPrefix(t, "attack.")
		if !ok {
			continue
		}
		if regexp.MustCompile(`^t[0-9]{4}(\.[0-9]{3})?$`).MatchString(rest) {
			techniques = append(techniques, strings.ToUpper(rest))
		} else if n, ok := tacticNames[strings.ReplaceAll(rest, "_", "-")]; ok && !slices.Contains(tactics, n) {
			tactics = append(tactics, n)
		}
	}
	sev := strings.ToLower(d.Level)
	if !slices.Contains([]string{"informational", "low", "medium", "high", "critical"}, sev) {
		sev = "medium"
	}
	desc := strings.TrimSpace(d.Description)
	if d.ID != "" {
		desc += " (Sigma rule " + d.ID + ", imported by kdfir rules import sigma.)"
	}
	query := "KubeAudit\n| where " + where + "\n" +
		"| extend Username = tostring(user.username), Namespace = tostring(objectRef.namespace), Name = tostring(objectRef.name), SourceIP = tostring(sourceIPs[0]), UserAgent = userAgent, Verb = verb, Resource = tostring(objectRef.resource)\n" +
		"| project Timestamp = stageTimestamp, ReportId = auditID, Cluster, Namespace, Name, Resource, Verb, Username, SourceIP, UserAgent, RequestURI = requestURI\n"
	r := map[string]any{
		"id":          id,
		"title":       d.Title,
		"description": desc,
		"severity":    sev,
		"tactics":     tactics,
		"techniques":  techniques,
		"query":       query,
		"nrt":         true,
		"entities": []map[string]string{
			{"type": "user", "name": "Username"},
			{"type": "ip", "address": "SourceIP"},
		},
		"alert": map[string]string{
			"title":       d.Title + ": {{Verb}} {{Resource}} {{Namespace}}/{{Name}} by {{Username}}",
			"description": "{{Username}} sent {{Verb}} {{RequestURI}} from {{SourceIP}} ({{UserAgent}}).",
		},
		"max_alerts": 50,
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(orderedRule(r)); err != nil {
		return nil, err
	}
	return &Rule{ID: id, YAML: b.Bytes()}, nil
}

// orderedRule keeps the rule's keys in the order a person writes them.
func orderedRule(r map[string]any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range []string{"id", "title", "description", "severity", "tactics", "techniques", "query", "nrt", "entities", "alert", "max_alerts"} {
		var v yaml.Node
		_ = v.Encode(r[k])
		if k == "query" {
			v.Style = yaml.LiteralStyle
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, &v)
	}
	return n
}

// FileName is the file a translated rule is written to.
func (r *Rule) FileName() string { return filepath.Clean(r.ID + ".yaml") }

// ConvertPaths translates every .yml and .yaml file in the files and
// directories given (recursively). It returns the rules translated and one
// error per file refused.
func ConvertPaths(paths []string) ([]*Rule, []error) {
	var rules []*Rule
	var errs []error
	seen := map[string]string{}
	err := detect.WalkYAML(paths, func(path string, b []byte) {
		r, err := Convert(path, b)
		if err != nil {
			errs = append(errs, err)
			return
		}
		if prev, ok := seen[r.ID]; ok {
			errs = append(errs, fmt.Errorf("%s: rule id %s already made from %s", path, r.ID, prev))
			return
		}
		seen[r.ID] = path
		rules = append(rules, r)
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("sigma: %w", err))
	}
	return rules, errs
}
