package respond

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/kdfir/kdfir/internal/journal"
)

// metaEdit is one label or annotation an action sets (To) or removes (To
// == nil), and its value before (From, nil when absent). An action
// computes its edits from the prior state it journaled and its
// parameters, so Apply and Revert always agree on what it set.
type metaEdit struct {
	Field string // "labels" or "annotations"
	Key   string
	From  *string
	To    *string
}

// diffMeta returns the edits that take cur to want, sorted by key. A nil
// value in want means the key must be absent.
func diffMeta(field string, cur map[string]string, want map[string]*string) []metaEdit {
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []metaEdit
	for _, k := range keys {
		from := lookup(cur, k)
		if !samePtr(from, want[k]) {
			out = append(out, metaEdit{Field: field, Key: k, From: from, To: want[k]})
		}
	}
	return out
}

func lookup(m map[string]string, k string) *string {
	if v, ok := m[k]; ok {
		return &v
	}
	return nil
}

func samePtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func ptr(s string) *string { return &s }

// describe says what an edit does, in a responder's words.
func (m metaEdit) describe() string {
	noun := "label"
	if m.Field == "annotations" {
		noun = "annotation"
	}
	switch {
	case m.To == nil && m.From != nil:
		return fmt.Sprintf("%s %s=%s removed", noun, m.Key, *m.From)
	case m.To != nil && m.From == nil:
		return fmt.Sprintf("%s %s=%s added", noun, m.Key, *m.To)
	case m.To != nil:
		return fmt.Sprintf("%s %s set to %s (was %s)", noun, m.Key, *m.To, *m.From)
	}
	return fmt.Sprintf("%s %s left absent", noun, m.Key)
}

// reversed is the edit that undoes m.
func (m metaEdit) reversed() metaEdit {
	return metaEdit{Field: m.Field, Key: m.Key, From: m.To, To: m.From}
}

// metaPatch is a JSON merge patch of metadata for edits. With rv, the API
// server rejects it with a conflict unless the object still has that
// resourceVersion.
func metaPatch(rv string, edits []metaEdit) map[string]any {
	meta := map[string]any{}
	if rv != "" {
		meta["resourceVersion"] = rv
	}
	for _, e := range edits {
		f, _ := meta[e.Field].(map[string]any)
		if f == nil {
			f = map[string]any{}
			meta[e.Field] = f
		}
		if e.To == nil {
			f[e.Key] = nil
		} else {
			f[e.Key] = *e.To
		}
	}
	return map[string]any{"metadata": meta}
}

// revertMeta works out how to undo edits given the object's current labels
// and annotations: an edit whose value is still the one kdfir set is
// undone; one whose value is back to what it was needs nothing; anything
// else was changed by someone since and is left alone.
func revertMeta(obj journal.Object, edits []metaEdit, labels, annotations map[string]string) (undo []metaEdit, changes []journal.Change, leftAlone []string) {
	for _, e := range edits {
		cur := lookup(labels, e.Key)
		if e.Field == "annotations" {
			cur = lookup(annotations, e.Key)
		}
		switch {
		case samePtr(cur, e.To):
			u := e.reversed()
			undo = append(undo, u)
			changes = append(changes, journal.Change{Object: obj, Op: "patch", Detail: u.describe()})
		case samePtr(cur, e.From):
			// Already as it was.
		default:
			leftAlone = append(leftAlone, fmt.Sprintf("%s: %s %s is now %s, not %s as kdfir set it", obj, singular(e.Field), e.Key, show(cur), show(e.To)))
		}
	}
	return undo, changes, leftAlone
}

func singular(field string) string {
	if field == "annotations" {
		return "annotation"
	}
	return "label"
}

func show(p *string) string {
	if p == nil {
		return "absent"
	}
	return fmt.Sprintf("%q", *p)
}

// testedPatch is a JSON patch that undoes edits only if each value is
// still the one kdfir set: a test operation per edit, then its undoing.
// It is not possible (false) when an edit removed a key, because a JSON
// patch cannot test that a key is absent.
func testedPatch(edits []metaEdit) ([]byte, bool) {
	ops := make([]map[string]any, 0, 2*len(edits))
	for _, e := range edits {
		if e.To == nil {
			return nil, false
		}
		path := "/metadata/" + e.Field + "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(e.Key)
		ops = append(ops, map[string]any{"op": "test", "path": path, "value": *e.To})
		if e.From == nil {
			ops = append(ops, map[string]any{"op": "remove", "path": path})
		} else {
			ops = append(ops, map[string]any{"op": "replace", "path": path, "value": *e.From})
		}
	}
	return mustJSON(ops), len(ops) > 0
}

func editChanges(obj journal.Object, edits []metaEdit) []journal.Change {
	out := make([]journal.Change, 0, len(edits))
	for _, e := range edits {
		out = append(out, journal.Change{Object: obj, Op: "patch", Detail: e.describe()})
	}
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings and Kubernetes objects are marshalled
	}
	return b
}
