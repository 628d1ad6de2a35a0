package config

import (
	"strings"
	"testing"

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
		"kdfir.yaml:4: apiKeys[0].hash":      strings.Replace(good, "hash: "+hash, "hash: kdfir_plaintextkey", 1),
		"kdfir.yaml:5: apiKeys[0].scopes[1]": strings.Replace(good, "[alerts, collect-pod]", "[alerts, nuke]", 1),
		"kdfir.yaml:6: apiKeys[0].cluster":   strings.Replace(good, "cluster: prod", "cluster: nope", 1),
		"kdfir.yaml:1: listen":               strings.Replace(good, "127.0.0.1:8443", "8443", 1),
		"line 15: field bogus not found":     good + "bogus: 1\n",
		"kdfir.yaml:13: alerts.dedupeWindow": strings.Replace(good, "10m", "soon", 1),
	}
	for want, src := range bad {
		_, err := Parse("kdfir.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want error containing %q, got %v", want, err)
		}
	}
}
