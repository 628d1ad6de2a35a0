package detect

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/audit"
)

const sharedData = "../../../shared/data"

// Falco's audit-rule trace files whose detection the pack covers: the file,
// and the rules of which at least one must fire (or none, for a case Falco
// expects to stay quiet).
var falcoCases = map[string][]string{
	"anonymous_creates_namespace_foo.json":                                   {"k8s-anonymous-request-allowed"},
	"attach_cluster_admin_role.json":                                         {"k8s-cluster-admin-binding"},
	"attach_pod.json":                                                        {"k8s-attach-to-pod"},
	"exec_pod.json":                                                          {"k8s-exec-into-pod"},
	"create_cluster_role_wildcard_resources.json":                            {"k8s-wildcard-clusterrole"},
	"create_cluster_role_wildcard_verbs.json":                                {"k8s-wildcard-clusterrole"},
	"create_nginx_pod_hostnetwork.json":                                      {"k8s-hostnetwork"},
	"create_nginx_pod_privileged.json":                                       {"k8s-privileged-container"},
	"create_nginx_pod_privileged_2nd_container.json":                         {"k8s-privileged-container"},
	"create_nginx_pod_no_secctx_1st_container_privileged_2nd_container.json": {"k8s-privileged-container"},
	"create_nginx_pod_sensitive_mount.json":                                  {"k8s-sensitive-hostpath"},
	"create_nginx_pod_sensitive_mount_2nd_container.json":                    {"k8s-sensitive-hostpath"},
	"create_nginx_service_nodeport.json":                                     {"k8s-exposed-service"},
}

// Falco's near misses: these rules must stay quiet on these files.
var falcoQuiet = map[string]string{
	"create_nginx_pod_nohostnetwork.json":     "k8s-hostnetwork",
	"create_nginx_pod_unprivileged.json":      "k8s-privileged-container",
	"create_nginx_pod_unsensitive_mount.json": "k8s-sensitive-hostpath",
	"create_nginx_service_nonodeport.json":    "k8s-exposed-service",
}

// Panther rule ids whose behaviour the pack covers, and the rules that
// cover them. Every positive test log of these rules, in every envelope
// (EKS, AKS and GKE), must make one of the rules fire.
var pantherRules = map[string][]string{
	"Kubernetes.AdmissionController.Created":   {"k8s-admission-webhook-changed"},
	"Kubernetes.API.AnonymousAccess":           {"k8s-anonymous-request-allowed", "k8s-anonymous-request-denied"},
	"Amazon.EKS.AnonymousAPIAccess":            {"k8s-anonymous-request-allowed", "k8s-anonymous-request-denied"},
	"Kubernetes.ClusterRoleBinding.Privileged": {"k8s-cluster-admin-binding"},
	"Kubernetes.Pod.Exec":                      {"k8s-exec-into-pod"},
	"Kubernetes.Secrets.DumpAllNamespaces":     {"k8s-secrets-listed-cluster-wide"},
	"Kubernetes.ServiceAccount.TokenCreated":   {"k8s-serviceaccount-token-request"},
	"Kubernetes.Role.Wildcard":                 {"k8s-wildcard-clusterrole"},
	"Kubernetes.Pod.SystemNamespace":           {"k8s-system-namespace-workload"},
	"Kubernetes.Pod.Privileged.Created":        {"k8s-privileged-container"},
	"Kubernetes.Service.NodePort.Deployed":     {"k8s-exposed-service"},
	"Kubernetes.Pod.HostPath.Volume":           {"k8s-sensitive-hostpath"},
	"Kubernetes.Pod.Host.Network":              {"k8s-hostnetwork"},
	"Kubernetes.Pod.Host.IPC":                  {"k8s-hostipc"},
	"Kubernetes.Pod.Host.PID":                  {"k8s-hostpid"},
	"Kubernetes.Pod.Dangerous.Capabilities":    {"k8s-dangerous-capabilities"},
}

// Panther positives that are not the behaviour the pack's rule detects,
// with the reason.
var pantherNotCovered = map[string]string{
	"k8s_privileged_pod_created__4.json": "runs as root but is not privileged",
	"k8s_privileged_pod_created__5.json": "runs as root but is not privileged",
	"k8s_pod_hostpath_volume__2.json":    "mounts /mnt/data, not a sensitive host path",
	"anonymous_api_access__3.json":       "anonymous GET /version is public by design (system:public-info-viewer)",
	"anonymous_api_access__7.json":       "anonymous GET /healthz is public by design (load-balancer health checks)",
}

func fixtureEvents(t *testing.T, path string) []audit.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, _, err := audit.DecodeAll(f, audit.Options{Cluster: "fixture", AssumeTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func fires(t *testing.T, byID map[string]*Rule, ids []string, evs []audit.Event) []string {
	t.Helper()
	var fired []string
	for _, id := range ids {
		r := byID[id]
		if r == nil {
			t.Fatalf("no rule %s", id)
		}
		if len(evaluate(t, r, evs)) > 0 {
			fired = append(fired, id)
		}
	}
	return fired
}

func builtinByID(t *testing.T) map[string]*Rule {
	rules, err := Builtin(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*Rule{}
	for _, r := range rules {
		m[r.ID] = r
	}
	return m
}

func TestFalcoFixtures(t *testing.T) {
	byID := builtinByID(t)
	dir := filepath.Join(sharedData, "falco-k8s-audit")
	for file, ids := range falcoCases {
		evs := fixtureEvents(t, filepath.Join(dir, file))
		if len(evs) == 0 {
			t.Errorf("%s: no events decoded", file)
			continue
		}
		if len(fires(t, byID, ids, evs)) == 0 {
			t.Errorf("%s: none of %v fired", file, ids)
		}
	}
	for file, id := range falcoQuiet {
		if fired := fires(t, byID, []string{id}, fixtureEvents(t, filepath.Join(dir, file))); len(fired) > 0 {
			t.Errorf("%s: %s fired on Falco's near miss", file, id)
		}
	}
}

func TestPantherFixtures(t *testing.T) {
	byID := builtinByID(t)
	dir := filepath.Join(sharedData, "panther-k8s-audit")
	f, err := os.Open(filepath.Join(dir, "INDEX.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checked := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "|")
		if len(cols) < 7 || !strings.HasSuffix(strings.Trim(strings.TrimSpace(cols[1]), "`"), ".json") {
			continue
		}
		file := strings.Trim(strings.TrimSpace(cols[1]), "`")
		ruleID := strings.Trim(strings.TrimSpace(cols[2]), "`")
		expected := strings.TrimSpace(cols[4]) == "true"
		ids, covered := pantherRules[ruleID]
		if _, skip := pantherNotCovered[file]; skip || !covered || !expected {
			continue
		}
		evs := fixtureEvents(t, filepath.Join(dir, file))
		if len(evs) == 0 {
			t.Errorf("%s (%s): no events decoded", file, ruleID)
			continue
		}
		checked++
		if len(fires(t, byID, ids, evs)) == 0 {
			t.Errorf("%s (%s, %s): none of %v fired", file, ruleID, strings.TrimSpace(cols[3]), ids)
		}
	}
	if checked < 20 {
		t.Fatalf("only %d Panther positives checked", checked)
	}
	t.Logf("%d Panther positive cases checked", checked)
}
