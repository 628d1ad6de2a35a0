package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
)

// OIDC configures the console's OpenID Connect sign-in:
//
//	oidc:
//	  name: Entra ID                      # the button says "Sign in with Entra ID"
//	  issuer: https://login.microsoftonline.com/TENANT-ID/v2.0
//	  clientID: 00000000-0000-0000-0000-000000000000
//	  clientSecretFile: /etc/kdfir/oidc-secret   # or clientSecret, or clientSecretEnv
//	  redirectURL: https://kdfir.example.com/v1/session/oidc/callback
//	  scopes: [openid, profile, email]    # openid is always asked for
//	  groupsClaim: groups                 # default groups
//	  usernameClaim: preferred_username   # default preferred_username, then email, then sub
//	  groups:                             # a group's name or Entra object id → what it grants
//	    7f8e...-soc-analysts: {scopes: [read, triage]}
//	    2c1d...-responders:   {scopes: [read, triage, isolate-pod, revert], cluster: prod}
//
// A user's session has the union of the scopes of the mapped groups they
// are in; a user in none is refused.
type OIDC struct {
	Name             string               `json:"name,omitempty" yaml:"name"`
	Issuer           string               `json:"issuer" yaml:"issuer"`
	ClientID         string               `json:"clientID" yaml:"clientID"`
	ClientSecret     string               `json:"clientSecret,omitempty" yaml:"clientSecret"`
	ClientSecretFile string               `json:"clientSecretFile,omitempty" yaml:"clientSecretFile"`
	ClientSecretEnv  string               `json:"clientSecretEnv,omitempty" yaml:"clientSecretEnv"`
	RedirectURL      string               `json:"redirectURL" yaml:"redirectURL"`
	Scopes           []string             `json:"scopes,omitempty" yaml:"scopes"`
	GroupsClaim      string               `json:"groupsClaim,omitempty" yaml:"groupsClaim"`
	UsernameClaim    string               `json:"usernameClaim,omitempty" yaml:"usernameClaim"`
	Groups           map[string]OIDCGroup `json:"groups" yaml:"groups"`
}

// OIDCGroup is what membership of one group grants: API scopes, and
// optionally a binding to one cluster, as an API key's cluster does.
type OIDCGroup struct {
	Scopes  []string `json:"scopes" yaml:"scopes"`
	Cluster string   `json:"cluster,omitempty" yaml:"cluster"`
}

// OIDCCallbackPath is where kdfir serve receives the provider's answer;
// redirectURL must end with it.
const OIDCCallbackPath = "/v1/session/oidc/callback"

// OIDCPrincipalPrefix starts the name of every OIDC session's principal
// (oidc:alice@example.com), so no API key may be named with it.
const OIDCPrincipalPrefix = "oidc:"

// DisplayName is the provider's name on the sign-in button: name, or
// "Entra ID" for Microsoft's issuer, or the issuer's host.
func (o *OIDC) DisplayName() string {
	if o.Name != "" {
		return o.Name
	}
	u, err := url.Parse(o.Issuer)
	if err != nil {
		return o.Issuer
	}
	if strings.EqualFold(u.Hostname(), "login.microsoftonline.com") {
		return "Entra ID"
	}
	return u.Host
}

// GroupsClaimOrDefault returns the claim that lists the user's groups.
func (o *OIDC) GroupsClaimOrDefault() string {
	if o.GroupsClaim == "" {
		return "groups"
	}
	return o.GroupsClaim
}

// ScopesWithOpenID returns the scopes to ask for, openid first.
func (o *OIDC) ScopesWithOpenID() []string {
	if len(o.Scopes) == 0 {
		return []string{"openid", "profile", "email"}
	}
	out := []string{"openid"}
	for _, s := range o.Scopes {
		if s != "openid" {
			out = append(out, s)
		}
	}
	return out
}

