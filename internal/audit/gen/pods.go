package gen

import (
	"strconv"
	"time"
)

// Pod, Deployment and ReplicaSet bodies for RequestResponse events.

// Forms a pod object takes in an audit event.
const (
	podRequest  = iota // the body a client sent with a create
	podCreated         // the create's response: defaulted, Pending, unscheduled
	podRunning         // a get or list: scheduled and running
	podDeleting        // a delete's response: running, with a deletionTimestamp
)

type pod struct {
	ns, name string
	app      string // controller pods: the app label and container name
	hash     string // pod-template-hash; "" for a pod made with kubectl run
	rs       string // owning ReplicaSet's name and uid
	rsUID    string
	image    string
	node     string
	created  time.Time
	now      time.Time // the event's time
	form     int
	priv     bool
	hostPID  bool
	hostPath string // a hostPath volume's path, or ""
	args     []string
	item     bool // a list item: no kind and apiVersion
}

var podApps = map[string]struct {
	port int
	env  string // the env array's elements
	cpu  string
	mem  string
}{
	"web":    {8080, `{"name":"LOG_LEVEL","value":"info"},{"name":"UPSTREAM_URL","value":"http://api.payments.svc.cluster.local:8080"},{"name":"POD_NAME","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}}`, "250m", "256Mi"},
	"api":    {8080, `{"name":"LOG_LEVEL","value":"info"},{"name":"DB_HOST","value":"postgres.payments.svc.cluster.local"},{"name":"DB_PASSWORD","valueFrom":{"secretKeyRef":{"name":"app-secret-1","key":"password"}}},{"name":"OTEL_EXPORTER_OTLP_ENDPOINT","value":"http://otel-collector.monitoring:4317"}`, "500m", "512Mi"},
	"worker": {9090, `{"name":"QUEUE_URL","value":"redis://redis.default.svc.cluster.local:6379/0"},{"name":"CONCURRENCY","value":"8"},{"name":"GOMAXPROCS","valueFrom":{"resourceFieldRef":{"containerName":"worker","resource":"limits.cpu","divisor":"0"}}}`, "1", "1Gi"},
}

const tolerations = `"tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}]`

