package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/config"
)

// How an ID token's claims become a session's principal.
func TestOIDCPrincipal(t *testing.T) {
	base := config.OIDC{Groups: map[string]config.OIDCGroup{
		"soc":      {Scopes: []string{"read", "triage"}},
		"ir-prod":  {Scopes: []string{"read", "isolate-pod"}, Cluster: "prod"},
		"ir-prod2": {Scopes: []string{"revert"}, Cluster: "PROD"},
		"ir-dev":   {Scopes: []string{"isolate-pod"}, Cluster: "dev"},
	}}
	cases := []struct {
		name   string
		cfg    func(*config.OIDC)
		claims map[string]any
		want   *auth.Key
		err    string
	}{
		{name: "union of the groups' scopes", claims: map[string]any{"preferred_username": "alice", "groups": []any{"soc", "ir-prod", "other"}},
			want: &auth.Key{Name: "oidc:alice", Scopes: []string{"isolate-pod", "read", "triage"}, Cluster: "prod"}},
		{name: "one group as a string", claims: map[string]any{"email": "bob@example.com", "groups": "soc"},
			want: &auth.Key{Name: "oidc:bob@example.com", Scopes: []string{"read", "triage"}}},
		{name: "the same cluster in any case", claims: map[string]any{"sub": "s-1", "groups": []any{"ir-prod", "ir-prod2"}},
			want: &auth.Key{Name: "oidc:s-1", Scopes: []string{"isolate-pod", "read", "revert"}, Cluster: "prod"}},
		{name: "two clusters", claims: map[string]any{"sub": "s-2", "groups": []any{"ir-prod", "ir-dev"}},
			err: "user s-2 is in groups bound to different clusters"},
		{name: "no mapped group", claims: map[string]any{"sub": "s-3", "groups": []any{"sales"}},
			err: `user s-3 is in no group that kdfir maps to scopes (claim "groups")`},
		{name: "Entra ID group overage", claims: map[string]any{"sub": "s-4", "_claim_names": map[string]any{"groups": "src1"}},
			err: "too many groups for the ID token to list them"},
		{name: "configured claims", cfg: func(c *config.OIDC) { c.UsernameClaim, c.GroupsClaim = "upn", "roles" },
			claims: map[string]any{"upn": "carol@contoso.com", "preferred_username": "x", "roles": []any{"soc"}, "groups": []any{"ir-prod"}},
			want:   &auth.Key{Name: "oidc:carol@contoso.com", Scopes: []string{"read", "triage"}}},
		{name: "configured username claim missing", cfg: func(c *config.OIDC) { c.UsernameClaim = "upn" },
			claims: map[string]any{"sub": "s-5", "groups": []any{"soc"}}, err: "the ID token has no upn claim"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			oc := &OIDC{cfg: base}
			if tc.cfg != nil {
				tc.cfg(&oc.cfg)
			}
			got, err := oc.principal(tc.claims)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want an error containing %q, got %v, %+v", tc.err, err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("principal (-want +got)\n%s", diff)
			}
		})
	}
}

// kdfir serve starts while the provider cannot be reached; sign-in then
// answers a page that says so, and tries discovery again each time.
func TestOIDCProviderUnreachable(t *testing.T) {
	cfg := config.OIDC{Issuer: "http://127.0.0.1:1", ClientID: "c", RedirectURL: "https://127.0.0.1:8443" + config.OIDCCallbackPath,
		Groups: map[string]config.OIDCGroup{"g": {Scopes: []string{"read"}}}}
	s := &Server{OIDC: NewOIDC(t.Context(), cfg, "", slog.New(slog.DiscardHandler))}
	for i := 0; i < 2; i++ {
		w := httptest.NewRecorder()
		s.oidcLogin(w, httptest.NewRequest("GET", "/v1/session/oidc/login", nil))
		if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "The identity provider cannot be reached") {
			t.Fatalf("login with the provider down: %d %s", w.Code, w.Body)
		}
		if len(w.Result().Cookies()) != 0 {
			t.Fatalf("a sign-in was started: %v", w.Result().Cookies())
		}
	}
}
