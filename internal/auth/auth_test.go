package auth

import (
	"strings"
	"testing"
)

func TestGenerateLookupAndScopes(t *testing.T) {
	secret, hash, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(hash, secret) || !strings.HasPrefix(secret, "kdfir_") {
		t.Fatalf("hash %q leaks or secret %q malformed", hash, secret)
	}
	k := &Key{Name: "sentinel", Hash: hash, Scopes: []string{"collect-pod", ScopeAlerts}}
	a, err := New([]*Key{k, {Name: "other", Hash: mustHash(t), Scopes: []string{ScopeAll}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Lookup(secret); got != k {
		t.Fatalf("Lookup(secret) = %v", got)
	}
	for _, bad := range []string{"", "kdfir_wrong", secret + "x", hash} {
		if a.Lookup(bad) != nil {
			t.Errorf("Lookup(%q) found a key", bad)
		}
	}
	if !k.Allows("collect-pod") || k.Allows("exec-pod") || !k.Allows(ScopeAlerts) {
		t.Fatal("scopes wrong")
	}
}

func mustHash(t *testing.T) string {
	_, h, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRateLimit(t *testing.T) {
	a, err := New([]*Key{{Name: "k", Hash: mustHash(t), RatePerSecond: 1, Burst: 3}})
	if err != nil {
		t.Fatal(err)
	}
	k := a.keys[0]
	allowed := 0
	for range 10 {
		if a.Allow(k) {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("allowed %d of 10 with burst 3", allowed)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	h := mustHash(t)
	for name, keys := range map[string][]*Key{
		"plain key as hash": {{Name: "a", Hash: "kdfir_abc"}},
		"duplicate":         {{Name: "a", Hash: h}, {Name: "a", Hash: h}},
		"no name":           {{Hash: h}},
	} {
		if _, err := New(keys); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