// appendPod writes p.
func (g *Generator) appendPod(b []byte, p *pod) []byte {
	j := w{b: b, g: g}
	server := p.form != podRequest
	running := p.form == podRunning || p.form == podDeleting
	ctr := p.app
	if p.hash == "" {
		ctr = p.name
	}
	saVol := ""
	if server {
		saVol = "kube-api-access-" + g.suffix(5)
	}
	var podIP []byte
	if running {
		podIP = (&w{g: g}).ipb()
	}
	j.raw(`{`)
	if !p.item {
		j.raw(`"kind":"Pod","apiVersion":"v1",`)
	}
	j.raw(`"metadata":{`)
	if p.hash != "" && !server {
		j.kv("generateName", p.app+"-"+p.hash+"-")
	} else {
		j.kv("name", p.name)
		if p.hash != "" {
			j.raw(`,`)
			j.kv("generateName", p.app+"-"+p.hash+"-")
		}
	}
	j.raw(`,`)
	j.kv("namespace", p.ns)
	if server {
		j.raw(`,"uid":`)
		j.uid()
		j.raw(`,"resourceVersion":`)
		j.rv()
		j.raw(`,"creationTimestamp":`)
		j.ts(p.created)
	} else {
		j.raw(`,"creationTimestamp":null`)
	}
	if p.form == podDeleting {
		j.raw(`,"deletionTimestamp":`)
		j.ts(p.now.Add(30 * time.Second))
		j.raw(`,"deletionGracePeriodSeconds":30`)
	}
	if p.hash != "" {
		j.raw(`,"labels":{"app":`)
		j.str(p.app)
		j.raw(`,"app.kubernetes.io/part-of":"shop","pod-template-hash":`)
		j.str(p.hash)
		j.raw(`},"annotations":{"kubectl.kubernetes.io/restartedAt":`)
		j.ts(p.created.Add(-time.Duration(g.pick(86400*30)) * time.Second))
		j.raw(`,"prometheus.io/port":"`)
		j.num(podApps[p.app].port)
		j.raw(`","prometheus.io/scrape":"true"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":`)
		j.str(p.rs)
		j.raw(`,"uid":`)
		j.str(p.rsUID)
		j.raw(`,"controller":true,"blockOwnerDeletion":true}]`)
	} else {
		j.raw(`,"labels":{"run":`)
		j.str(p.name)
		j.raw(`}`)
	}
	if server {
		j.raw(`,"managedFields":[{"manager":`)
		if p.hash != "" {
			j.raw(`"kube-controller-manager","operation":"Update","apiVersion":"v1","time":`)
			j.ts(p.created)
			j.raw(`,"fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/restartedAt":{},"f:prometheus.io/port":{},"f:prometheus.io/scrape":{}},"f:generateName":{},"f:labels":{".":{},"f:app":{},"f:app.kubernetes.io/part-of":{},"f:pod-template-hash":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"`)
			j.raw(p.rsUID)
			j.raw(`\"}":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"`)
			j.raw(ctr)
			j.raw(`\"}":{".":{},"f:env":{".":{}},"f:image":{},"f:imagePullPolicy":{},"f:livenessProbe":{".":{},"f:failureThreshold":{},"f:httpGet":{".":{},"f:path":{},"f:port":{},"f:scheme":{}},"f:periodSeconds":{},"f:successThreshold":{},"f:timeoutSeconds":{}},"f:name":{},"f:ports":{".":{}},"f:resources":{".":{},"f:limits":{".":{},"f:cpu":{},"f:memory":{}},"f:requests":{".":{},"f:cpu":{},"f:memory":{}}},"f:securityContext":{".":{},"f:allowPrivilegeEscalation":{},"f:capabilities":{".":{},"f:drop":{}},"f:readOnlyRootFilesystem":{},"f:runAsNonRoot":{}},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{},"f:volumeMounts":{".":{}}}},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{},"f:volumes":{".":{}}}}}`)
		} else {
			j.raw(`"kubectl-run","operation":"Update","apiVersion":"v1","time":`)
			j.ts(p.created)
			j.raw(`,"fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:run":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"`)
			j.raw(ctr)
			j.raw(`\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:stdin":{},"f:stdinOnce":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{},"f:tty":{}}},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}`)
		}
		if running {
			j.raw(`,{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":`)
			j.ts(p.created.Add(4 * time.Second))
			j.raw(`,"fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:conditions":{"k:{\"type\":\"ContainersReady\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}},"k:{\"type\":\"Initialized\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}},"k:{\"type\":\"PodReadyToStartContainers\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}},"k:{\"type\":\"Ready\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}}},"f:containerStatuses":{},"f:hostIP":{},"f:hostIPs":{},"f:phase":{},"f:podIP":{},"f:podIPs":{".":{},"k:{\"ip\":\"`)
			j.b = append(j.b, podIP[1:len(podIP)-1]...)
			j.raw(`\"}":{".":{},"f:ip":{}}},"f:startTime":{}}},"subresource":"status"}`)
		}
		j.raw(`]`)
	}
	j.raw(`},"spec":{`)
	nvol := 0
	vol := func() {
		if nvol > 0 {
			j.raw(`,`)
		} else {
			j.raw(`"volumes":[`)
		}
		nvol++
	}
	if p.hostPath != "" {
		vol()
		j.raw(`{"name":"host","hostPath":{"path":`)
		j.str(p.hostPath)
		j.raw(`,"type":""}}`)
	}
	if p.hash != "" {
		vol()
		j.raw(`{"name":"config","configMap":{"name":`)
		j.str(p.app + "-config")
		j.raw(`,"defaultMode":420}},{"name":"tmp","emptyDir":{"sizeLimit":"64Mi"}}`)
	}
	if server {
		vol()
		j.raw(`{"name":`)
		j.str(saVol)
		j.raw(`,"projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},{"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}],"defaultMode":420}}`)
	}
	if nvol > 0 {
		j.raw(`],`)
	}
	j.raw(`"containers":[{"name":`)
	j.str(ctr)
	j.raw(`,"image":`)
	j.str(p.image)
	if len(p.args) > 0 {
		j.raw(`,"args":[`)
		for i, a := range p.args {
			if i > 0 {
				j.raw(`,`)
			}
			j.str(a)
		}
		j.raw(`]`)
	}
	if p.hash != "" {
		app := podApps[p.app]
		j.raw(`,"ports":[{"name":"http","containerPort":`)
		j.num(app.port)
		j.raw(`,"protocol":"TCP"}],"env":[`)
		j.raw(app.env)
		j.raw(`],"resources":{"limits":{"cpu":"`)
		j.raw(app.cpu)
		j.raw(`","memory":"`)
		j.raw(app.mem)
		j.raw(`"},"requests":{"cpu":"100m","memory":"128Mi"}}`)
	} else {
		j.raw(`,"resources":{}`)
	}
	nm := 0
	mount := func(name, path string, ro bool) {
		if nm > 0 {
			j.raw(`,`)
		} else {
			j.raw(`,"volumeMounts":[`)
		}
		nm++
		j.raw(`{"name":`)
		j.str(name)
		if ro {
			j.raw(`,"readOnly":true`)
		}
		j.raw(`,"mountPath":`)
		j.str(path)
		j.raw(`}`)
	}
	if p.hostPath != "" {
		mount("host", "/host", p.hash != "")
	}
	if p.hash != "" {
		mount("config", "/etc/"+p.app, true)
		mount("tmp", "/tmp", false)
	}
	if server {
		mount(saVol, "/var/run/secrets/kubernetes.io/serviceaccount", true)
	}
	if nm > 0 {
		j.raw(`]`)
	}
	if p.hash != "" {
		j.raw(`,"livenessProbe":{"httpGet":{"path":"/healthz","port":"http","scheme":"HTTP"},"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3},"readinessProbe":{"httpGet":{"path":"/ready","port":"http","scheme":"HTTP"},"timeoutSeconds":1,"periodSeconds":5,"successThreshold":1,"failureThreshold":3}`)
	}
	if server || p.hash != "" {
		j.raw(`,"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"`)
	}
	switch {
	case p.priv:
		j.raw(`,"securityContext":{"privileged":true}`)
	case p.hash != "":
		j.raw(`,"securityContext":{"capabilities":{"drop":["ALL"]},"runAsNonRoot":true,"readOnlyRootFilesystem":true,"allowPrivilegeEscalation":false}`)
	}
	if p.hash == "" {
		j.raw(`,"stdin":true,"stdinOnce":true,"tty":true`)
	}
	j.raw(`}],"restartPolicy":"Always"`)
	if server || p.hash != "" {
		j.raw(`,"terminationGracePeriodSeconds":30`)
	}
	j.raw(`,"dnsPolicy":"ClusterFirst"`)
	if server {
		j.raw(`,"serviceAccountName":"default","serviceAccount":"default"`)
	}
	if running {
		j.raw(`,"nodeName":`)
		j.str(p.node)
	}
	if p.hostPID {
		j.raw(`,"hostPID":true`)
	}
	if server || p.hash != "" {
		j.raw(`,"securityContext":{}`)
	}
	if server {
		j.raw(`,"schedulerName":"default-scheduler",`)
		j.raw(tolerations)
		j.raw(`,"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"`)
	}
	j.raw(`},"status":{`)
	switch p.form {
	case podCreated:
		if p.hash != "" {
			j.raw(`"phase":"Pending","qosClass":"Burstable"`)
		} else {
			j.raw(`"phase":"Pending","qosClass":"BestEffort"`)
		}
	case podRunning, podDeleting:
		start := p.created.Add(2 * time.Second)
		j.raw(`"phase":"Running","conditions":[`)
		for i, c := range [...]string{"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"} {
			if i > 0 {
				j.raw(`,`)
			}
			j.raw(`{"type":"`)
			j.raw(c)
			j.raw(`","status":"True","lastProbeTime":null,"lastTransitionTime":`)
			j.ts(start.Add(time.Duration(i) * time.Second))
			j.raw(`}`)
		}
		j.raw(`],"hostIP":`)
		hostIP := g.nodeIP(p.node)
		j.str(hostIP)
		j.raw(`,"hostIPs":[{"ip":`)
		j.str(hostIP)
		j.raw(`}],"podIP":`)
		j.b = append(j.b, podIP...)
		j.raw(`,"podIPs":[{"ip":`)
		j.b = append(j.b, podIP...)
		j.raw(`}],"startTime":`)
		j.ts(start)
		j.raw(`,"containerStatuses":[{"name":`)
		j.str(ctr)
		j.raw(`,"state":{"running":{"startedAt":`)
		j.ts(start.Add(3 * time.Second))
		j.raw(`}},"lastState":{},"ready":true,"restartCount":`)
		j.num(g.pick(3))
		j.raw(`,"image":`)
		j.str(p.image)
		j.raw(`,"imageID":`)
		j.b = append(j.b, '"')
		j.b = append(j.b, imageRepo(p.image)...)
		j.raw(`@sha256:`)
		j.b = g.appendHex(j.b, 64)
		j.raw(`","containerID":"containerd://`)
		j.b = g.appendHex(j.b, 64)
		j.raw(`","started":true}],"qosClass":`)
		if p.hash != "" {
			j.raw(`"Burstable"`)
		} else {
			j.raw(`"BestEffort"`)
		}
	}
	j.raw(`}}`)
	return j.b
}

