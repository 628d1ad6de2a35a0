package gen

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	k8sUA     = "/v1.32.0 (linux/amd64) kubernetes/70d3cc9"
	kubectlUA = "kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9"
	cpIP      = "172.16.0.10"
)

var authGroup = []string{"system:authenticated"}

var (
	controllerManager = &user{name: "system:kube-controller-manager", groups: authGroup, ua: "kube-controller-manager" + k8sUA + "/leader-election", ip: cpIP}
	scheduler         = &user{name: "system:kube-scheduler", groups: authGroup, ua: "kube-scheduler" + k8sUA + "/leader-election", ip: cpIP}
	apiserver         = &user{name: "system:apiserver", groups: []string{"system:masters"}, ua: "kube-apiserver" + k8sUA, ip: "::1"}
	anonymous         = &user{name: "system:anonymous", groups: []string{"system:unauthenticated"}, ua: "curl/8.5.0", ip: "198.51.100.23"}
)

func sa(ns, name, ua string) *user {
	return &user{
		name:   "system:serviceaccount:" + ns + ":" + name,
		groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ua:     ua, ip: "10.244.1." + strconv.Itoa(len(name)+10),
	}
}

var (
	controllerSAs = []*user{
		sa("kube-system", "replicaset-controller", "kube-controller-manager"+k8sUA+"/system:serviceaccount:kube-system:replicaset-controller"),
		sa("kube-system", "endpoint-controller", "kube-controller-manager"+k8sUA+"/system:serviceaccount:kube-system:endpoint-controller"),
		sa("kube-system", "endpointslice-controller", "kube-controller-manager"+k8sUA+"/system:serviceaccount:kube-system:endpointslice-controller"),
		sa("kube-system", "deployment-controller", "kube-controller-manager"+k8sUA+"/system:serviceaccount:kube-system:deployment-controller"),
		sa("kube-system", "namespace-controller", "kube-controller-manager"+k8sUA+"/system:serviceaccount:kube-system:namespace-controller"),
	}
	systemSAs = []*user{
		sa("kube-system", "coredns", "coredns/v1.11.3 (linux/amd64) kubernetes/abc"),
		sa("kube-system", "metrics-server", "metrics-server/v0.7.2 (linux/amd64) kubernetes/$Format"),
		sa("kube-system", "kube-proxy", "kube-proxy"+k8sUA),
		sa("kube-system", "azure-cns", "azure-cns/v1.6.13 (linux/amd64)"),
		sa("kube-system", "konnectivity-agent", "proxy-agent/v0.30.3 (linux/amd64)"),
		sa("calico-system", "calico-node", "calico-node/v3.28.2 (linux/amd64) kubernetes/$Format"),
	}
	people = []*user{
		{name: "alice@contoso.com", groups: []string{"5f3a1c2e-8b7d-4e6f-9a0b-1c2d3e4f5a6b", "system:authenticated"}, oid: "0b6f7c3e-2d1a-4c5b-8e9f-a1b2c3d4e5f6", ua: kubectlUA, ip: "20.43.245.209"},
		{name: "bob@contoso.com", groups: []string{"5f3a1c2e-8b7d-4e6f-9a0b-1c2d3e4f5a6b", "system:authenticated"}, oid: "7d2e9f10-3b4c-4a5d-9e6f-0718293a4b5c", ua: kubectlUA, ip: "203.0.113.77"},
		{name: "masterclient", groups: []string{"system:masters", "system:authenticated"}, ua: kubectlUA, ip: "52.174.12.9"},
		{name: "4c3b2a19-8d7e-4f60-a1b2-c3d4e5f60718", groups: []string{"system:authenticated"}, oid: "4c3b2a19-8d7e-4f60-a1b2-c3d4e5f60718", ua: "kubectl/v1.31.2 (darwin/arm64) kubernetes/5864a46", ip: "40.112.72.205"},
		{name: "mallory@fabrikam.onmicrosoft.com", groups: []string{"system:authenticated"}, oid: "e1d2c3b4-a596-4877-9a8b-7c6d5e4f3a2b", ua: "kubectl/v1.30.1 (windows/amd64) kubernetes/6911225", ip: "185.220.101.45"},
	}
	appNamespaces = []string{"default", "payments", "frontend", "monitoring", "ingress-nginx"}
	commands      = [][]string{
		{"/bin/sh"}, {"bash"}, {"sh", "-c", "cat /etc/shadow"},
		{"ls", "-la", "/var/run/secrets/kubernetes.io/serviceaccount"},
		{"sh", "-c", "curl -s -H Metadata:true http://169.254.169.254/metadata/instance?api-version=2021-02-01"},
		{"env"}, {"tar", "cf", "-", "/tmp/dump"},
	}
)

