package alert

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const aksProd = "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-prod/providers/Microsoft.ContainerService/managedClusters/aks-prod"

func parseFile(t *testing.T, name string) *Alert {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return a
}

var sortEntities = cmpopts.SortSlices(func(a, b Entity) bool { return a.Key() < b.Key() })

func TestDefenderAlert(t *testing.T) {
	a := parseFile(t, "defender-alert.json")
	if a.Source != SourceDefender || a.Severity != SeverityHigh || a.AlertType != "K8S.NODE_SuspectedShellExecution" ||
		a.SourceID != "2517000000000000000_abcd" || a.Cluster != aksProd || a.Title != "Suspicious command execution in a container" {
		t.Fatalf("header = %+v", a)
	}
	want := []Entity{
		{Type: EntityCluster, Name: "aks-prod", Cluster: aksProd},
		{Type: EntityNamespace, Name: "shop", Cluster: aksProd},
		{Type: EntityPod, Name: "ubuntu-7d9", Namespace: "shop", Cluster: aksProd},
		{Type: EntityContainer, Name: "ubuntu", Pod: "ubuntu-7d9", Namespace: "shop", Cluster: aksProd, ImageID: "sha256:0123456789abcdef"},
		{Type: EntityImage, ImageID: "sha256:0123456789abcdef"},
		{Type: EntityDeployment, Name: "web", Namespace: "shop", Cluster: aksProd},
		{Type: EntityNode, Name: "aks-nodepool1-0", Cluster: aksProd},
	}
	if diff := cmp.Diff(want, a.Entities, sortEntities); diff != "" {
		t.Fatalf("entities (-want +got):\n%s", diff)
	}
	if a.Fields["Command"] != "sh -c id" {
		t.Fatalf("extendedProperties not in Fields: %v", a.Fields)
	}
}

func TestSentinelAlertWithStringEntities(t *testing.T) {
	a := parseFile(t, "sentinel-alert.json")
	const aksDev = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-dev"
	if a.Source != SourceSentinel || a.Severity != SeverityMedium || a.Cluster != aksDev {
		t.Fatalf("header = %+v", a)
	}
	pods := a.OfType(EntityPod)
	if len(pods) != 1 || pods[0] != (Entity{Type: EntityPod, Name: "evil-pod", Namespace: "kube-system", Cluster: aksDev}) {
		t.Fatalf("pods = %+v", pods)
	}
	if a.Fields["Container name"] != "x" {
		t.Fatalf("ExtendedProperties string not decoded: %v", a.Fields)
	}
}

func TestSentinelIncident(t *testing.T) {
	a := parseFile(t, "sentinel-incident.json")
	if a.Source != SourceSentinel || a.SourceID != "9f2b" || a.Severity != SeverityHigh || a.AlertType != "KdfirExec" {
		t.Fatalf("header = %+v", a)
	}
	want := []Entity{
		{Type: EntityPod, Name: "api-1", Namespace: "payments", Cluster: "prod"},
		{Type: EntityIP, Address: "203.0.113.7"},
	}
	if diff := cmp.Diff(want, a.Entities, sortEntities); diff != "" {
		t.Fatalf("entities (-want +got):\n%s", diff)
	}
}

func TestFalco(t *testing.T) {
	a := parseFile(t, "falco.json")
	if a.Source != SourceFalco || a.Title != "Terminal shell in container" || a.Severity != SeverityInformational && a.Severity != SeverityMedium {
		t.Fatalf("header = %+v", a)
	}
	if a.SourceID != "8c7e6d5f-0000-4000-8000-123456789abc" {
		t.Fatalf("uuid = %q", a.SourceID)
	}
	pods := a.OfType(EntityPod)
	if len(pods) != 1 || pods[0].Namespace != "shop" || pods[0].Name != "web-7f9" {
		t.Fatalf("pods = %+v", pods)
	}
	cs := a.OfType(EntityContainer)
	if len(cs) != 1 || cs[0].Image != "docker.io/library/nginx:1.27" || cs[0].Name != "app" {
		t.Fatalf("containers = %+v", cs)
	}
}

func TestKdfirAlert(t *testing.T) {
	a := parseFile(t, "kdfir.json")
	if a.Source != SourceKdfir || a.Rule != "k8s-exec-into-pod" || len(a.ReportIDs) != 1 || !a.HasType(EntityPod) {
		t.Fatalf("alert = %+v", a)
	}
}

