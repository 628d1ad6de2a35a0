package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestOIDCConfig(t *testing.T) {
	good := `clusters:
- {name: prod, kubeconfig: /x}
oidc:
  issuer: https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0
  clientID: app
  clientSecretEnv: KDFIR_TEST_OIDC_SECRET
  redirectURL: https://kdfir.example.com/v1/session/oidc/callback
  scopes: [profile, email]
  groups:
    soc: {scopes: [read, triage]}
    responders: {scopes: [isolate-pod], cluster: prod}
`
	c, err := Parse("kdfir.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	o := c.OIDC
	if diff := cmp.Diff([]string{"openid", "profile", "email"}, o.ScopesWithOpenID()); diff != "" {
		t.Errorf("scopes (-want +got)\n%s", diff)
	}
	if o.DisplayName() != "Entra ID" || o.GroupsClaimOrDefault() != "groups" || o.Groups["responders"].Cluster != "prod" {
		t.Errorf("oidc = %+v (%s)", o, o.DisplayName())
	}
	if _, err := o.Secret(); err == nil || !strings.Contains(err.Error(), "$KDFIR_TEST_OIDC_SECRET is not set") {
		t.Errorf("unset secret variable: %v", err)
	}
	t.Setenv("KDFIR_TEST_OIDC_SECRET", "s3cret")
	if s, err := o.Secret(); err != nil || s != "s3cret" {
		t.Errorf("secret from the environment: %q, %v", s, err)
	}
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := (&OIDC{ClientSecretFile: f}).Secret(); err != nil || s != "from-file" {
		t.Errorf("secret from a file: %q, %v", s, err)
	}

	bad := map[string]string{
		"kdfir.yaml:4: oidc.issuer: \"http://idp.example.com\": plain http is allowed only to a loopback address": strings.Replace(good, "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0", "http://idp.example.com", 1),
		"kdfir.yaml:5: oidc.clientID: is required":                                                                strings.Replace(good, "clientID: app", "clientID: \"\"", 1),
		"oidc.clientSecret: give one of clientSecret, clientSecretFile and clientSecretEnv":                       strings.Replace(good, "  clientSecretEnv:", "  clientSecret: x\n  clientSecretEnv:", 1),
		"kdfir.yaml:7: oidc.redirectURL: path must be /v1/session/oidc/callback":                                  strings.Replace(good, "/v1/session/oidc/callback", "/callback", 1),
		"kdfir.yaml:10: oidc.groups.soc.scopes[1]: unknown scope \"nuke\"":                                        strings.Replace(good, "[read, triage]", "[read, nuke]", 1),
		"kdfir.yaml:11: oidc.groups.responders.cluster: cluster \"dev\" is not in clusters":                       strings.Replace(good, "cluster: prod", "cluster: dev", 1),
		"oidc.groups.soc.scopes: group \"soc\" grants no scopes":                                                  strings.Replace(good, "[read, triage]", "[]", 1),
		"oidc.groups: map at least one group to scopes":                                                           good[:strings.Index(good, "  groups:")],
		"kdfir.yaml:2: apiKeys[0].name: \"oidc:x\": names starting with \"oidc:\" are kept for OIDC sessions":     "apiKeys:\n- {name: \"oidc:x\", hash: \"sha256:00:" + strings.Repeat("0", 64) + "\", scopes: [read]}\n",
		"kdfir.yaml:2: apiKeys[0].name: \"playbook:x\": names starting with \"playbook:\" are kept for playbooks": "apiKeys:\n- {name: \"playbook:x\", hash: \"sha256:00:" + strings.Repeat("0", 64) + "\", scopes: [read]}\n",
		"kdfir.yaml:2: apiKeys[0].name: \"bob@laptop\": names with \"@\" are kept for CLI users":                  "apiKeys:\n- {name: \"bob@laptop\", hash: \"sha256:00:" + strings.Repeat("0", 64) + "\", scopes: [read]}\n",
	}
	for want, src := range bad {
		_, err := Parse("kdfir.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error containing %q, got %v", want, err)
		}
	}
}