func (g *Generator) pick(n int) int { return g.rng.IntN(n) }

func (g *Generator) uuid() string {
	const hex = "0123456789abcdef"
	var b [36]byte
	x, y := g.rng.Uint64(), g.rng.Uint64()
	j := 0
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			b[i] = '-'
			continue
		case 14:
			b[i] = '4'
			continue
		}
		var v uint64
		if j < 16 {
			v, x = x&15, x>>4
		} else {
			v, y = y&15, y>>4
		}
		b[i] = hex[v]
		j++
	}
	return string(b[:])
}

func (g *Generator) suffix(n int) string {
	const chars = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[g.pick(len(chars))]
	}
	return string(b)
}

func (g *Generator) node() (string, *user) {
	i := g.pick(len(g.nodes))
	return g.nodes[i], g.kubelets[i]
}

// emit writes a single ResponseComplete event at t.
func (g *Generator) emit(t time.Time, e ev) {
	e.auditID = g.uuid()
	if e.level == "" {
		e.level = "Metadata"
	}
	e.stage = "ResponseComplete"
	e.stamp = t
	e.recv = t.Add(-time.Duration(200+g.pick(20000)) * time.Microsecond)
	g.buf = appendEvent(g.buf, &e)
}

func (g *Generator) nodeRead(t time.Time) {
	n, u := g.node()
	switch g.pick(5) {
	case 0:
		g.emit(t, ev{verb: "get", u: u, code: 200, uri: "/api/v1/nodes/" + n + "?timeout=10s",
			ref: &objRef{resource: "nodes", name: n, apiVersion: "v1"}})
	case 1:
		g.emit(t, ev{verb: "patch", u: u, code: 200, uri: "/api/v1/nodes/" + n + "/status?timeout=10s",
			ref: &objRef{resource: "nodes", subresource: "status", name: n, apiVersion: "v1"}})
	case 2:
		ns := appNamespaces[g.pick(len(appNamespaces))]
		g.emit(t, ev{verb: "watch", u: u, code: 200,
			uri: "/api/v1/namespaces/" + ns + "/configmaps?allowWatchBookmarks=true&fieldSelector=metadata.name%3Dkube-root-ca.crt&resourceVersion=" + strconv.Itoa(100000+g.pick(900000)) + "&timeout=6m20s&timeoutSeconds=380&watch=true",
			ref: &objRef{resource: "configmaps", namespace: ns, name: "kube-root-ca.crt", apiVersion: "v1"}})
	case 3:
		ns := appNamespaces[g.pick(len(appNamespaces))]
		name := "app-secret-" + strconv.Itoa(g.pick(8))
		g.emit(t, ev{verb: "get", u: u, code: 200, uri: "/api/v1/namespaces/" + ns + "/secrets/" + name,
			ref: &objRef{resource: "secrets", namespace: ns, name: name, apiVersion: "v1"}})
	default:
		g.emit(t, ev{verb: "list", u: u, code: 200, uri: "/api/v1/pods?fieldSelector=spec.nodeName%3D" + n + "&limit=500&resourceVersion=0",
			ref: &objRef{resource: "pods", apiVersion: "v1"}})
	}
}