func TestFlatEntities(t *testing.T) {
	ents, err := ParseEntities([]byte(`[{"Name":"web-1","Type":"K8s-pod","Namespace":"shop"},{"Name":"node-a","Type":"K8s-node"},{"Name":"shop","Type":"k8s-namespace"},{"Type":"unknown-thing"}]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entity{{Type: EntityPod, Name: "web-1", Namespace: "shop"}, {Type: EntityNode, Name: "node-a"}, {Type: EntityNamespace, Name: "shop"}}
	if diff := cmp.Diff(want, ents); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

// A cycle of links cannot hang the parser: a link to an entity of the
// wrong type is refused first, and untyped nested objects stop at a depth.
func TestReferenceCycleDoesNotHang(t *testing.T) {
	_, err := ParseEntities([]byte(`[{"$id":"1","Name":"a","Type":"K8s-namespace","Cluster":{"$ref":"2"}},{"$id":"2","Type":"K8s-cluster","CloudResource":{"$ref":"1"},"Name":"c"}]`))
	if err == nil || !strings.Contains(err.Error(), `CloudResource links to a "K8s-namespace" entity`) {
		t.Fatalf("err = %v", err)
	}
	ents, err := ParseEntities([]byte(`[{"$id":"1","Name":"p","Type":"K8s-pod","Namespace":{"$id":"2","Name":"ns","Cluster":{"$ref":"2"}}}]`))
	if err != nil || len(ents) != 1 || ents[0].Namespace != "ns" {
		t.Fatalf("ents = %+v, err = %v", ents, err)
	}
}

// The flat list the original AKS function documents: no links, the pod's
// namespace and the cluster come from their sibling entities.
func TestFlatEntitiesFromSiblings(t *testing.T) {
	const id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/prod"
	ents, err := ParseEntities([]byte(`[{"Name":"web-1","Type":"K8s-pod"},{"Name":"shop","Type":"K8s-namespace"},{"Name":"prod","Type":"K8s-cluster"},{"ResourceId":"` + id + `","Type":"azure-resource"}]`))
	if err != nil {
		t.Fatal(err)
	}
	// The K8s-cluster by name and its azure-resource are one cluster.
	if ents[0].Namespace != "shop" || ents[0].Cluster != id {
		t.Fatalf("pod = %+v", ents[0])
	}
	ents, err = ParseEntities([]byte(`[{"Name":"web-1","Type":"K8s-pod"},{"Name":"shop","Type":"K8s-namespace"},{"ResourceId":"` + id + `","Type":"azure-resource"}]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entity{{Type: EntityPod, Name: "web-1", Namespace: "shop", Cluster: id}, {Type: EntityNamespace, Name: "shop", Cluster: id}, {Type: EntityCluster, Name: "prod", Cluster: id}}
	if diff := cmp.Diff(want, ents); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestEntityLinkErrors(t *testing.T) {
	for name, c := range map[string]struct{ body, msg string }{
		"two namespaces": {`[{"Name":"web-1","Type":"K8s-pod"},{"Name":"shop","Type":"K8s-namespace"},{"Name":"bank","Type":"K8s-namespace"}]`,
			`pod "web-1" has no Namespace link and the alert names 2 namespaces ("shop", "bank")`},
		"two clusters": {`[{"Name":"shop","Type":"K8s-namespace"},{"Name":"a","Type":"K8s-cluster"},{"Name":"b","Type":"K8s-cluster"}]`,
			`namespace "shop" has no Cluster link and the alert names 2 clusters ("a", "b")`},
		"namespace is a pod": {`[{"$id":"1","Name":"x","Type":"K8s-pod"},{"$id":"2","Name":"web-1","Type":"K8s-pod","Namespace":{"$ref":"1"}}]`,
			`K8s-pod "web-1": Namespace links to a "K8s-pod" entity, want k8s-namespace`},
		"container pod is a node": {`[{"$id":"1","Name":"n","Type":"K8s-node"},{"Name":"c","Type":"container","Pod":{"$ref":"1"}}]`,
			`container "c": Pod links to a "K8s-node" entity`},
	} {
		_, err := ParseEntities([]byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want %q", name, err, c.msg)
		}
	}
	// Two namespaces are fine when each pod links its own.
	ents, err := ParseEntities([]byte(`[{"$id":"1","Name":"shop","Type":"K8s-namespace"},{"$id":"2","Name":"bank","Type":"K8s-namespace"},{"Name":"web-1","Type":"K8s-pod","Namespace":{"$ref":"2"}}]`))
	if err != nil || ents[2].Namespace != "bank" {
		t.Fatalf("ents = %+v, err = %v", ents, err)
	}
}

func TestFindEntities(t *testing.T) {
	for name, body := range map[string]string{
		"sentinel alert":    `{"AlertDisplayName":"x","Entities":[{"Name":"p","Type":"K8s-pod"}]}`,
		"sentinel incident": `{"object":{"properties":{"relatedEntities":[{"kind":"K8s-pod","properties":{"Name":"p"}}]}}}`,
		"defender alert":    `{"properties":{"entities":[{"Name":"p","Type":"K8s-pod"}]}}`,
		"nested alert":      `{"action":"isolatepod","alert":{"Entities":[{"Name":"p","Type":"K8s-pod"}]}}`,
	} {
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		v, ok := FindEntities(m)
		b, _ := json.Marshal(v)
		ents, err := ParseEntities(b)
		if !ok || err != nil || len(ents) != 1 || ents[0].Name != "p" || ents[0].Type != EntityPod {
			t.Errorf("%s: %v %v %+v", name, ok, err, ents)
		}
	}
	if _, ok := FindEntities(map[string]any{"action": "x"}); ok {
		t.Error("found entities in a body without any")
	}
}

func TestBadInput(t *testing.T) {
	for name, body := range map[string]string{
		"not json":       `{`,
		"unknown format": `{"hello":"world"}`,
		"kdfir no title": `{"schema":"kdfir.io/alert/v1","entities":[]}`,
		"bad entities":   `{"SystemAlertId":"1","AlertDisplayName":"x","Entities":{"a":1}}`,
	} {
		if _, err := Parse([]byte(body)); err == nil {
			t.Errorf("%s: Parse succeeded", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, n := range []string{"defender-alert.json", "sentinel-alert.json", "sentinel-incident.json", "falco.json", "kdfir.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Parse(b)
	})
}
