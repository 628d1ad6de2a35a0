package gen

import (
	"bytes"
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
	switch {
	case g.rr && e.level != "Metadata":
		e.level = "RequestResponse"
	case e.level == "":
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
		e := ev{verb: "get", u: u, code: 200, uri: "/api/v1/nodes/" + n + "?timeout=10s",
			ref: &objRef{resource: "nodes", name: n, apiVersion: "v1"}}
		if g.rr {
			g.resp = g.appendNode(g.resp[:0], g.nodeIndex(n), t, false)
			e.respObj = g.resp
		}
		g.emit(t, e)
	case 1:
		e := ev{verb: "patch", u: u, code: 200, uri: "/api/v1/nodes/" + n + "/status?timeout=10s",
			ref: &objRef{resource: "nodes", subresource: "status", name: n, apiVersion: "v1"}}
		if g.rr {
			g.req = g.appendNodeStatusPatch(g.req[:0], t)
			g.resp = g.appendNode(g.resp[:0], g.nodeIndex(n), t, false)
			e.reqObj, e.respObj = g.req, g.resp
		}
		g.emit(t, e)
	case 2:
		ns := appNamespaces[g.pick(len(appNamespaces))]
		g.emit(t, ev{verb: "watch", u: u, code: 200,
			uri: "/api/v1/namespaces/" + ns + "/configmaps?allowWatchBookmarks=true&fieldSelector=metadata.name%3Dkube-root-ca.crt&resourceVersion=" + strconv.Itoa(100000+g.pick(900000)) + "&timeout=6m20s&timeoutSeconds=380&watch=true",
			ref: &objRef{resource: "configmaps", namespace: ns, name: "kube-root-ca.crt", apiVersion: "v1"}})
	case 3:
		ns := appNamespaces[g.pick(len(appNamespaces))]
		name := "app-secret-" + strconv.Itoa(g.pick(8))
		g.emit(t, ev{verb: "get", u: u, code: 200, uri: "/api/v1/namespaces/" + ns + "/secrets/" + name, level: g.secretLevel(),
			ref: &objRef{resource: "secrets", namespace: ns, name: name, apiVersion: "v1"}})
	default:
		e := ev{verb: "list", u: u, code: 200, uri: "/api/v1/pods?fieldSelector=spec.nodeName%3D" + n + "&limit=500&resourceVersion=0",
			ref: &objRef{resource: "pods", apiVersion: "v1"}}
		if g.rr {
			g.resp = g.appendList(g.resp[:0], e.ref, t, n)
			e.respObj = g.resp
		}
		g.emit(t, e)
	}
}

// secretLevel is the level of events about Secrets: Metadata, as audit
// policies keep secret values out of the log.
func (g *Generator) secretLevel() string {
	if g.rr {
		return "Metadata"
	}
	return ""
}

// update sets the bodies of an update whose response g.resp holds.
func (g *Generator) update(e *ev) {
	g.req = g.requestOf(g.req[:0], g.resp)
	e.reqObj, e.respObj = g.req, g.resp
}