func (g *Generator) leaseUpdate(t time.Time) {
	if g.pick(4) > 0 {
		n, u := g.node()
		g.emit(t, ev{verb: "update", u: u, code: 200, uri: "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + n + "?timeout=10s",
			ref: &objRef{resource: "leases", namespace: "kube-node-lease", name: n, apiGroup: "coordination.k8s.io", apiVersion: "v1"}})
		return
	}
	u, name := controllerManager, "kube-controller-manager"
	if g.pick(2) == 0 {
		u, name = scheduler, "kube-scheduler"
	}
	verb := "update"
	if g.pick(3) == 0 {
		verb = "get"
	}
	g.emit(t, ev{verb: verb, u: u, code: 200, uri: "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/" + name + "?timeout=5s",
		ref: &objRef{resource: "leases", namespace: "kube-system", name: name, apiGroup: "coordination.k8s.io", apiVersion: "v1"}})
}

var watched = []objRef{
	{resource: "pods", apiVersion: "v1"}, {resource: "services", apiVersion: "v1"},
	{resource: "deployments", apiGroup: "apps", apiVersion: "v1"}, {resource: "replicasets", apiGroup: "apps", apiVersion: "v1"},
	{resource: "nodes", apiVersion: "v1"}, {resource: "namespaces", apiVersion: "v1"},
	{resource: "serviceaccounts", apiVersion: "v1"}, {resource: "secrets", apiVersion: "v1"},
	{resource: "roles", apiGroup: "rbac.authorization.k8s.io", apiVersion: "v1"},
	{resource: "clusterrolebindings", apiGroup: "rbac.authorization.k8s.io", apiVersion: "v1"},
}

func refURI(r *objRef) string {
	p := "/api/v1/"
	if r.apiGroup != "" {
		p = "/apis/" + r.apiGroup + "/" + r.apiVersion + "/"
	}
	if r.namespace != "" {
		p += "namespaces/" + r.namespace + "/"
	}
	p += r.resource
	if r.name != "" {
		p += "/" + r.name
	}
	if r.subresource != "" {
		p += "/" + r.subresource
	}
	return p
}

func (g *Generator) controllerWatch(t time.Time) {
	r := watched[g.pick(len(watched))]
	u := controllerManager
	if g.pick(3) == 0 {
		u = scheduler
	}
	verb, q := "watch", "?allowWatchBookmarks=true&resourceVersion="+strconv.Itoa(100000+g.pick(900000))+"&timeout=7m32s&timeoutSeconds=452&watch=true"
	if g.pick(4) == 0 {
		verb, q = "list", "?limit=500&resourceVersion=0"
	}
	g.emit(t, ev{verb: verb, u: u, code: 200, uri: refURI(&r) + q, ref: &r})
}

func (g *Generator) endpointsUpdate(t time.Time) {
	ns := appNamespaces[g.pick(len(appNamespaces))]
	svc := []string{"api", "web", "redis", "postgres", "metrics"}[g.pick(5)]
	if g.pick(2) == 0 {
		r := objRef{resource: "endpoints", namespace: ns, name: svc, apiVersion: "v1"}
		g.emit(t, ev{verb: "update", u: controllerSAs[1], code: 200, uri: refURI(&r), ref: &r})
		return
	}
	r := objRef{resource: "endpointslices", namespace: ns, name: svc + "-" + g.suffix(5), apiGroup: "discovery.k8s.io", apiVersion: "v1"}
	g.emit(t, ev{verb: "update", u: controllerSAs[2], code: 200, uri: refURI(&r), ref: &r})
}

func (g *Generator) configmap(t time.Time) {
	names := []string{"extension-apiserver-authentication", "cluster-autoscaler-status", "coredns", "kube-proxy", "overlay-upgrade-data"}
	r := objRef{resource: "configmaps", namespace: "kube-system", name: names[g.pick(len(names))], apiVersion: "v1"}
	verb, u := "get", systemSAs[g.pick(len(systemSAs))]
	if r.name == "cluster-autoscaler-status" {
		verb, u = "update", sa("kube-system", "cluster-autoscaler", "cluster-autoscaler/v1.32.0 (linux/amd64)")
	}
	g.emit(t, ev{verb: verb, u: u, code: 200, uri: refURI(&r), ref: &r})
}

