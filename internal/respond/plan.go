package respond

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kdfir/kdfir/internal/journal"
)

// PlanItem is one object a dry run would change, and how, as the API
// server answered the dry run (dryRun=All): for a patch, the fields that
// differ between the object now and the API server's answer; for a
// create, the fields of the object it would create; for a delete or an
// eviction, the object that would go.
type PlanItem struct {
	Object journal.Object `json:"object"`
	// Op is create, patch, delete, evict, or (without an API answer) exec
	// or collect.
	Op     string        `json:"op"`
	Fields []FieldChange `json:"fields,omitempty"`
	// Detail is the change in the journal's words.
	Detail string `json:"detail,omitempty"`
}

// FieldChange is one field of an object: its value before and after
// (absent: null).
type FieldChange struct {
	// Field is a path such as metadata.labels["kdfir.io/quarantine"] or
	// spec.taints.
	Field string `json:"field"`
	From  any    `json:"from"`
	To    any    `json:"to"`
}

// dryAnswer is one dry-run request and the API server's answer, with the
// object as it was just before (for a patch or a delete).
type dryAnswer struct {
	method, path  string
	before, after []byte
}

// recorder keeps the API server's answers to the dry-run requests made
// through a client.
type recorder struct {
	rt  http.RoundTripper
	mu  *sync.Mutex
	out *[]dryAnswer
}

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if !slices.Contains(req.URL.Query()["dryRun"], "All") {
		return r.rt.RoundTrip(req)
	}
	a := dryAnswer{method: req.Method, path: req.URL.Path}
	if req.Method == http.MethodPatch || req.Method == http.MethodPut || req.Method == http.MethodDelete {
		// The object as it is now, read through the same connection and
		// credentials, to compare with the answer.
		get := req.Clone(req.Context())
		get.Method, get.Body, get.ContentLength, get.GetBody = http.MethodGet, http.NoBody, 0, nil
		get.URL = &url.URL{Scheme: req.URL.Scheme, Host: req.URL.Host, Path: req.URL.Path}
		get.Header.Del("Content-Type")
		if resp, err := r.rt.RoundTrip(get); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				a.before = b
			}
		}
	}
	resp, err := r.rt.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return resp, err
	}
	if resp.StatusCode < 300 {
		a.after = b
		r.mu.Lock()
		*r.out = append(*r.out, a)
		r.mu.Unlock()
	}
	return resp, nil
}

// dryRunEnv returns an Env whose client records the API server's answers
// to dry-run requests, and a function that turns them into the plan. With
// no client configuration (a fake client), the plan has only the journal's
// changes.
func (r *Runner) dryRunEnv() (Env, func(changes []journal.Change) []PlanItem) {
	var mu sync.Mutex
	var answers []dryAnswer
	env := r.env()
	if r.Config != nil {
		cfg := rest.CopyConfig(r.Config)
		cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return recorder{rt: rt, mu: &mu, out: &answers} })
		if cs, err := kubernetes.NewForConfig(cfg); err == nil {
			env.Client = cs
		}
	}
	return env, func(changes []journal.Change) []PlanItem {
		mu.Lock()
		defer mu.Unlock()
		return buildPlan(answers, changes)
	}
}

// buildPlan turns the dry-run answers into plan items, one per object and
// operation, with the journal's words for each, and adds the journal's
// changes that made no API request (exec).
func buildPlan(answers []dryAnswer, changes []journal.Change) []PlanItem {
	plan := []PlanItem{}
	index := map[string]int{}
	for _, a := range answers {
		item, ok := planItem(a)
		if !ok {
			continue
		}
		k := item.Op + " " + item.Object.String()
		if i, seen := index[k]; seen {
			plan[i].Fields = mergeFields(plan[i].Fields, item.Fields)
			continue
		}
		index[k] = len(plan)
		plan = append(plan, item)
	}
	for _, c := range changes {
		op := c.Op
		k := op + " " + c.Object.String()
		i, seen := index[k]
		if !seen {
			index[k] = len(plan)
			plan = append(plan, PlanItem{Object: c.Object, Op: op, Detail: c.Detail})
			continue
		}
		if plan[i].Detail == "" {
			plan[i].Detail = c.Detail
		} else if !strings.Contains(plan[i].Detail, c.Detail) {
			plan[i].Detail += "; " + c.Detail
		}
	}
	return plan
}