func (g *Generator) leaseUpdate(t time.Time) {
	if g.pick(4) > 0 {
		n, u := g.node()
		e := ev{verb: "update", u: u, code: 200, uri: "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + n + "?timeout=10s",
			ref: &objRef{resource: "leases", namespace: "kube-node-lease", name: n, apiGroup: "coordination.k8s.io", apiVersion: "v1"}}
		if g.rr {
			g.resp = g.appendLease(g.resp[:0], g.nodeIndex(n), n, t)
			g.update(&e)
		}
		g.emit(t, e)
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
	e := ev{verb: verb, u: u, code: 200, uri: "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/" + name + "?timeout=5s",
		ref: &objRef{resource: "leases", namespace: "kube-system", name: name, apiGroup: "coordination.k8s.io", apiVersion: "v1"}}
	if g.rr {
		g.resp = g.appendLease(g.resp[:0], -1, name, t)
		e.respObj = g.resp
		if verb == "update" {
			g.update(&e)
		}
	}
	g.emit(t, e)
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

// read emits a get, list or watch of r, with the response body a get or a
// list has.
func (g *Generator) read(t time.Time, e ev) {
	if g.rr {
		switch {
		case e.ref.resource == "secrets":
			e.level = "Metadata"
		case e.verb == "list":
			g.resp = g.appendList(g.resp[:0], e.ref, t, "")
			e.respObj = g.resp
		case e.verb == "get":
			g.resp = g.appendObject(g.resp[:0], e.ref, t, false, "")
			e.respObj = g.resp
		}
	}
	g.emit(t, e)
}

// statusUpdate is the deployment or replicaset controller updating the
// status of a Deployment or ReplicaSet (RequestResponse level only).
func (g *Generator) statusUpdate(t time.Time) {
	ns := appNamespaces[g.pick(len(appNamespaces))]
	app := [...]string{"web", "api", "worker"}[g.pick(3)]
	rs := g.pick(2) == 0
	g.resp = g.appendDeployment(g.resp[:0], ns, app, t, rs, false)
	r := objRef{resource: "deployments", subresource: "status", namespace: ns, name: app, apiGroup: "apps", apiVersion: "v1"}
	u := controllerSAs[3]
	if rs {
		i := bytes.Index(g.resp, []byte(`"name":"`)) + len(`"name":"`)
		r.resource, r.name, u = "replicasets", string(g.resp[i:i+bytes.IndexByte(g.resp[i:], '"')]), controllerSAs[0]
	}
	e := ev{verb: "update", u: u, code: 200, uri: refURI(&r), ref: &r}
	g.update(&e)
	g.emit(t, e)
}

func (g *Generator) controllerWatch(t time.Time) {
	if g.rr && g.pick(8) == 0 {
		g.statusUpdate(t)
		return
	}
	r := watched[g.pick(len(watched))]
	u := controllerManager
	if g.pick(3) == 0 {
		u = scheduler
	}
	verb, q := "watch", "?allowWatchBookmarks=true&resourceVersion="+strconv.Itoa(100000+g.pick(900000))+"&timeout=7m32s&timeoutSeconds=452&watch=true"
	if g.pick(4) == 0 {
		verb, q = "list", "?limit=500&resourceVersion=0"
	}
	g.read(t, ev{verb: verb, u: u, code: 200, uri: refURI(&r) + q, ref: &r})
}

func (g *Generator) endpointsUpdate(t time.Time) {
	ns := appNamespaces[g.pick(len(appNamespaces))]
	svc := []string{"api", "web", "redis", "postgres", "metrics"}[g.pick(5)]
	if g.pick(2) == 0 {
		r := objRef{resource: "endpoints", namespace: ns, name: svc, apiVersion: "v1"}
		e := ev{verb: "update", u: controllerSAs[1], code: 200, uri: refURI(&r), ref: &r}
		if g.rr {
			g.resp = g.appendEndpoints(g.resp[:0], ns, svc, svc, false, t)
			g.update(&e)
		}
		g.emit(t, e)
		return
	}
	r := objRef{resource: "endpointslices", namespace: ns, name: svc + "-" + g.suffix(5), apiGroup: "discovery.k8s.io", apiVersion: "v1"}
	e := ev{verb: "update", u: controllerSAs[2], code: 200, uri: refURI(&r), ref: &r}
	if g.rr {
		g.resp = g.appendEndpoints(g.resp[:0], ns, svc, r.name, true, t)
		g.update(&e)
	}
	g.emit(t, e)
}

func (g *Generator) configmap(t time.Time) {
	names := []string{"extension-apiserver-authentication", "cluster-autoscaler-status", "coredns", "kube-proxy", "overlay-upgrade-data"}
	r := objRef{resource: "configmaps", namespace: "kube-system", name: names[g.pick(len(names))], apiVersion: "v1"}
	verb, u := "get", systemSAs[g.pick(len(systemSAs))]
	if r.name == "cluster-autoscaler-status" {
		verb, u = "update", sa("kube-system", "cluster-autoscaler", "cluster-autoscaler/v1.32.0 (linux/amd64)")
	}
	e := ev{verb: verb, u: u, code: 200, uri: refURI(&r), ref: &r}
	if g.rr {
		g.resp = g.appendConfigMap(g.resp[:0], r.name, t)
		e.respObj = g.resp
		if verb == "update" {
			g.update(&e)
		}
	}
	g.emit(t, e)
}

func (g *Generator) systemSA(t time.Time) {
	u := systemSAs[g.pick(len(systemSAs))]
	r := watched[g.pick(6)]
	verb, q := "watch", "?allowWatchBookmarks=true&resourceVersion="+strconv.Itoa(100000+g.pick(900000))+"&timeout=9m1s&timeoutSeconds=541&watch=true"
	if g.pick(3) == 0 {
		verb, q = "list", "?limit=500&resourceVersion=0"
	}
	g.read(t, ev{verb: verb, u: u, code: 200, uri: refURI(&r) + q, ref: &r})
}

func (g *Generator) eventCreate(t time.Time) {
	ns := appNamespaces[g.pick(len(appNamespaces))]
	_, u := g.node()
	if g.pick(3) == 0 {
		u = controllerSAs[g.pick(len(controllerSAs))]
	}
	r := objRef{resource: "events", namespace: ns, name: "web-" + g.suffix(5) + "." + strconv.FormatUint(g.rng.Uint64()>>12, 16), apiVersion: "v1"}
	e := ev{verb: "create", u: u, code: 201, uri: "/api/v1/namespaces/" + ns + "/events", ref: &r}
	if g.rr {
		k := k8sEvent{ns: ns, name: r.name, pod: r.name[:strings.IndexByte(r.name, '.')], podUID: g.uuid(),
			reason: g.pick(len(eventReasons)), podRV: g.rv - uint64(g.pick(100000))}
		if strings.HasPrefix(u.name, "system:node:") {
			k.reporter = strings.TrimPrefix(u.name, "system:node:")
		}
		g.req = g.appendK8sEvent(g.req[:0], &k, false, t)
		g.resp = g.appendK8sEvent(g.resp[:0], &k, true, t)
		e.reqObj, e.respObj = g.req, g.resp
	}
	g.emit(t, e)
}

func (g *Generator) reviews(t time.Time) {
	switch g.pick(3) {
	case 0:
		r := objRef{resource: "tokenreviews", apiGroup: "authentication.k8s.io", apiVersion: "v1"}
		e := ev{verb: "create", u: systemSAs[1], code: 201, uri: "/apis/authentication.k8s.io/v1/tokenreviews", ref: &r}
		if g.rr {
			ns := appNamespaces[g.pick(len(appNamespaces))]
			node := g.nodes[g.pick(len(g.nodes))]
			pod := "web-" + g.suffix(10) + "-" + g.suffix(5)
			token := "synthetic." + string(g.appendB64(nil, 40))
			g.req = g.appendTokenReview(g.req[:0], ns, "default", pod, node, token, false)
			g.resp = g.appendTokenReview(g.resp[:0], ns, "default", pod, node, token, true)
			e.reqObj, e.respObj = g.req, g.resp
		}
		g.emit(t, e)
	case 1:
		r := objRef{resource: "subjectaccessreviews", apiGroup: "authorization.k8s.io", apiVersion: "v1"}
		e := ev{verb: "create", u: apiserver, code: 201, uri: "/apis/authorization.k8s.io/v1/subjectaccessreviews?timeout=10s", ref: &r}
		if g.rr {
			ns, uid := appNamespaces[g.pick(len(appNamespaces))], g.uuid()
			g.req = g.appendSAR(g.req[:0], ns, uid, systemSAs[1], false)
			g.resp = g.appendSAR(g.resp[:0], ns, uid, systemSAs[1], true)
			e.reqObj, e.respObj = g.req, g.resp
		}
		g.emit(t, e)
	default:
		_, u := g.node()
		ns := appNamespaces[g.pick(len(appNamespaces))]
		r := objRef{resource: "serviceaccounts", subresource: "token", namespace: ns, name: "default", apiVersion: "v1"}
		e := ev{verb: "create", u: u, code: 201, uri: refURI(&r), ref: &r}
		if g.rr {
			pod, uid := [...]string{"web", "api", "worker"}[g.pick(3)]+"-"+g.suffix(10)+"-"+g.suffix(5), g.uuid()
			g.req = g.appendTokenRequest(g.req[:0], ns, pod, uid, t, false)
			g.resp = g.appendTokenRequest(g.resp[:0], ns, pod, uid, t, true)
			e.reqObj, e.respObj = g.req, g.resp
		}
		g.emit(t, e)
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
	e := ev{verb: "create", u: controllerSAs[0], code: 201, level: "Request", uri: refURI(&r),
		ref: &objRef{resource: "pods", namespace: ns, name: name, apiVersion: "v1"}}
	if !g.rr {
		e.reqObj = podObject(ns, name, "contoso.azurecr.io/"+name[:3]+":1.4.2", false, false)
		g.emit(t, e)
		return
	}
	app := name[:strings.IndexByte(name, '-')]
	hash := name[len(app)+1 : len(app)+11]
	p := pod{ns: ns, name: name, app: app, hash: hash, rs: app + "-" + hash, rsUID: g.uuid(),
		image: "contoso.azurecr.io/" + app + ":1.4.2", created: t, now: t, form: podRequest}
	if ns == "monitoring" && app == "worker" {
		p.hostPath = "/var/log" // a log shipper
		g.Special["hostPath"]++
	}
	g.podCreate(t, &e, &p)
}

// podCreate emits the create of p with its request and response bodies.
func (g *Generator) podCreate(t time.Time, e *ev, p *pod) {
	g.req = g.appendPod(g.req[:0], p)
	p.form = podCreated
	g.resp = g.appendPod(g.resp[:0], p)
	e.reqObj, e.respObj, e.podSecurity = g.req, g.resp, true
	g.emit(t, *e)
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
	const reason = `RBAC: allowed by ClusterRoleBinding "aks-cluster-admin-binding" of ClusterRole "cluster-admin" to Group "5f3a1c2e-8b7d-4e6f-9a0b-1c2d3e4f5a6b"`
	if g.rr && g.pick(4) == 0 {
		g.userPatch(t, u, reason)
		return
	}
	g.read(t, ev{verb: verb, u: u, code: 200, uri: refURI(&r) + "?limit=500", ref: &r, reason: reason})
}

// userPatch is kubectl rollout restart of a Deployment (RequestResponse
// level only).
func (g *Generator) userPatch(t time.Time, u *user, reason string) {
	ns := appNamespaces[g.pick(len(appNamespaces))]
	app := [...]string{"web", "api", "worker"}[g.pick(3)]
	r := objRef{resource: "deployments", namespace: ns, name: app, apiGroup: "apps", apiVersion: "v1"}
	j := w{b: g.req[:0], g: g}
	j.raw(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":`)
	j.ts(t)
	j.raw(`}}}}}`)
	g.req = j.b
	g.resp = g.appendDeployment(g.resp[:0], ns, app, t, false, false)
	g.emit(t, ev{verb: "patch", u: u, code: 200, uri: refURI(&r) + "?fieldManager=kubectl-rollout", ref: &r, reason: reason,
		reqObj: g.req, respObj: g.resp})
}

func (g *Generator) forbidden(t time.Time) {
	g.Special["forbidden"]++
	u := anonymous
	if g.pick(2) == 0 {
		u = people[4]
	}
	ns := appNamespaces[g.pick(len(appNamespaces))]
	r := objRef{resource: "secrets", namespace: ns, apiVersion: "v1"}
	g.emit(t, ev{verb: "list", u: u, code: 403, uri: refURI(&r) + "?limit=500", ref: &r, level: g.secretLevel()})
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
	hostPID := priv && g.pick(2) == 0
	r := objRef{resource: "pods", namespace: ns, apiVersion: "v1"}
	e := ev{verb: "create", u: u, code: 201, level: "Request", uri: refURI(&r) + "?fieldManager=kubectl-run", ref: &objRef{resource: "pods", namespace: ns, name: name, apiVersion: "v1"}}
	if !g.rr {
		e.reqObj = podObject(ns, name, image, priv, hostPID)
		g.emit(t, e)
		return
	}
	p := pod{ns: ns, name: name, image: image, created: t, now: t, form: podRequest, priv: priv, hostPID: hostPID}
	if priv {
		p.hostPath = "/"
		g.Special["hostPath"]++
	}
	g.podCreate(t, &e, &p)
}

func (g *Generator) userDelete(t time.Time) {
	u := g.person()
	r := objRef{resource: "pods", namespace: appNamespaces[g.pick(len(appNamespaces))], name: "web-" + g.suffix(5), apiVersion: "v1"}
	if g.pick(3) == 0 {
		r = objRef{resource: "deployments", namespace: r.namespace, name: "web", apiGroup: "apps", apiVersion: "v1"}
	}
	e := ev{verb: "delete", u: u, code: 200, uri: refURI(&r), ref: &r}
	if g.rr {
		g.req = append(g.req[:0], `{"kind":"DeleteOptions","apiVersion":"meta.k8s.io/__internal","propagationPolicy":"Background"}`...)
		if r.resource == "pods" {
			p := g.appPod(r.namespace, "web", t)
			p.name, p.form = r.name, podDeleting
			g.resp = g.appendPod(g.resp[:0], &p)
		} else {
			g.resp = g.appendDeleted(g.resp[:0], r.name)
		}
		e.reqObj, e.respObj = g.req, g.resp
	}
	g.emit(t, e)
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
	if g.rr {
		e.level = "RequestResponse"
	}
	e.recv = t.Add(-3 * time.Millisecond)
	e.stage, e.stamp = "ResponseStarted", t
	g.buf = appendEvent(g.buf, &e)
	e.stage, e.stamp = "ResponseComplete", t.Add(time.Duration(2+g.pick(600))*time.Second)
	g.buf = appendEvent(g.buf, &e)
}
