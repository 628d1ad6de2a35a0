package respond

import (
	"bytes"
	"encoding/json"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// parsePodTarget splits and validates NAMESPACE/NAME.
func parsePodTarget(target string) (ns, name string, err error) {
	ns, name, ok := strings.Cut(target, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", inputErrorf("invalid pod %q: want NAMESPACE/NAME", target)
	}
	if err := checkNamespace(ns); err != nil {
		return "", "", err
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "", "", inputErrorf("invalid pod name %q: %s", name, errs[0])
	}
	return ns, name, nil
}

func checkNamespace(ns string) error {
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return inputErrorf("invalid namespace name %q: %s", ns, errs[0])
	}
	return nil
}

func checkNodeName(name string) error {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return inputErrorf("invalid node name %q: %s", name, errs[0])
	}
	return nil
}

// checkLabelKey refuses a quarantine label key in a domain Kubernetes
// reserves (kubernetes.io, k8s.io and their subdomains, such as
// pod-security.kubernetes.io): setting one could switch off Pod Security
// or change what the node or the control plane does.
func checkLabelKey(key string) error {
	prefix, _, ok := strings.Cut(key, "/")
	if !ok {
		return nil
	}
	for _, d := range []string{"kubernetes.io", "k8s.io"} {
		if prefix == d || strings.HasSuffix(prefix, "."+d) {
			return inputErrorf("label key %q is reserved for Kubernetes (%s): use kdfir.io/... or a key of your own", key, d)
		}
	}
	return nil
}

// parseLabel splits and validates KEY=VALUE; the value must not be empty.
func parseLabel(s string) (key, value string, err error) {
	key, value, ok := strings.Cut(s, "=")
	if !ok || value == "" {
		return "", "", inputErrorf("invalid label %q: want KEY=VALUE", s)
	}
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		return "", "", inputErrorf("invalid label key %q: %s", key, errs[0])
	}
	if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
		return "", "", inputErrorf("invalid label value %q: %s", value, errs[0])
	}
	return key, value, nil
}

// decodeParams decodes an action's JSON parameters strictly: unknown
// fields are errors. Empty or null parameters leave v as it is.
func decodeParams(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return inputErrorf("invalid parameters: %v", err)
	}
	return nil
}