func (g *Generator) systemSA(t time.Time) {
	u := systemSAs[g.pick(len(systemSAs))]
	r := watched[g.pick(6)]
	verb, q := "watch", "?allowWatchBookmarks=true&resourceVersion="+strconv.Itoa(100000+g.pick(900000))+"&timeout=9m1s&timeoutSeconds=541&watch=true"
	if g.pick(3) == 0 {
		verb, q = "list", "?limit=500&resourceVersion=0"
	}
	g.emit(t, ev{verb: verb, u: u, code: 200, uri: refURI(&r) + q, ref: &r})
}

func (g *Generator) eventCreate(t time.Time) {
	ns := appNamespaces[g.pick(len(appNamespaces))]
	_, u := g.node()
	if g.pick(3) == 0 {
		u = controllerSAs[g.pick(len(controllerSAs))]
	}
	r := objRef{resource: "events", namespace: ns, name: "web-" + g.suffix(5) + "." + strconv.FormatUint(g.rng.Uint64()>>12, 16), apiVersion: "v1"}
	g.emit(t, ev{verb: "create", u: u, code: 201, uri: "/api/v1/namespaces/" + ns + "/events", ref: &r})
}

func (g *Generator) reviews(t time.Time) {
	switch g.pick(3) {
	case 0:
		r := objRef{resource: "tokenreviews", apiGroup: "authentication.k8s.io", apiVersion: "v1"}
		g.emit(t, ev{verb: "create", u: systemSAs[1], code: 201, uri: "/apis/authentication.k8s.io/v1/tokenreviews", ref: &r})
	case 1:
		r := objRef{resource: "subjectaccessreviews", apiGroup: "authorization.k8s.io", apiVersion: "v1"}
		g.emit(t, ev{verb: "create", u: apiserver, code: 201, uri: "/apis/authorization.k8s.io/v1/subjectaccessreviews?timeout=10s", ref: &r})
	default:
		_, u := g.node()
		ns := appNamespaces[g.pick(len(appNamespaces))]
		r := objRef{resource: "serviceaccounts", subresource: "token", namespace: ns, name: "default", apiVersion: "v1"}
		g.emit(t, ev{verb: "create", u: u, code: 201, uri: refURI(&r), ref: &r})
	}
}