// ipb returns a quoted pod IP.
func (j *w) ipb() []byte { j.ip(); return j.b }

func imageRepo(image string) string {
	for i := len(image) - 1; i >= 0; i-- {
		switch image[i] {
		case ':':
			return image[:i]
		case '/':
			return image
		}
	}
	return image
}

// nodeIP returns the InternalIP of a node by name.
func (g *Generator) nodeIP(node string) string {
	for i, n := range g.nodes {
		if n == node {
			return g.kubelets[i].ip
		}
	}
	return "10.224.0.4"
}

// appPod fills a running pod of app in ns, owned by a ReplicaSet.
func (g *Generator) appPod(ns, app string, t time.Time) pod {
	hash := g.suffix(10)
	n, _ := g.node()
	return pod{ns: ns, name: app + "-" + hash + "-" + g.suffix(5), app: app, hash: hash,
		rs: app + "-" + hash, rsUID: g.uuid(), image: "contoso.azurecr.io/" + app + ":1.4." + strconv.Itoa(g.pick(4)),
		node: n, created: t.Add(-time.Duration(60+g.pick(86400*14)) * time.Second), now: t, form: podRunning}
}

// appendDeployment writes a Deployment (rs false) or a ReplicaSet of app.
func (g *Generator) appendDeployment(b []byte, ns, app string, t time.Time, rs, item bool) []byte {
	j := w{b: b, g: g}
	hash := g.suffix(10)
	created := t.Add(-time.Duration(3600+g.pick(86400*60)) * time.Second)
	replicas := 2 + g.pick(3)
	gen := 1 + g.pick(40)
	a := podApps[app]
	j.raw(`{`)
	if !item {
		if rs {
			j.raw(`"kind":"ReplicaSet","apiVersion":"apps/v1",`)
		} else {
			j.raw(`"kind":"Deployment","apiVersion":"apps/v1",`)
		}
	}
	j.raw(`"metadata":{"name":`)
	if rs {
		j.str(app + "-" + hash)
	} else {
		j.str(app)
	}
	j.raw(`,"namespace":`)
	j.str(ns)
	j.raw(`,"uid":`)
	j.uid()
	j.raw(`,"resourceVersion":`)
	j.rv()
	j.raw(`,"generation":`)
	j.num(gen)
	j.raw(`,"creationTimestamp":`)
	j.ts(created)
	j.raw(`,"labels":{"app":`)
	j.str(app)
	j.raw(`,"app.kubernetes.io/part-of":"shop"`)
	if rs {
		j.raw(`,"pod-template-hash":`)
		j.str(hash)
	}
	j.raw(`},"annotations":{"deployment.kubernetes.io/revision":"`)
	j.num(gen)
	j.raw(`"`)
	if rs {
		j.raw(`,"deployment.kubernetes.io/desired-replicas":"`)
		j.num(replicas)
		j.raw(`","deployment.kubernetes.io/max-replicas":"`)
		j.num(replicas + 1)
		j.raw(`"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":`)
		j.str(app)
		j.raw(`,"uid":`)
		j.uid()
		j.raw(`,"controller":true,"blockOwnerDeletion":true}]`)
	} else {
		j.raw(`,"meta.helm.sh/release-name":"shop","meta.helm.sh/release-namespace":`)
		j.str(ns)
		j.raw(`}`)
	}
	j.raw(`,"managedFields":[{"manager":"helm","operation":"Update","apiVersion":"apps/v1","time":`)
	j.ts(created)
	j.raw(`,"fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:meta.helm.sh/release-name":{},"f:meta.helm.sh/release-namespace":{}},"f:labels":{".":{},"f:app":{},"f:app.kubernetes.io/part-of":{}}},"f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{},"f:strategy":{"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{}}}}}},{"manager":"kube-controller-manager","operation":"Update","apiVersion":"apps/v1","time":`)
	j.ts(t.Add(-time.Duration(g.pick(3600)) * time.Second))
	j.raw(`,"fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{"f:deployment.kubernetes.io/revision":{}}},"f:status":{"f:availableReplicas":{},"f:conditions":{".":{}},"f:observedGeneration":{},"f:readyReplicas":{},"f:replicas":{},"f:updatedReplicas":{}}},"subresource":"status"}]},"spec":{"replicas":`)
	j.num(replicas)
	j.raw(`,"selector":{"matchLabels":{"app":`)
	j.str(app)
	if rs {
		j.raw(`,"pod-template-hash":`)
		j.str(hash)
	}
	j.raw(`}},"template":{"metadata":{"creationTimestamp":null,"labels":{"app":`)
	j.str(app)
	if rs {
		j.raw(`,"pod-template-hash":`)
		j.str(hash)
	}
	j.raw(`}},"spec":{"containers":[{"name":`)
	j.str(app)
	j.raw(`,"image":"contoso.azurecr.io/`)
	j.raw(app)
	j.raw(`:1.4.`)
	j.num(g.pick(4))
	j.raw(`","ports":[{"name":"http","containerPort":`)
	j.num(a.port)
	j.raw(`,"protocol":"TCP"}],"env":[`)
	j.raw(a.env)
	j.raw(`],"resources":{"limits":{"cpu":"`)
	j.raw(a.cpu)
	j.raw(`","memory":"`)
	j.raw(a.mem)
	j.raw(`"},"requests":{"cpu":"100m","memory":"128Mi"}},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent","securityContext":{"capabilities":{"drop":["ALL"]},"runAsNonRoot":true,"readOnlyRootFilesystem":true,"allowPrivilegeEscalation":false}}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","securityContext":{},"schedulerName":"default-scheduler"}}`)
	if !rs {
		j.raw(`,"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}},"revisionHistoryLimit":10,"progressDeadlineSeconds":600`)
	}
	j.raw(`},"status":{"replicas":`)
	j.num(replicas)
	j.raw(`,"fullyLabeledReplicas":`)
	j.num(replicas)
	j.raw(`,"readyReplicas":`)
	j.num(replicas)
	j.raw(`,"availableReplicas":`)
	j.num(replicas)
	j.raw(`,"observedGeneration":`)
	j.num(gen)
	if !rs {
		j.raw(`,"updatedReplicas":`)
		j.num(replicas)
		j.raw(`,"conditions":[{"type":"Available","status":"True","lastUpdateTime":`)
		j.ts(created)
		j.raw(`,"lastTransitionTime":`)
		j.ts(created)
		j.raw(`,"reason":"MinimumReplicasAvailable","message":"Deployment has minimum availability."},{"type":"Progressing","status":"True","lastUpdateTime":`)
		j.ts(t.Add(-time.Duration(g.pick(3600)) * time.Second))
		j.raw(`,"lastTransitionTime":`)
		j.ts(created)
		j.raw(`,"reason":"NewReplicaSetAvailable","message":"ReplicaSet \"`)
		j.raw(app)
		j.raw(`-`)
		j.raw(hash)
		j.raw(`\" has successfully progressed."}]`)
	}
	j.raw(`}}`)
	return j.b
}
