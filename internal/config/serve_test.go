package config

import (
	"strings"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/auth"
)

func TestServeConfig(t *testing.T) {
	_, hash, err := auth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	good := `listen: 127.0.0.1:8443
apiKeys:
- name: sentinel
  hash: ` + hash + `
  scopes: [alerts, collect-pod]
  cluster: prod
clusters:
- name: prod
  kubeconfig: /x
  resourceId: /subscriptions/S/resourceGroups/R/providers/Microsoft.ContainerService/managedClusters/Prod
evidence: {default: /tmp/evidence}
exec: {enabled: true, allow: [[ps]]}
alerts: {dedupeWindow: 10m}
audit: {retention: 30d}
`
	c, err := Parse("kdfir.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8443" || len(c.APIKeys) != 1 || c.APIKeys[0].Cluster != "prod" || !c.Exec.Enabled || !c.UseBuiltinRules() {
		t.Fatalf("config = %+v", c)
	}
	if cl, ok := c.FindCluster("/SUBSCRIPTIONS/s/resourcegroups/r/providers/microsoft.containerservice/managedclusters/prod"); !ok || cl.Name != "prod" {
		t.Fatal("cluster not found by resource id without regard to case")
	}
	if cl, ok := c.FindCluster(""); !ok || cl.Name != "prod" {
		t.Fatal("the only cluster is not the default")
	}

	bad := map[string]string{
		"kdfir.yaml:4: apiKeys[0].hash":                          strings.Replace(good, "hash: "+hash, "hash: kdfir_plaintextkey", 1),
		"kdfir.yaml:5: apiKeys[0].scopes[1]":                     strings.Replace(good, "[alerts, collect-pod]", "[alerts, nuke]", 1),
		"kdfir.yaml:6: apiKeys[0].cluster":                       strings.Replace(good, "cluster: prod", "cluster: nope", 1),
		"kdfir.yaml:1: listen":                                   strings.Replace(good, "127.0.0.1:8443", "8443", 1),
		"apiKeys[0].ratePerSecond: 1e+06 is outside 0 to 100000": strings.Replace(good, "  cluster: prod\n", "  cluster: prod\n  ratePerSecond: 1000000\n", 1),
		"line 15: field bogus not found":                         good + "bogus: 1\n",
		"kdfir.yaml:13: alerts.dedupeWindow":                     strings.Replace(good, "10m", "soon", 1),
	}
	for want, src := range bad {
		_, err := Parse("kdfir.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want error containing %q, got %v", want, err)
		}
	}
}

func TestEvidenceAndAKSConfig(t *testing.T) {
	c, err := Parse("kdfir.yaml", []byte(`evidence: {default: /tmp/evidence, ir: azblob://a/c}
`))
	if err != nil || c.Evidence.Destinations["ir"] != "azblob://a/c" || len(c.Evidence.Destinations) != 2 {
		t.Fatalf("flat evidence form: %+v, %v", c.Evidence, err)
	}
	c, err = Parse("kdfir.yaml", []byte(`evidence:
  destinations: {default: /tmp/evidence}
  allowedEndpoints: [https://a.blob.core.windows.net]
  localRoots: [/tmp/evidence]
aks: {route: /api/Respond, compat: original, idempotencyWindow: 1h}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Evidence.Destinations["default"] != "/tmp/evidence" || len(c.Evidence.AllowedEndpoints) != 1 || len(c.Evidence.LocalRoots) != 1 ||
		c.AKS.RouteOrDefault() != "/api/Respond" || c.AKS.Window() != time.Hour || c.AKS.Compat != CompatOriginal {
		t.Fatalf("config = %+v", c)
	}
	if (AKS{}).RouteOrDefault() != DefaultAKSRoute || (AKS{}).Window() != 10*time.Minute {
		t.Fatal("defaults")
	}
	for want, src := range map[string]string{
		"field bogus not found in evidence":                           "evidence:\n  destinations: {default: /x}\n  bogus: 1\n",
		"kdfir.yaml:1: aks.route":                                     "aks: {route: api/x}\n",
		"kdfir.yaml:1: aks.compat: unknown mode \"v2\"":               "aks: {compat: v2}\n",
		"aks.idempotencyWindow: 48h is longer than the max":           "aks: {idempotencyWindow: 48h}\n",
		"evidence.destinations.d: empty destination":                  "evidence:\n  destinations: {d: ''}\n",
		"kdfir.yaml:2: evidence.allowedEndpoints[0]: plain http":      "evidence:\n  allowedEndpoints: [http://169.254.169.254/x]\n",
		"kdfir.yaml:2: evidence.allowedEndpoints[0]: \"acct\" is not": "evidence:\n  allowedEndpoints: [acct]\n",
	} {
		_, err := Parse("kdfir.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want error containing %q, got %v", want, err)
		}
	}
}