func podObject(ns, name, image string, privileged, hostPID bool) []byte {
	var b strings.Builder
	b.WriteString(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"` + name + `","namespace":"` + ns + `","creationTimestamp":null},"spec":{`)
	if hostPID {
		b.WriteString(`"hostPID":true,`)
	}
	b.WriteString(`"containers":[{"name":"main","image":"` + image + `","resources":{}`)
	if privileged {
		b.WriteString(`,"securityContext":{"privileged":true}`)
	}
	b.WriteString(`}],"restartPolicy":"Always","dnsPolicy":"ClusterFirst"},"status":{}}`)
	return []byte(b.String())
}

func (g *Generator) replicaSetPod(t time.Time) {
	ns := appNamespaces[g.pick(len(appNamespaces))]
	name := []string{"web", "api", "worker"}[g.pick(3)] + "-" + g.suffix(10) + "-" + g.suffix(5)
	r := objRef{resource: "pods", namespace: ns, apiVersion: "v1"}
	g.emit(t, ev{verb: "create", u: controllerSAs[0], code: 201, level: "Request", uri: refURI(&r),
		ref:    &objRef{resource: "pods", namespace: ns, name: name, apiVersion: "v1"},
		reqObj: podObject(ns, name, "contoso.azurecr.io/"+name[:3]+":1.4.2", false, false)})
}

func (g *Generator) person() *user { return people[g.pick(len(people))] }

func (g *Generator) userRead(t time.Time) {
	u := g.person()
	r := watched[g.pick(len(watched))]
	if r.apiGroup == "" || g.pick(2) == 0 {
		r.namespace = appNamespaces[g.pick(len(appNamespaces))]
	}
	verb := "list"
	if g.pick(3) == 0 {
		verb, r.name = "get", "web-"+g.suffix(5)
	}
	g.emit(t, ev{verb: verb, u: u, code: 200, uri: refURI(&r) + "?limit=500", ref: &r,
		reason: `RBAC: allowed by ClusterRoleBinding "aks-cluster-admin-binding" of ClusterRole "cluster-admin" to Group "5f3a1c2e-8b7d-4e6f-9a0b-1c2d3e4f5a6b"`})
}

func (g *Generator) forbidden(t time.Time) {
	g.Special["forbidden"]++
	u := anonymous
	if g.pick(2) == 0 {
		u = people[4]
	}
	ns := appNamespaces[g.pick(len(appNamespaces))]
	r := objRef{resource: "secrets", namespace: ns, apiVersion: "v1"}
	g.emit(t, ev{verb: "list", u: u, code: 403, uri: refURI(&r) + "?limit=500", ref: &r})
}

func (g *Generator) userPod(t time.Time) {
	g.Special["pod-create-user"]++
	u := g.person()
	ns := appNamespaces[g.pick(len(appNamespaces))]
	name, image := "debug-"+g.suffix(5), "busybox:1.36"
	if g.pick(3) == 0 {
		name, image = "ubuntu-"+g.suffix(5), "ubuntu:22.04"
		g.Special["ubuntu"]++
	}
	priv := g.pick(3) == 0
	if priv {
		g.Special["privileged"]++
	}
	r := objRef{resource: "pods", namespace: ns, apiVersion: "v1"}
	g.emit(t, ev{verb: "create", u: u, code: 201, level: "Request", uri: refURI(&r) + "?fieldManager=kubectl-run", ref: &objRef{resource: "pods", namespace: ns, name: name, apiVersion: "v1"},
		reqObj: podObject(ns, name, image, priv, priv && g.pick(2) == 0)})
}

func (g *Generator) userDelete(t time.Time) {
	u := g.person()
	r := objRef{resource: "pods", namespace: appNamespaces[g.pick(len(appNamespaces))], name: "web-" + g.suffix(5), apiVersion: "v1"}
	if g.pick(3) == 0 {
		r = objRef{resource: "deployments", namespace: r.namespace, name: "web", apiGroup: "apps", apiVersion: "v1"}
	}
	g.emit(t, ev{verb: "delete", u: u, code: 200, uri: refURI(&r), ref: &r})
}

// exec writes the ResponseStarted and ResponseComplete events of one exec
// or attach.
func (g *Generator) exec(t time.Time) {
	u := g.person()
	ns := appNamespaces[g.pick(len(appNamespaces))]
	pod := "web-" + g.suffix(10) + "-" + g.suffix(5)
	sub := "exec"
	if g.pick(5) == 0 {
		sub = "attach"
	}
	g.Special[sub]++
	verb := "create"
	if g.pick(4) == 0 {
		verb = "get" // older clients and websocket upgrades use GET
	}
	r := objRef{resource: "pods", subresource: sub, namespace: ns, name: pod, apiVersion: "v1"}
	uri := refURI(&r) + "?"
	if sub == "exec" {
		for _, c := range commands[g.pick(len(commands))] {
			uri += "command=" + url.QueryEscape(c) + "&"
		}
	}
	uri += "container=main&stdin=true&stdout=true&tty=true"
	e := ev{auditID: g.uuid(), level: "Request", verb: verb, u: u, code: 101, uri: uri, ref: &r}
	e.recv = t.Add(-3 * time.Millisecond)
	e.stage, e.stamp = "ResponseStarted", t
	g.buf = appendEvent(g.buf, &e)
	e.stage, e.stamp = "ResponseComplete", t.Add(time.Duration(2+g.pick(600))*time.Second)
	g.buf = appendEvent(g.buf, &e)
}
