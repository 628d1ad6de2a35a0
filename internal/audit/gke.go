package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// This file turns a GKE Cloud Audit Log entry (a LogEntry whose
// protoPayload is an AuditLog written by the Kubernetes API server) back
// into an audit Event, so that the same rules and views read it.
//
// The mapping:
//
//	protoPayload.methodName            verb (its last part), and the resource when resourceName is absent
//	protoPayload.resourceName          objectRef (apiGroup/version/[namespaces/NS/]resource/name[/subresource]) and requestURI
//	protoPayload.authenticationInfo    user.username (principalEmail, else principalSubject, else authoritySelector)
//	protoPayload.requestMetadata       sourceIPs (callerIP) and userAgent (callerSuppliedUserAgent)
//	protoPayload.request / .response   requestObject / responseObject
//	protoPayload.status                responseStatus (gRPC code mapped to HTTP; absent or {} is 200)
//	protoPayload.authorizationInfo     annotations["authorization.k8s.io/decision"] (allow/forbid)
//	timestamp, else receiveTimestamp   requestReceivedTimestamp and stageTimestamp
//	insertId, else a hash of the entry auditID
//	resource.labels                    the cluster resource id //container.googleapis.com/projects/P/locations/L/clusters/C
//
// An entry that another Google service wrote (compute, deployment
// manager) is skipped, not rejected.

// gkeResourcePrefix starts every GKE cluster resource id; audit.DataSource
// maps it to "Google Kubernetes Engine".
const gkeResourcePrefix = "//container.googleapis.com/"

type gkeEntry struct {
	ProtoPayload *struct {
		ServiceName        string `json:"serviceName"`
		MethodName         string `json:"methodName"`
		ResourceName       string `json:"resourceName"`
		RequestURI         string `json:"requestURI"`
		AuthenticationInfo struct {
			PrincipalEmail    string `json:"principalEmail"`
			PrincipalSubject  string `json:"principalSubject"`
			AuthoritySelector string `json:"authoritySelector"`
		} `json:"authenticationInfo"`
		AuthorizationInfo []struct {
			Granted *bool `json:"granted"`
		} `json:"authorizationInfo"`
		RequestMetadata struct {
			CallerIP                string `json:"callerIP"` // encoding/json also matches callerIp
			CallerSuppliedUserAgent string `json:"callerSuppliedUserAgent"`
		} `json:"requestMetadata"`
		Request   json.RawMessage `json:"request"`
		Response  json.RawMessage `json:"response"`
		Status    json.RawMessage `json:"status"`
		Timestamp string          `json:"timestamp"`
	} `json:"protoPayload"`
	InsertID         string `json:"insertId"`
	Timestamp        string `json:"timestamp"`
	ReceiveTimestamp string `json:"receiveTimestamp"`
	LogName          string `json:"logName"`
	Resource         struct {
		Type   string            `json:"type"`
		Labels map[string]string `json:"labels"`
	} `json:"resource"`
}

// errNotKubernetes marks a Cloud Audit Log entry of another service.
var errNotKubernetes = errors.New("not a Kubernetes API call")

// gkeGroups maps the short API group of a GKE methodName to the group.
var gkeGroups = map[string]string{
	"core": "", "rbac": "rbac.authorization.k8s.io", "admissionregistration": "admissionregistration.k8s.io",
	"certificates": "certificates.k8s.io", "networking": "networking.k8s.io", "authorization": "authorization.k8s.io",
	"authentication": "authentication.k8s.io", "apiextensions": "apiextensions.k8s.io", "coordination": "coordination.k8s.io",
	"discovery": "discovery.k8s.io", "scheduling": "scheduling.k8s.io", "storage": "storage.k8s.io", "node": "node.k8s.io",
	"events": "events.k8s.io", "flowcontrol": "flowcontrol.apiserver.k8s.io", "resource": "resource.k8s.io",
}

// Kubernetes verbs, the last part of a methodName.
var gkeVerbs = map[string]bool{
	"create": true, "get": true, "list": true, "watch": true, "update": true, "patch": true,
	"delete": true, "deletecollection": true, "proxy": true, "connect": true,
}

// Non-resource paths that GKE writes as core/v1/<path>.
var gkeNonResource = map[string]bool{"healthz": true, "readyz": true, "livez": true, "version": true, "metrics": true, "openapi": true}

