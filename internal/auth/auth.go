// Package auth is kdfir serve's API-key authentication: keys are random,
// shown once, and stored only as salted hashes, each with a name and the
// scopes it grants.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/time/rate"
)

// Scopes beyond action names.
const (
	ScopeAll     = "*"       // everything
	ScopeAlerts  = "alerts"  // POST /v1/alerts
	ScopeAudit   = "audit"   // POST /v1/audit (the API server's audit webhook)
	ScopeRead    = "read"    // GET endpoints
	ScopeApprove = "approve" // approve held playbook steps
	ScopeTriage  = "triage"  // change alerts' status, owner, classification, comments
	ScopeHunt    = "hunt"    // run KQL hunts and test rules over the event store
	ScopeRevert  = "revert"  // revert actions the key may also take
	// ScopeRevertAny reverts any action, whatever its kind.
	ScopeRevertAny = "revert-any"
)

// Key is one configured API key.
type Key struct {
	Name string `json:"name" yaml:"name"`
	// Hash is "sha256:SALT:HEX", as `kdfir keys create` prints it.
	Hash string `json:"hash" yaml:"hash"`
	// Scopes are action names (isolate-pod, collect-pod, ...) and the
	// Scope constants.
	Scopes []string `json:"scopes" yaml:"scopes"`
	// Cluster binds the key to one cluster: it is assumed for what the key
	// sends without naming one (Falco events, audit webhook batches), and
	// the key may act on no other.
	Cluster string `json:"cluster,omitempty" yaml:"cluster"`
	// RatePerSecond and Burst limit the key's requests (default 20 and 40).
	RatePerSecond float64 `json:"ratePerSecond,omitempty" yaml:"ratePerSecond"`
	Burst         int     `json:"burst,omitempty" yaml:"burst"`
}

// Allows reports whether the key grants scope.
func (k *Key) Allows(scope string) bool {
	return slices.Contains(k.Scopes, ScopeAll) || slices.Contains(k.Scopes, scope)
}

// Generate makes a new key and its hash line. The key is 32 random bytes,
// prefixed "kdfir_" so it is recognisable in secret scanners.
func Generate() (secret, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	secret = "kdfir_" + base64.RawURLEncoding.EncodeToString(b)
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", "", err
	}
	return secret, hashWith(hex.EncodeToString(salt), secret), nil
}

// Keys are high-entropy, so one salted SHA-256 is enough: there is nothing
// to brute-force.
func hashWith(salt, secret string) string {
	sum := sha256.Sum256([]byte(salt + ":" + secret))
	return "sha256:" + salt + ":" + hex.EncodeToString(sum[:])
}

// ValidateHash checks a hash line's form.
func ValidateHash(h string) error {
	parts := strings.Split(h, ":")
	if len(parts) != 3 || parts[0] != "sha256" || len(parts[2]) != 64 {
		return errors.New(`hash must be "sha256:SALT:HEX" as printed by kdfir keys create (never the key itself)`)
	}
	if _, err := hex.DecodeString(parts[2]); err != nil {
		return fmt.Errorf("hash: %w", err)
	}
	return nil
}

// Authenticator checks presented keys against the configured hashes and
// rate-limits each key.
type Authenticator struct {
	keys     []*Key
	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// New returns an Authenticator. It fails on a malformed hash or a
// duplicate name.
func New(keys []*Key) (*Authenticator, error) {
	seen := map[string]bool{}
	for _, k := range keys {
		if k.Name == "" {
			return nil, errors.New("api key without a name")
		}
		if seen[k.Name] {
			return nil, fmt.Errorf("api key %q defined twice", k.Name)
		}
		seen[k.Name] = true
		if err := ValidateHash(k.Hash); err != nil {
			return nil, fmt.Errorf("api key %q: %w", k.Name, err)
		}
	}
	return &Authenticator{keys: keys, limiters: map[string]*rate.Limiter{}}, nil
}

// Lookup returns the key matching secret, or nil. Every configured key is
// compared in constant time.
func (a *Authenticator) Lookup(secret string) *Key {
	if secret == "" {
		return nil
	}
	var found *Key
	for _, k := range a.keys {
		parts := strings.SplitN(k.Hash, ":", 3)
		if subtle.ConstantTimeCompare([]byte(hashWith(parts[1], secret)), []byte(k.Hash)) == 1 {
			found = k
		}
	}
	return found
}

// ByName returns the configured key of that name, or nil.
func (a *Authenticator) ByName(name string) *Key {
	for _, k := range a.keys {
		if k.Name == name {
			return k
		}
	}
	return nil
}

// Allow takes one request from the key's rate budget.
func (a *Authenticator) Allow(k *Key) bool {
	a.mu.Lock()
	l, ok := a.limiters[k.Name]
	if !ok {
		r, b := k.RatePerSecond, k.Burst
		if r <= 0 {
			r = 20
		}
		if b <= 0 {
			b = 2 * int(r)
		}
		l = rate.NewLimiter(rate.Limit(r), b)
		a.limiters[k.Name] = l
	}
	a.mu.Unlock()
	return l.Allow()
}
