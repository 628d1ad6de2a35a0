package gen

import (
	"bytes"
	"strconv"
	"time"
)

// The other object bodies of RequestResponse events.

// nodeState is what stays the same across events about one node.
type nodeState struct {
	uid, leaseUID, machineID, systemUUID, bootID string
	created                                      time.Time
}

func (g *Generator) initNodes() {
	for range g.nodes {
		var s nodeState
		s.uid, s.leaseUID, s.systemUUID, s.bootID = g.uuid(), g.uuid(), g.uuid(), g.uuid()
		s.machineID = string(g.appendHex(nil, 32))
		s.created = g.opts.End.Add(-g.opts.Span - time.Duration(86400+g.pick(86400*20))*time.Second)
		g.nodeStates = append(g.nodeStates, s)
	}
}

func (g *Generator) nodeIndex(node string) int {
	for i, n := range g.nodes {
		if n == node {
			return i
		}
	}
	return 0
}

var nodeConditions = [...][3]string{
	{"MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"},
	{"DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
	{"PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
	{"Ready", "KubeletReady", "kubelet is posting ready status"},
}

func (j *w) nodeConds(t time.Time, created time.Time) {
	j.raw(`"conditions":[`)
	for i, c := range nodeConditions {
		if i > 0 {
			j.raw(`,`)
		}
		j.raw(`{"type":"`)
		j.raw(c[0])
		if c[0] == "Ready" {
			j.raw(`","status":"True","lastHeartbeatTime":`)
		} else {
			j.raw(`","status":"False","lastHeartbeatTime":`)
		}
		j.ts(t)
		j.raw(`,"lastTransitionTime":`)
		j.ts(created)
		j.raw(`,"reason":"`)
		j.raw(c[1])
		j.raw(`","message":"`)
		j.raw(c[2])
		j.raw(`"}`)
	}
	j.raw(`]`)
}

// appendNodeStatusPatch writes the strategic merge patch a kubelet sends
// with its status heartbeat.
func (g *Generator) appendNodeStatusPatch(b []byte, t time.Time) []byte {
	j := w{b: b, g: g}
	j.raw(`{"status":{"$setElementOrder/conditions":[{"type":"MemoryPressure"},{"type":"DiskPressure"},{"type":"PIDPressure"},{"type":"Ready"}],"conditions":[`)
	for i, c := range nodeConditions {
		if i > 0 {
			j.raw(`,`)
		}
		j.raw(`{"lastHeartbeatTime":`)
		j.ts(t)
		j.raw(`,"type":"`)
		j.raw(c[0])
		j.raw(`"}`)
	}
	j.raw(`]}}`)
	return j.b
}

// appendNode writes node i.
func (g *Generator) appendNode(b []byte, i int, t time.Time, item bool) []byte {
	j := w{b: b, g: g}
	n, s := g.nodes[i], &g.nodeStates[i]
	j.raw(`{`)
	if !item {
		j.raw(`"kind":"Node","apiVersion":"v1",`)
	}
	j.raw(`"metadata":{"name":`)
	j.str(n)
	j.raw(`,"uid":`)
	j.str(s.uid)
	j.raw(`,"resourceVersion":`)
	j.rv()
	j.raw(`,"creationTimestamp":`)
	j.ts(s.created)
	j.raw(`,"labels":{"agentpool":"nodepool1","beta.kubernetes.io/arch":"amd64","beta.kubernetes.io/instance-type":"Standard_D4ds_v5","beta.kubernetes.io/os":"linux","failure-domain.beta.kubernetes.io/region":"westeurope","failure-domain.beta.kubernetes.io/zone":"westeurope-`)
	j.num(1 + i%3)
	j.raw(`","kubernetes.azure.com/agentpool":"nodepool1","kubernetes.azure.com/cluster":"MC_rg-prod_aks-prod_westeurope","kubernetes.azure.com/mode":"system","kubernetes.azure.com/node-image-version":"AKSUbuntu-2204gen2containerd-202505.14.0","kubernetes.azure.com/os-sku":"Ubuntu","kubernetes.io/arch":"amd64","kubernetes.io/hostname":`)
	j.str(n)
	j.raw(`,"kubernetes.io/os":"linux","node.kubernetes.io/instance-type":"Standard_D4ds_v5","topology.kubernetes.io/region":"westeurope","topology.kubernetes.io/zone":"westeurope-`)
	j.num(1 + i%3)
	j.raw(`"},"annotations":{"csi.volume.kubernetes.io/nodeid":"{\"disk.csi.azure.com\":\"`)
	j.raw(n)
	j.raw(`\",\"file.csi.azure.com\":\"`)
	j.raw(n)
	j.raw(`\"}","node.alpha.kubernetes.io/ttl":"0","volumes.kubernetes.io/controller-managed-attach-detach":"true"}},"spec":{"podCIDR":"10.244.`)
	j.num(i)
	j.raw(`.0/24","podCIDRs":["10.244.`)
	j.num(i)
	j.raw(`.0/24"],"providerID":"azure:///subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/mc_rg-prod_aks-prod_westeurope/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-12345678-vmss/virtualMachines/`)
	j.num(i)
	j.raw(`"},"status":{"capacity":{"cpu":"4","ephemeral-storage":"129886128Ki","hugepages-1Gi":"0","hugepages-2Mi":"0","memory":"16375836Ki","pods":"110"},"allocatable":{"cpu":"3860m","ephemeral-storage":"119703055367","hugepages-1Gi":"0","hugepages-2Mi":"0","memory":"12880412Ki","pods":"110"},`)
	j.nodeConds(t.Add(-time.Duration(g.pick(40))*time.Second), s.created)
	j.raw(`,"addresses":[{"type":"InternalIP","address":`)
	j.str(g.kubelets[i].ip)
	j.raw(`},{"type":"Hostname","address":`)
	j.str(n)
	j.raw(`}],"daemonEndpoints":{"kubeletEndpoint":{"Port":10250}},"nodeInfo":{"machineID":`)
	j.str(s.machineID)
	j.raw(`,"systemUUID":`)
	j.str(s.systemUUID)
	j.raw(`,"bootID":`)
	j.str(s.bootID)
	j.raw(`,"kernelVersion":"5.15.0-1084-azure","osImage":"Ubuntu 22.04.5 LTS","containerRuntimeVersion":"containerd://1.7.27-1","kubeletVersion":"v1.32.0","kubeProxyVersion":"v1.32.0","operatingSystem":"linux","architecture":"amd64"},"images":[`)
	for k, img := range [...]string{"mcr.microsoft.com/oss/kubernetes/kube-proxy", "contoso.azurecr.io/web"} {
		if k > 0 {
			j.raw(`,`)
		}
		j.raw(`{"names":["`)
		j.raw(img)
		j.raw(`@sha256:`)
		j.b = g.appendHex(j.b, 64)
		j.raw(`","`)
		j.raw(img)
		j.raw(`:v1.`)
		j.num(28 + k)
		j.raw(`.`)
		j.num(g.pick(9))
		j.raw(`"],"sizeBytes":`)
		j.num(20000000 + g.pick(90000000))
		j.raw(`}`)
	}
	j.raw(`]}}`)
	return j.b
}

// appendLease writes a node's lease (node >= 0) or a leader-election
// lease named name in kube-system.
func (g *Generator) appendLease(b []byte, node int, name string, t time.Time) []byte {
	j := w{b: b, g: g}
	j.raw(`{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":`)
	j.str(name)
	if node >= 0 {
		s := &g.nodeStates[node]
		j.raw(`,"namespace":"kube-node-lease","uid":`)
		j.str(s.leaseUID)
		j.raw(`,"resourceVersion":`)
		j.rv()
		j.raw(`,"creationTimestamp":`)
		j.ts(s.created)
		j.raw(`,"ownerReferences":[{"apiVersion":"v1","kind":"Node","name":`)
		j.str(name)
		j.raw(`,"uid":`)
		j.str(s.uid)
		j.raw(`}],"managedFields":[{"manager":"kubelet","operation":"Update","apiVersion":"coordination.k8s.io/v1","time":`)
		j.ts(t)
		j.raw(`,"fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:ownerReferences":{".":{},"k:{\"uid\":\"`)
		j.raw(s.uid)
		j.raw(`\"}":{}}},"f:spec":{"f:holderIdentity":{},"f:leaseDurationSeconds":{},"f:renewTime":{}}}}]},"spec":{"holderIdentity":`)
		j.str(name)
		j.raw(`,"leaseDurationSeconds":40,"renewTime":`)
		j.mts(t)
		j.raw(`}}`)
		return j.b
	}
	j.raw(`,"namespace":"kube-system","uid":`)
	j.uid()
	j.raw(`,"resourceVersion":`)
	j.rv()
	j.raw(`,"creationTimestamp":`)
	j.ts(g.opts.End.Add(-g.opts.Span - 90*24*time.Hour))
	j.raw(`,"managedFields":[{"manager":`)
	j.str(name)
	j.raw(`,"operation":"Update","apiVersion":"coordination.k8s.io/v1","time":`)
	j.ts(t)
	j.raw(`,"fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:acquireTime":{},"f:holderIdentity":{},"f:leaseDurationSeconds":{},"f:leaseTransitions":{},"f:renewTime":{}}}}]},"spec":{"holderIdentity":"`)
	j.raw(name)
	j.raw(`-6c8f9b7d4-`)
	j.b = g.appendSuffix(j.b, 5)
	j.raw(`_`)
	j.b = g.appendUUID(j.b)
	j.raw(`","leaseDurationSeconds":15,"acquireTime":`)
	j.mts(t.Add(-time.Duration(3600+g.pick(86400*3)) * time.Second))
	j.raw(`,"renewTime":`)
	j.mts(t)
	j.raw(`,"leaseTransitions":`)
	j.num(3 + g.pick(20))
	j.raw(`}}`)
	return j.b
}

// appendEndpoints writes the Endpoints (slice false) or an EndpointSlice
// (slice true, named name) of service svc in ns.
func (g *Generator) appendEndpoints(b []byte, ns, svc, name string, slice bool, t time.Time) []byte {
	j := w{b: b, g: g}
	port := 8080
	switch svc {
	case "redis":
		port = 6379
	case "postgres":
		port = 5432
	case "metrics":
		port = 9090
	}
	if slice {
		j.raw(`{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":`)
		j.str(name)
		j.raw(`,"generateName":`)
		j.str(svc + "-")
	} else {
		j.raw(`{"kind":"Endpoints","apiVersion":"v1","metadata":{"name":`)
		j.str(svc)
	}
	j.raw(`,"namespace":`)
	j.str(ns)
	j.raw(`,"uid":`)
	j.uid()
	j.raw(`,"resourceVersion":`)
	j.rv()
	j.raw(`,"creationTimestamp":`)
	j.ts(t.Add(-time.Duration(86400+g.pick(86400*30)) * time.Second))
	if slice {
		j.raw(`,"generation":`)
		j.num(1 + g.pick(300))
		j.raw(`,"labels":{"app":`)
		j.str(svc)
		j.raw(`,"endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io","kubernetes.io/service-name":`)
		j.str(svc)
		j.raw(`},"annotations":{"endpoints.kubernetes.io/last-change-trigger-time":`)
		j.ts(t.Add(-time.Second))
		j.raw(`},"ownerReferences":[{"apiVersion":"v1","kind":"Service","name":`)
		j.str(svc)
		j.raw(`,"uid":`)
		j.uid()
		j.raw(`,"controller":true,"blockOwnerDeletion":true}],"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"discovery.k8s.io/v1","time":`)
		j.ts(t)
		j.raw(`,"fieldsType":"FieldsV1","fieldsV1":{"f:addressType":{},"f:endpoints":{},"f:metadata":{"f:annotations":{".":{},"f:endpoints.kubernetes.io/last-change-trigger-time":{}},"f:generateName":{},"f:labels":{".":{},"f:app":{},"f:endpointslice.kubernetes.io/managed-by":{},"f:kubernetes.io/service-name":{}},"f:ownerReferences":{".":{}}},"f:ports":{}}}]},"addressType":"IPv4","endpoints":[`)
	} else {
		j.raw(`,"labels":{"app":`)
		j.str(svc)
		j.raw(`},"annotations":{"endpoints.kubernetes.io/last-change-trigger-time":`)
		j.ts(t.Add(-time.Second))
		j.raw(`},"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":`)
		j.ts(t)
		j.raw(`,"fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:endpoints.kubernetes.io/last-change-trigger-time":{}},"f:labels":{".":{},"f:app":{}}},"f:subsets":{}}}]},"subsets":[{"addresses":[`)
	}
	hash := g.suffix(10)
	for k, n := 0, 1+g.pick(3); k < n; k++ {
		if k > 0 {
			j.raw(`,`)
		}
		node := g.nodes[g.pick(len(g.nodes))]
		if slice {
			j.raw(`{"addresses":[`)
			j.ip()
			j.raw(`],"conditions":{"ready":true,"serving":true,"terminating":false},"targetRef":{"kind":"Pod","namespace":`)
		} else {
			j.raw(`{"ip":`)
			j.ip()
			j.raw(`,"nodeName":`)
			j.str(node)
			j.raw(`,"targetRef":{"kind":"Pod","namespace":`)
		}
		j.str(ns)
		j.raw(`,"name":"`)
		j.raw(svc)
		j.raw(`-`)
		j.raw(hash)
		j.raw(`-`)
		j.b = g.appendSuffix(j.b, 5)
		j.raw(`","uid":`)
		j.uid()
		if slice {
			j.raw(`},"nodeName":`)
			j.str(node)
			j.raw(`,"zone":"westeurope-`)
			j.num(1 + g.pick(3))
			j.raw(`"}`)
		} else {
			j.raw(`}}`)
		}
	}
	if slice {
		j.raw(`],"ports":[{"name":"http","protocol":"TCP","port":`)
		j.num(port)
		j.raw(`}]}`)
	} else {
		j.raw(`],"ports":[{"name":"http","port":`)
		j.num(port)
		j.raw(`,"protocol":"TCP"}]}]}`)
	}
	return j.b
}

// configMapData holds the data of the kube-system ConfigMaps that get read.
var configMapData = map[string]string{
	"coredns":              `{"Corefile":".:53 {\n    errors\n    ready\n    health {\n      lameduck 5s\n    }\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n      pods insecure\n      fallthrough in-addr.arpa ip6.arpa\n      ttl 30\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf\n    cache 30\n    loop\n    reload\n    loadbalance\n    import custom/*.override\n}\nimport custom/*.server\n"}`,
	"kube-proxy":           `{"config.conf":"apiVersion: kubeproxy.config.k8s.io/v1alpha1\nbindAddress: 0.0.0.0\nclientConnection:\n  acceptContentTypes: \"\"\n  burst: 10\n  contentType: application/vnd.kubernetes.protobuf\n  kubeconfig: /var/lib/kubelet/kubeconfig\n  qps: 5\nclusterCIDR: 10.244.0.0/16\nconfigSyncPeriod: 15m0s\nconntrack:\n  maxPerCore: 32768\n  min: 131072\n  tcpCloseWaitTimeout: 1h0m0s\n  tcpEstablishedTimeout: 24h0m0s\nenableProfiling: false\nhealthzBindAddress: 0.0.0.0:10256\nhostnameOverride: \"\"\niptables:\n  masqueradeAll: false\n  masqueradeBit: 14\n  minSyncPeriod: 1s\n  syncPeriod: 30s\nmetricsBindAddress: 0.0.0.0:10249\nmode: iptables\nnodePortAddresses: null\noomScoreAdj: -999\nportRange: \"\"\n"}`,
	"overlay-upgrade-data": `{"overlay-upgrade-data":"{\"nodeImageVersion\":\"AKSUbuntu-2204gen2containerd-202505.14.0\",\"kubernetesVersion\":\"1.32.0\",\"upgradeSettings\":{\"maxSurge\":\"10%\",\"drainTimeoutInMinutes\":30,\"nodeSoakDurationInMinutes\":0}}"}`,
}

// appendConfigMap writes a kube-system ConfigMap.
func (g *Generator) appendConfigMap(b []byte, name string, t time.Time) []byte {
	j := w{b: b, g: g}
	j.raw(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":`)
	j.str(name)
	j.raw(`,"namespace":"kube-system","uid":`)
	j.uid()
	j.raw(`,"resourceVersion":`)
	j.rv()
	j.raw(`,"creationTimestamp":`)
	j.ts(g.opts.End.Add(-g.opts.Span - 90*24*time.Hour))
	switch name {
	case "extension-apiserver-authentication":
		j.raw(`,"managedFields":[{"manager":"kube-apiserver","operation":"Update","apiVersion":"v1","time":`)
		j.ts(t.Add(-time.Duration(g.pick(86400)) * time.Second))
		j.raw(`,"fieldsType":"FieldsV1","fieldsV1":{"f:data":{".":{},"f:client-ca-file":{},"f:requestheader-allowed-names":{},"f:requestheader-client-ca-file":{},"f:requestheader-extra-headers-prefix":{},"f:requestheader-group-headers":{},"f:requestheader-username-headers":{}}}}]},"data":{"client-ca-file":"-----BEGIN CERTIFICATE-----\n`)
		for k := 0; k < 12; k++ {
			j.b = g.appendB64(j.b, 64)
			j.raw(`\n`)
		}
		j.raw(`-----END CERTIFICATE-----\n","requestheader-allowed-names":"[\"front-proxy-client\"]","requestheader-client-ca-file":"-----BEGIN CERTIFICATE-----\n`)
		for k := 0; k < 8; k++ {
			j.b = g.appendB64(j.b, 64)
			j.raw(`\n`)
		}
		j.raw(`-----END CERTIFICATE-----\n","requestheader-extra-headers-prefix":"[\"X-Remote-Extra-\"]","requestheader-group-headers":"[\"X-Remote-Group\"]","requestheader-username-headers":"[\"X-Remote-User\"]"}}`)
	case "cluster-autoscaler-status":
		j.raw(`,"annotations":{"cluster-autoscaler.kubernetes.io/last-updated":"`)
		j.b = t.UTC().AppendFormat(j.b, "2006-01-02 15:04:05.999999999 -0700 MST")
		j.raw(`"},"managedFields":[{"manager":"cluster-autoscaler","operation":"Update","apiVersion":"v1","time":`)
		j.ts(t)
		j.raw(`,"fieldsType":"FieldsV1","fieldsV1":{"f:data":{".":{},"f:status":{}},"f:metadata":{"f:annotations":{".":{},"f:cluster-autoscaler.kubernetes.io/last-updated":{}}}}}]},"data":{"status":"time: `)
		j.b = t.UTC().AppendFormat(j.b, "2006-01-02 15:04:05.999999999 -0700 MST")
		j.raw(`\nautoscalerStatus: Running\nclusterWide:\n  health:\n    status: Healthy\n    nodeCounts:\n      registered:\n        total: `)
		j.num(len(g.nodes))
		j.raw(`\n        ready: `)
		j.num(len(g.nodes))
		j.raw(`\n        notStarted: 0\n      longUnregistered: 0\n      unregistered: 0\n    lastProbeTime: \"`)
		j.b = t.UTC().AppendFormat(j.b, time.RFC3339Nano)
		j.raw(`\"\n  scaleUp:\n    status: NoActivity\n  scaleDown:\n    status: NoCandidates\nnodeGroups:\n- name: aks-nodepool1-12345678-vmss\n  health:\n    status: Healthy\n    nodeCounts:\n      registered:\n        total: `)
		j.num(len(g.nodes))
		j.raw(`\n    cloudProviderTarget: `)
		j.num(len(g.nodes))
		j.raw(`\n    minSize: 3\n    maxSize: 12\n  scaleUp:\n    status: NoActivity\n  scaleDown:\n    status: NoCandidates\n"}}`)
	default:
		j.raw(`,"labels":{"addonmanager.kubernetes.io/mode":"Reconcile","k8s-app":`)
		j.str(name)
		j.raw(`},"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"labels\":{\"addonmanager.kubernetes.io/mode\":\"Reconcile\"},\"name\":\"`)
		j.raw(name)
		j.raw(`\",\"namespace\":\"kube-system\"}}\n"},"managedFields":[{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"v1","time":`)
		j.ts(g.opts.End.Add(-g.opts.Span - 90*24*time.Hour))
		j.raw(`,"fieldsType":"FieldsV1","fieldsV1":{"f:data":{},"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{".":{},"f:addonmanager.kubernetes.io/mode":{},"f:k8s-app":{}}}}}]},"data":`)
		j.raw(configMapData[name])
		j.raw(`}`)
	}
	return j.b
}

var eventReasons = [...][3]string{
	{"Normal", "Pulled", "Container image \"contoso.azurecr.io/web:1.4.2\" already present on machine"},
	{"Normal", "Created", "Created container: web"},
	{"Normal", "Started", "Started container web"},
	{"Normal", "Killing", "Stopping container web"},
	{"Warning", "Unhealthy", "Readiness probe failed: Get \"http://10.244.2.17:8080/ready\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"},
	{"Warning", "BackOff", "Back-off restarting failed container web in pod web-7d9f8c6b5d-x2k4p_default(0e8c1f2a-3b4d-4c5e-8f60-718293a4b5c6)"},
}

// k8sEvent is a core/v1 Event about a pod.
type k8sEvent struct {
	ns, name, pod, podUID string
	reporter              string // the kubelet's node, or "" for the replicaset controller
	reason                int    // index in eventReasons
	podRV                 uint64
}

// appendK8sEvent writes e as created (server false) or as stored.
func (g *Generator) appendK8sEvent(b []byte, e *k8sEvent, server bool, t time.Time) []byte {
	j := w{b: b, g: g}
	ns, name, pod, reporter, kubelet := e.ns, e.name, e.pod, e.reporter, e.reporter != ""
	r := &eventReasons[e.reason]
	if !kubelet {
		r = &[3]string{"Normal", "SuccessfulCreate", "Created pod: " + pod}
	}
	j.raw(`{"kind":"Event","apiVersion":"v1","metadata":{"name":`)
	j.str(name)
	j.raw(`,"namespace":`)
	j.str(ns)
	if server {
		j.raw(`,"uid":`)
		j.uid()
		j.raw(`,"resourceVersion":`)
		j.rv()
		j.raw(`,"creationTimestamp":`)
		j.ts(t)
		j.raw(`,"managedFields":[{"manager":`)
		if kubelet {
			j.raw(`"kubelet"`)
		} else {
			j.raw(`"kube-controller-manager"`)
		}
		j.raw(`,"operation":"Update","apiVersion":"v1","time":`)
		j.ts(t)
		j.raw(`,"fieldsType":"FieldsV1","fieldsV1":{"f:count":{},"f:firstTimestamp":{},"f:involvedObject":{},"f:lastTimestamp":{},"f:message":{},"f:reason":{},"f:reportingComponent":{},"f:reportingInstance":{},"f:source":{"f:component":{},"f:host":{}},"f:type":{}}}]`)
	} else {
		j.raw(`,"creationTimestamp":null`)
	}
	j.raw(`},"involvedObject":{"kind":"Pod","namespace":`)
	j.str(ns)
	j.raw(`,"name":`)
	j.str(pod)
	j.raw(`,"uid":`)
	j.str(e.podUID)
	j.raw(`,"apiVersion":"v1","resourceVersion":"`)
	j.b = strconv.AppendUint(j.b, e.podRV, 10)
	j.raw(`"`)
	if kubelet {
		j.raw(`,"fieldPath":"spec.containers{web}"`)
	}
	j.raw(`},"reason":"`)
	j.raw(r[1])
	j.raw(`","message":`)
	j.str(r[2])
	j.raw(`,"source":{"component":`)
	if kubelet {
		j.raw(`"kubelet","host":`)
		j.str(reporter)
	} else {
		j.raw(`"replicaset-controller"`)
	}
	j.raw(`},"firstTimestamp":`)
	j.ts(t)
	j.raw(`,"lastTimestamp":`)
	j.ts(t)
	j.raw(`,"count":1,"type":"`)
	j.raw(r[0])
	j.raw(`","eventTime":null,"reportingComponent":`)
	if kubelet {
		j.raw(`"kubelet","reportingInstance":`)
		j.str(reporter)
	} else {
		j.raw(`"replicaset-controller","reportingInstance":""`)
	}
	j.raw(`}`)
	return j.b
}

const apiAudience = `"https://aks-prod-dns-12345678.hcp.westeurope.azmk8s.io","\"aks-prod-dns-12345678.hcp.westeurope.azmk8s.io\""`

// appendTokenReview writes a TokenReview request (resp false) or response.
// The token is a synthetic stand-in.
func (g *Generator) appendTokenReview(b []byte, ns, sa, pod, node, token string, resp bool) []byte {
	j := w{b: b, g: g}
	j.raw(`{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"token":`)
	j.str(token)
	j.raw(`,"audiences":[`)
	j.raw(apiAudience)
	j.raw(`]},"status":{`)
	if !resp {
		j.raw(`"user":{}}}`)
		return j.b
	}
	j.raw(`"authenticated":true,"user":{"username":"system:serviceaccount:`)
	j.raw(ns)
	j.raw(`:`)
	j.raw(sa)
	j.raw(`","uid":`)
	j.uid()
	j.raw(`,"groups":["system:serviceaccounts","system:serviceaccounts:`)
	j.raw(ns)
	j.raw(`","system:authenticated"],"extra":{"authentication.kubernetes.io/credential-id":["JTI=`)
	j.b = g.appendUUID(j.b)
	j.raw(`"],"authentication.kubernetes.io/node-name":[`)
	j.str(node)
	j.raw(`],"authentication.kubernetes.io/node-uid":[`)
	j.uid()
	j.raw(`],"authentication.kubernetes.io/pod-name":[`)
	j.str(pod)
	j.raw(`],"authentication.kubernetes.io/pod-uid":[`)
	j.uid()
	j.raw(`]}},"audiences":[`)
	j.raw(apiAudience)
	j.raw(`]}}`)
	return j.b
}

// appendSAR writes a SubjectAccessReview request (resp false) or response.
func (g *Generator) appendSAR(b []byte, ns, uid string, u *user, resp bool) []byte {
	j := w{b: b, g: g}
	j.raw(`{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"resourceAttributes":{"namespace":`)
	j.str(ns)
	j.raw(`,"verb":"get","version":"v1beta1","resource":"pods","group":"metrics.k8s.io"},"user":`)
	j.str(u.name)
	j.raw(`,"groups":[`)
	for i, gr := range u.groups {
		if i > 0 {
			j.raw(`,`)
		}
		j.str(gr)
	}
	j.raw(`],"uid":`)
	j.str(uid)
	j.raw(`},"status":{"allowed":`)
	if resp {
		j.raw(`true,"reason":"RBAC: allowed by ClusterRoleBinding \"system:metrics-server\" of ClusterRole \"system:metrics-server\" to ServiceAccount \"metrics-server/kube-system\""}}`)
	} else {
		j.raw(`false}}`)
	}
	return j.b
}

// appendTokenRequest writes a kubelet's TokenRequest for a pod's service
// account token, or its response (with a synthetic token).
func (g *Generator) appendTokenRequest(b []byte, ns, pod, podUID string, t time.Time, resp bool) []byte {
	j := w{b: b, g: g}
	j.raw(`{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{`)
	if resp {
		j.raw(`"name":"default","namespace":`)
		j.str(ns)
		j.raw(`,"creationTimestamp":`)
		j.ts(t)
	} else {
		j.raw(`"creationTimestamp":null`)
	}
	j.raw(`},"spec":{"audiences":[`)
	j.raw(apiAudience)
	j.raw(`],"expirationSeconds":3607,"boundObjectRef":{"kind":"Pod","apiVersion":"v1","name":`)
	j.str(pod)
	j.raw(`,"uid":`)
	j.str(podUID)
	j.raw(`}},"status":{"token":"`)
	if resp {
		j.raw(`synthetic.`)
		j.b = g.appendB64(j.b, 48)
	}
	j.raw(`","expirationTimestamp":`)
	if resp {
		j.ts(t.Add(3607 * time.Second))
	} else {
		j.raw(`null`)
	}
	j.raw(`}}`)
	return j.b
}

// appendDeleted writes the Status a delete of a Deployment returns.
func (g *Generator) appendDeleted(b []byte, name string) []byte {
	j := w{b: b, g: g}
	j.raw(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{"name":`)
	j.str(name)
	j.raw(`,"group":"apps","kind":"deployments","uid":`)
	j.uid()
	j.raw(`}}`)
	return j.b
}

var smallKinds = map[string][2]string{
	"services": {"Service", "v1"}, "namespaces": {"Namespace", "v1"}, "serviceaccounts": {"ServiceAccount", "v1"},
	"roles": {"Role", "rbac.authorization.k8s.io/v1"}, "clusterrolebindings": {"ClusterRoleBinding", "rbac.authorization.k8s.io/v1"},
}

// appendSmall writes a Service, Namespace, ServiceAccount, Role or
// ClusterRoleBinding (resource names the kind) for lists and gets.
func (g *Generator) appendSmall(b []byte, resource, ns string, t time.Time, item bool) []byte {
	j := w{b: b, g: g}
	svc := [...]string{"api", "web", "redis", "postgres", "metrics"}[g.pick(5)]
	k := smallKinds[resource]
	j.raw(`{`)
	if !item {
		j.raw(`"kind":"`)
		j.raw(k[0])
		j.raw(`","apiVersion":"`)
		j.raw(k[1])
		j.raw(`",`)
	}
	name := svc
	switch resource {
	case "namespaces":
		name = ns
	case "roles":
		name = svc + "-reader"
	case "clusterrolebindings":
		name = "shop:" + svc + "-reader"
	}
	j.raw(`"metadata":{"name":`)
	j.str(name)
	if resource != "namespaces" && resource != "clusterrolebindings" {
		j.raw(`,"namespace":`)
		j.str(ns)
	}
	j.raw(`,"uid":`)
	j.uid()
	j.raw(`,"resourceVersion":`)
	j.rv()
	j.raw(`,"creationTimestamp":`)
	created := t.Add(-time.Duration(86400+g.pick(86400*60)) * time.Second)
	j.ts(created)
	j.raw(`,"labels":{"app.kubernetes.io/managed-by":"Helm","app.kubernetes.io/part-of":"shop"},"annotations":{"meta.helm.sh/release-name":"shop","meta.helm.sh/release-namespace":`)
	j.str(ns)
	j.raw(`},"managedFields":[{"manager":"helm","operation":"Update","apiVersion":"`)
	j.raw(k[1])
	j.raw(`","time":`)
	j.ts(created)
	j.raw(`,"fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:meta.helm.sh/release-name":{},"f:meta.helm.sh/release-namespace":{}},"f:labels":{".":{},"f:app.kubernetes.io/managed-by":{},"f:app.kubernetes.io/part-of":{}}}}}]}`)
	switch resource {
	case "services":
		j.raw(`,"spec":{"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":"http"}],"selector":{"app":`)
		j.str(svc)
		j.raw(`},"clusterIP":"10.0.`)
		j.num(g.pick(256))
		j.raw(`.`)
		j.num(1 + g.pick(254))
		j.raw(`","clusterIPs":["10.0.`)
		j.num(g.pick(256))
		j.raw(`.`)
		j.num(1 + g.pick(254))
		j.raw(`"],"type":"ClusterIP","sessionAffinity":"None","ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","internalTrafficPolicy":"Cluster"},"status":{"loadBalancer":{}}}`)
	case "namespaces":
		j.raw(`,"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}}`)
	case "serviceaccounts":
		j.raw(`,"automountServiceAccountToken":false}`)
	case "roles":
		j.raw(`,"rules":[{"verbs":["get","list","watch"],"apiGroups":[""],"resources":["pods","pods/log","services","endpoints","configmaps"]},{"verbs":["get","list"],"apiGroups":["apps"],"resources":["deployments","replicasets"]}]}`)
	default:
		j.raw(`,"subjects":[{"kind":"Group","apiGroup":"rbac.authorization.k8s.io","name":"5f3a1c2e-8b7d-4e6f-9a0b-1c2d3e4f5a6b"},{"kind":"ServiceAccount","name":`)
		j.str(svc)
		j.raw(`,"namespace":`)
		j.str(ns)
		j.raw(`}],"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"view"}}`)
	}
	return j.b
}

var listKinds = map[string]string{
	"pods": "PodList", "services": "ServiceList", "deployments": "DeploymentList", "replicasets": "ReplicaSetList",
	"nodes": "NodeList", "namespaces": "NamespaceList", "serviceaccounts": "ServiceAccountList",
	"roles": "RoleList", "clusterrolebindings": "ClusterRoleBindingList",
}

// appendObject writes one object of resource r (get form, or a list item).
func (g *Generator) appendObject(b []byte, r *objRef, t time.Time, item bool, node string) []byte {
	ns := r.namespace
	if ns == "" {
		ns = appNamespaces[g.pick(len(appNamespaces))]
	}
	app := [...]string{"web", "api", "worker"}[g.pick(3)]
	switch r.resource {
	case "pods":
		p := g.appPod(ns, app, t)
		if r.name != "" && !item {
			p.name = r.name
		}
		p.item = item
		if node != "" {
			p.node = node
		}
		return g.appendPod(b, &p)
	case "deployments":
		return g.appendDeployment(b, ns, app, t, false, item)
	case "replicasets":
		return g.appendDeployment(b, ns, app, t, true, item)
	case "nodes":
		return g.appendNode(b, g.pick(len(g.nodes)), t, item)
	default:
		return g.appendSmall(b, r.resource, ns, t, item)
	}
}

// appendList writes a list of 1 to 3 objects of resource r (pods on node
// when node is set).
func (g *Generator) appendList(b []byte, r *objRef, t time.Time, node string) []byte {
	j := w{b: b, g: g}
	j.raw(`{"kind":"`)
	j.raw(listKinds[r.resource])
	j.raw(`","apiVersion":"`)
	if r.apiGroup != "" {
		j.raw(r.apiGroup)
		j.raw(`/`)
	}
	j.raw(r.apiVersion)
	j.raw(`","metadata":{"resourceVersion":`)
	j.rv()
	j.raw(`},"items":[`)
	n := 1 + g.pick(2)
	if r.resource == "pods" || r.resource == "nodes" {
		n = 1 + g.pick(3)/2 // the big ones: one or two
	}
	for k := 0; k < n; k++ {
		if k > 0 {
			j.raw(`,`)
		}
		j.b = g.appendObject(j.b, r, t, true, node)
	}
	j.raw(`]}`)
	return j.b
}

// requestOf appends to b the request body of an update whose response is
// resp: the same object at its previous resourceVersion.
func (g *Generator) requestOf(b, resp []byte) []byte {
	const key = `"resourceVersion":"`
	i := bytes.Index(resp, []byte(key))
	if i < 0 {
		return append(b, resp...)
	}
	i += len(key)
	k := bytes.IndexByte(resp[i:], '"')
	v, err := strconv.ParseUint(string(resp[i:i+k]), 10, 64)
	if err != nil || v < 1000 {
		return append(b, resp...)
	}
	b = append(b, resp[:i]...)
	b = strconv.AppendUint(b, v-uint64(1+g.pick(500)), 10)
	return append(b, resp[i+k:]...)
}