// fromGKE converts a Cloud Audit Log entry.
func fromGKE(entry []byte) (converted, error) {
	var c converted
	var g gkeEntry
	if err := json.Unmarshal(entry, &g); err != nil {
		return c, fmt.Errorf("GKE audit log entry: %v", err)
	}
	p := g.ProtoPayload
	if p == nil {
		return c, errors.New("GKE audit log entry: protoPayload is not an object")
	}
	if !strings.HasPrefix(p.MethodName, "io.k8s.") && p.ServiceName != "k8s.io" {
		return c, fmt.Errorf("%w: GKE audit log entry for %q (%s)", errNotKubernetes, p.ServiceName, p.MethodName)
	}
	if p.MethodName == "" {
		return c, errors.New("GKE audit log entry: protoPayload has no methodName")
	}
	w := newEventWriter(true)
	put := func(k string, v any) {
		b, err := json.Marshal(v)
		if err == nil {
			w.member(k, b)
		}
	}
	id := g.InsertID
	if id == "" {
		sum := sha256.Sum256(entry)
		id = "gke-" + hex.EncodeToString(sum[:12])
	}
	put("auditID", id)
	put("stage", "ResponseComplete")
	level := "Metadata"
	if len(p.Request) > 0 || len(p.Response) > 0 {
		level = "RequestResponse"
	}
	put("level", level)

	ref, verb, nonResource := gkeObjectRef(p.MethodName, p.ResourceName)
	if verb != "" {
		put("verb", verb)
	}
	uri := p.RequestURI
	if uri == "" {
		uri = gkeRequestURI(ref, nonResource, p.Request)
	}
	if uri != "" {
		put("requestURI", uri)
	}
	user := p.AuthenticationInfo.PrincipalEmail
	for _, alt := range []string{p.AuthenticationInfo.PrincipalSubject, p.AuthenticationInfo.AuthoritySelector} {
		if user == "" {
			user = alt
		}
	}
	if user != "" {
		u := map[string]any{"username": user}
		if user == "system:anonymous" {
			u["groups"] = []string{"system:unauthenticated"}
		}
		put("user", u)
	}
	if ip := p.RequestMetadata.CallerIP; ip != "" {
		put("sourceIPs", []string{ip})
	}
	if ua := p.RequestMetadata.CallerSuppliedUserAgent; ua != "" {
		put("userAgent", ua)
	}
	if len(ref) > 0 {
		put("objectRef", ref)
	}
	denied := false
	for _, a := range p.AuthorizationInfo {
		denied = denied || (a.Granted != nil && !*a.Granted)
	}
	put("responseStatus", gkeStatus(p.Status, p.Response, denied))
	if len(p.Request) > 0 && jsonKind(p.Request) != 'z' {
		w.member("requestObject", compact(p.Request))
	}
	if len(p.Response) > 0 && jsonKind(p.Response) != 'z' {
		w.member("responseObject", compact(p.Response))
	}
	ann := map[string]string{"cloudaudit.googleapis.com/methodName": p.MethodName}
	if len(p.AuthorizationInfo) > 0 && p.AuthorizationInfo[0].Granted != nil {
		ann["authorization.k8s.io/decision"] = map[bool]string{true: "allow", false: "forbid"}[*p.AuthorizationInfo[0].Granted]
	}
	for _, ts := range []string{g.Timestamp, p.Timestamp, g.ReceiveTimestamp} {
		if t, ok := parseEnvelopeTime(ts); ok {
			s := t.Format(time.RFC3339Nano)
			put("requestReceivedTimestamp", s)
			put("stageTimestamp", s)
			c.time = t
			break
		}
	}
	put("annotations", ann)
	c.resourceID = gkeResourceID(g.Resource.Labels, g.LogName)
	c.cluster = g.Resource.Labels["cluster_name"]
	var err error
	c.raw, err = w.done()
	return c, err
}

// gkeObjectRef reads the objectRef and verb from methodName
// (io.k8s.<group>.<version>.<resource>[.<subresource>].<verb>) and
// resourceName (<group>/<version>/[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]).
func gkeObjectRef(method, resource string) (ref map[string]string, verb string, nonResource string) {
	parts := strings.Split(strings.TrimPrefix(method, "io.k8s."), ".")
	if n := len(parts); n > 0 && gkeVerbs[parts[n-1]] {
		verb = parts[n-1]
		parts = parts[:n-1]
	}
	ref = map[string]string{}
	resource = strings.Trim(resource, "/")
	segs := strings.Split(resource, "/")
	switch {
	case len(segs) == 3 && gkeNonResource[segs[2]]:
		// core/v1/healthz: a non-resource path written like a resource.
		if verb == "" {
			verb = "get"
		}
		return nil, verb, "/" + segs[2]
	case resource != "" && len(segs) >= 3:
		group := segs[0]
		if group == "core" {
			group = ""
		}
		if group != "" {
			ref["apiGroup"] = group
		}
		ref["apiVersion"] = segs[1]
		rest := segs[2:]
		if len(rest) >= 3 && rest[0] == "namespaces" {
			ref["namespace"] = rest[1]
			rest = rest[2:]
		} else if len(rest) == 2 && rest[0] == "namespaces" {
			ref["resource"] = "namespaces"
			ref["name"] = rest[1]
			rest = nil
		}
		if len(rest) > 0 {
			ref["resource"] = rest[0]
		}
		if len(rest) > 1 {
			ref["name"] = rest[1]
		}
		if len(rest) > 2 {
			ref["subresource"] = rest[2]
		}
	case len(parts) >= 3:
		// No (usable) resourceName: the methodName says what was called.
		if g, ok := gkeGroups[parts[0]]; ok {
			if g != "" {
				ref["apiGroup"] = g
			}
		} else {
			ref["apiGroup"] = parts[0]
		}
		ref["apiVersion"] = parts[1]
		ref["resource"] = parts[2]
		if len(parts) > 3 {
			ref["subresource"] = parts[3]
		}
	default:
		// A non-resource URL (/readyz, /healthz, /version).
		nonResource = "/" + resource
		if resource == "" && len(parts) > 0 {
			nonResource = "/" + parts[len(parts)-1]
		}
		if verb == "" {
			verb = "get"
		}
		return nil, verb, nonResource
	}
	if ref["resource"] == "" {
		return nil, verb, "/" + resource
	}
	return ref, verb, ""
}