// mergeFields keeps the first From and the last To of each field.
func mergeFields(a, b []FieldChange) []FieldChange {
	for _, f := range b {
		i := slices.IndexFunc(a, func(x FieldChange) bool { return x.Field == f.Field })
		if i < 0 {
			a = append(a, f)
		} else {
			a[i].To = f.To
		}
	}
	return a
}

// planItem reads one answer: the object from the request path and the
// answer, the operation from the method, and the fields that change.
func planItem(a dryAnswer) (PlanItem, bool) {
	obj, sub := objectFromPath(a.path)
	if obj.Kind == "" {
		return PlanItem{}, false
	}
	var after map[string]any
	_ = json.Unmarshal(a.after, &after)
	item := PlanItem{Object: obj}
	switch {
	case sub == "eviction":
		item.Op = "evict"
		return item, true
	case sub != "":
		return PlanItem{}, false
	case a.method == http.MethodPost:
		item.Op = "create"
		if md, ok := after["metadata"].(map[string]any); ok {
			item.Object.Name, _ = md["name"].(string)
		}
		item.Fields = diff(nil, after)
	case a.method == http.MethodDelete:
		item.Op = "delete"
	default:
		item.Op = "patch"
		var before map[string]any
		_ = json.Unmarshal(a.before, &before)
		item.Fields = diff(before, after)
		if len(item.Fields) == 0 {
			return PlanItem{}, false
		}
	}
	return item, true
}

// objectFromPath reads /api/v1/namespaces/NS/pods/NAME[/SUB] and
// /apis/GROUP/VERSION/... into the object and the subresource.
func objectFromPath(p string) (journal.Object, string) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	var obj journal.Object
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		obj.APIVersion, parts = parts[1], parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		obj.APIVersion, parts = parts[1]+"/"+parts[2], parts[3:]
	default:
		return journal.Object{}, ""
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) != 2 {
		obj.Namespace, parts = parts[1], parts[2:]
	}
	if len(parts) == 0 {
		return journal.Object{}, ""
	}
	kind, ok := kinds[parts[0]]
	if !ok {
		return journal.Object{}, ""
	}
	obj.Kind = kind
	if len(parts) > 1 {
		obj.Name = parts[1]
	}
	sub := ""
	if len(parts) > 2 {
		sub = parts[2]
	}
	return obj, sub
}

// kinds are the resources the actions change.
var kinds = map[string]string{
	"pods": "Pod", "namespaces": "Namespace", "nodes": "Node", "networkpolicies": "NetworkPolicy",
}

// volatile are the fields the API server sets by itself, and those
// that name the object, which the plan item shows already; a plan leaves
// them out.
var volatile = []string{"apiVersion", "kind", "metadata.name", "metadata.namespace", "metadata.resourceVersion", "metadata.managedFields", "metadata.generation", "metadata.uid",
	"metadata.creationTimestamp", "metadata.deletionTimestamp", "metadata.deletionGracePeriodSeconds", "status"}

// diff lists the fields that differ between two objects, leaves first,
// sorted; a list is one field.
func diff(before, after map[string]any) []FieldChange {
	fb, fa := map[string]any{}, map[string]any{}
	flatten("", before, fb)
	flatten("", after, fa)
	var out []FieldChange
	seen := map[string]bool{}
	for _, m := range []map[string]any{fb, fa} {
		for k := range m {
			if seen[k] || isVolatile(k) {
				continue
			}
			seen[k] = true
			from, to := fb[k], fa[k]
			if jsonEqual(from, to) {
				continue
			}
			out = append(out, FieldChange{Field: k, From: from, To: to})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

func isVolatile(path string) bool {
	for _, v := range volatile {
		if path == v || strings.HasPrefix(path, v+".") || strings.HasPrefix(path, v+"[") {
			return true
		}
	}
	return false
}

func flatten(prefix string, v any, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok {
		if prefix != "" {
			out[prefix] = v
		}
		return
	}
	if len(m) == 0 && prefix != "" {
		out[prefix] = m
		return
	}
	for k, x := range m {
		flatten(joinPath(prefix, k), x, out)
	}
}

// joinPath appends a key: .key, or ["key"] when it holds a dot or a slash
// (labels, annotations).
func joinPath(prefix, key string) string {
	if strings.ContainsAny(key, "./ ") {
		return fmt.Sprintf("%s[%q]", prefix, key)
	}
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