// Secret returns the client secret from clientSecret, clientSecretFile or
// the variable clientSecretEnv names; "" for a public client (PKCE only).
func (o *OIDC) Secret() (string, error) {
	switch {
	case o.ClientSecretFile != "":
		b, err := os.ReadFile(o.ClientSecretFile)
		if err != nil {
			return "", fmt.Errorf("oidc.clientSecretFile: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("oidc.clientSecretFile: %s is empty", o.ClientSecretFile)
		}
		return s, nil
	case o.ClientSecretEnv != "":
		s := os.Getenv(o.ClientSecretEnv)
		if s == "" {
			return "", fmt.Errorf("oidc.clientSecretEnv: $%s is not set", o.ClientSecretEnv)
		}
		return s, nil
	}
	return o.ClientSecret, nil
}

// validateKeyNames keeps API key names apart from the journal's other
// actors: OIDC sessions (oidc:<user>), playbooks (playbook:<name>) and CLI
// users (<user>@<host>), so that an actor's kind shows in its name.
func (s *Serve) validateKeyNames() error {
	for i, k := range s.APIKeys {
		if k == nil {
			continue
		}
		field := fmt.Sprintf("apiKeys[%d].name", i)
		switch {
		case strings.HasPrefix(k.Name, OIDCPrincipalPrefix):
			return fieldErrorf(field, "%q: names starting with %q are kept for OIDC sessions", k.Name, OIDCPrincipalPrefix)
		case strings.HasPrefix(k.Name, "playbook:"):
			return fieldErrorf(field, "%q: names starting with \"playbook:\" are kept for playbooks", k.Name)
		case strings.Contains(k.Name, "@"):
			return fieldErrorf(field, "%q: names with \"@\" are kept for CLI users (user@host) in the journal", k.Name)
		}
	}
	return nil
}

func (s *Serve) validateOIDC() error {
	if err := s.validateKeyNames(); err != nil {
		return err
	}
	o := s.OIDC
	if o == nil {
		return nil
	}
	if err := checkURL(o.Issuer); err != nil {
		return fieldErrorf("oidc.issuer", "%v", err)
	}
	if o.ClientID == "" {
		return fieldErrorf("oidc.clientID", "is required (the application's client id)")
	}
	n := 0
	for _, v := range []string{o.ClientSecret, o.ClientSecretFile, o.ClientSecretEnv} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return fieldErrorf("oidc.clientSecret", "give one of clientSecret, clientSecretFile and clientSecretEnv")
	}
	if o.RedirectURL == "" {
		return fieldErrorf("oidc.redirectURL", "is required: https://HOST%s, as registered with the provider", OIDCCallbackPath)
	}
	if err := checkURL(o.RedirectURL); err != nil {
		return fieldErrorf("oidc.redirectURL", "%v", err)
	}
	if u, _ := url.Parse(o.RedirectURL); u.Path != OIDCCallbackPath {
		return fieldErrorf("oidc.redirectURL", "path must be %s, where kdfir serve receives the answer, not %q", OIDCCallbackPath, u.Path)
	}
	for i, sc := range o.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \t") {
			return fieldErrorf(fmt.Sprintf("oidc.scopes[%d]", i), "%q is not one scope", sc)
		}
	}
	if len(o.Groups) == 0 {
		return fieldErrorf("oidc.groups", "map at least one group to scopes: nobody could sign in")
	}
	names := make([]string, 0, len(o.Groups))
	for g := range o.Groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		m := o.Groups[g]
		p := "oidc.groups." + g
		if strings.TrimSpace(g) == "" {
			return fieldErrorf("oidc.groups", "empty group name")
		}
		if len(m.Scopes) == 0 {
			return fieldErrorf(p+".scopes", "group %q grants no scopes", g)
		}
		for j, sc := range m.Scopes {
			if !slices.Contains(Scopes, sc) {
				return fieldErrorf(fmt.Sprintf("%s.scopes[%d]", p, j), "unknown scope %q (known: %s)", sc, strings.Join(Scopes, ", "))
			}
		}
		if m.Cluster != "" {
			if _, ok := s.FindCluster(m.Cluster); !ok {
				return fieldErrorf(p+".cluster", "cluster %q is not in clusters", m.Cluster)
			}
		}
	}
	return nil
}

// checkURL accepts an absolute https URL, or http to a loopback address.
func checkURL(raw string) error {
	if raw == "" {
		return errors.New("is required")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return fmt.Errorf("%q is not an https:// URL", raw)
	case u.Scheme == "http" && !IsLoopbackHost(u.Host):
		return fmt.Errorf("%q: plain http is allowed only to a loopback address", raw)
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q has a query or fragment", raw)
	}
	return nil
}