// gkeRequestURI rebuilds the request URI; an exec's command and container
// come from the request.
func gkeRequestURI(ref map[string]string, nonResource string, request []byte) string {
	if ref == nil {
		return nonResource
	}
	var b strings.Builder
	if g := ref["apiGroup"]; g != "" {
		b.WriteString("/apis/" + g + "/" + ref["apiVersion"])
	} else {
		b.WriteString("/api/" + ref["apiVersion"])
	}
	if ns := ref["namespace"]; ns != "" {
		b.WriteString("/namespaces/" + ns)
	}
	b.WriteString("/" + ref["resource"])
	if n := ref["name"]; n != "" {
		b.WriteString("/" + n)
	}
	if s := ref["subresource"]; s != "" {
		b.WriteString("/" + s)
	}
	if ref["subresource"] == "exec" || ref["subresource"] == "attach" {
		var req struct {
			Command   []string `json:"command"`
			Container string   `json:"container"`
		}
		if jsonKind(request) == 'o' && json.Unmarshal(request, &req) == nil {
			q := url.Values{}
			for _, c := range req.Command {
				q.Add("command", c)
			}
			if req.Container != "" {
				q.Set("container", req.Container)
			}
			if s := q.Encode(); s != "" {
				b.WriteString("?" + s)
			}
		}
	}
	return b.String()
}

// grpcHTTP maps google.rpc.Code to the HTTP status the API server sent.
var grpcHTTP = map[int]int{
	0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400,
	10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}

// gkeStatus maps a google.rpc.Status to a responseStatus. An absent or
// empty status is success (proto3 leaves out a zero, OK, code), unless
// authorization was not granted (403) or the response is a Kubernetes
// Status of kind Failure (its code, else 400).
func gkeStatus(raw, response []byte, denied bool) map[string]any {
	var st struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if jsonKind(raw) == 'o' {
		_ = json.Unmarshal(raw, &st)
	}
	code, ok := grpcHTTP[st.Code]
	if !ok {
		code = 500
	}
	var resp struct {
		Status  string `json:"status"`
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if jsonKind(response) == 'o' {
		_ = json.Unmarshal(response, &resp)
	}
	switch {
	case code != 200:
	case resp.Status == "Failure":
		code = 400
		if resp.Code >= 300 && resp.Code < 600 {
			code = resp.Code
		}
		st.Message = resp.Message
	case denied:
		code = 403
	}
	out := map[string]any{"metadata": map[string]any{}, "code": code}
	if code >= 300 {
		out["status"] = "Failure"
		if st.Message != "" {
			out["message"] = st.Message
		}
	}
	return out
}

// gkeResourceID builds the cluster's resource id from the entry's
// resource labels (or the project in logName).
func gkeResourceID(labels map[string]string, logName string) string {
	project := labels["project_id"]
	if project == "" && strings.HasPrefix(logName, "projects/") {
		project = strings.SplitN(strings.TrimPrefix(logName, "projects/"), "/", 2)[0]
	}
	id := gkeResourcePrefix
	if project != "" {
		id += "projects/" + project
	}
	if loc := labels["location"]; loc != "" && project != "" {
		id += "/locations/" + loc
	}
	if name := labels["cluster_name"]; name != "" && project != "" {
		id += "/clusters/" + name
	}
	return id
}

// parseEnvelopeTime parses an envelope's time: RFC 3339, or the
// "2006-01-02 15:04:05.999999999" (UTC) form that log pipelines write.
func parseEnvelopeTime(s string) (time.Time, bool) {
	if t, ok := ParseTime(s); ok {
		return t, true
	}
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse("2006-01-02 15:04:05.999999999", s)
	if err != nil {
		return time.Time{}, false
	}
	return ParseTime(t.UTC().Format(time.RFC3339Nano))
}
