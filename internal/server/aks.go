package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/respond"
)

// aksRequest is what the original Azure Function read from its body.
type aksRequest struct {
	Action         string
	Entities       json.RawMessage
	StorageAccount string
	BlobContainer  string
	BlobSASToken   string
	// Command is runcommand's command: a string split on spaces (as the
	// original did) or an argv array.
	Command   json.RawMessage
	Container string
	Reason    string
	DryRun    bool
}

// aksFields are the members the endpoint reads, by lower-case name.
var aksFields = []string{"action", "entities", "storageaccount", "blobcontainer", "blobsastoken", "command", "container", "reason", "dryrun"}

// parseAKSRequest reads a body as the original function did: it takes the
// members it knows, in any case, and ignores the rest (returned by name,
// for the debug log). Booleans may be strings. When the body has no
// entities member, the entities are looked for where a Sentinel alert or
// incident, or a Defender alert, keeps them, so a Logic App can post the
// whole alert.
func parseAKSRequest(body []byte) (*aksRequest, []string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if err := noTrailing(dec); err != nil {
		return nil, nil, err
	}
	if m == nil {
		return nil, nil, errors.New("invalid JSON: want an object")
	}
	req := &aksRequest{}
	var unknown []string
	seen := map[string]bool{}
	for k, v := range m {
		name := strings.ToLower(k)
		if !slices.Contains(aksFields, name) {
			unknown = append(unknown, k)
			continue
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("member %q given twice (in different case)", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "action":
			req.Action, err = stringField(name, v)
		case "entities":
			req.Entities, err = json.Marshal(v)
		case "storageaccount":
			req.StorageAccount, err = stringField(name, v)
		case "blobcontainer":
			req.BlobContainer, err = stringField(name, v)
		case "blobsastoken":
			req.BlobSASToken, err = stringField(name, v)
		case "command":
			if v != nil {
				req.Command, err = json.Marshal(v)
			}
		case "container":
			req.Container, err = stringField(name, v)
		case "reason":
			req.Reason, err = stringField(name, v)
		case "dryrun":
			req.DryRun, err = boolField(name, v)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if req.Entities == nil {
		if v, ok := alert.FindEntities(m); ok {
			b, err := json.Marshal(v)
			if err != nil {
				return nil, nil, fmt.Errorf("entities: %w", err)
			}
			req.Entities = b
		}
	}
	sort.Strings(unknown)
	return req, unknown, nil
}

// stringField reads a string member; a number is taken as its text.
func stringField(name string, v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return strings.TrimSpace(v), nil
	case json.Number:
		return v.String(), nil
	}
	return "", fmt.Errorf("%s must be a string", name)
}

// boolField reads a boolean given as one, or as a string or number.
func boolField(name string, v any) (bool, error) {
	switch v := v.(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case json.Number:
		return strconv.ParseBool(v.String())
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "1", "yes":
			return true, nil
		case "false", "0", "no", "":
			return false, nil
		}
	}
	return false, fmt.Errorf("%s must be true or false", name)
}

// aksActions maps the original function's action names (compared without
// case, hyphens or underscores) to kdfir actions and the entity type each
// acts on.
var aksActions = map[string]struct{ action, target string }{
	"isolatepod":               {"isolate-pod", alert.EntityPod},
	"removepodisolation":       {"unisolate-pod", alert.EntityPod},
	"isolatenamespace":         {"isolate-namespace", alert.EntityNamespace},
	"removenamespaceisolation": {"unisolate-namespace", alert.EntityNamespace},
	"cordonnode":               {"cordon-node", alert.EntityNode},
	"uncordonnode":             {"uncordon-node", alert.EntityNode},
	"collectartifacts":         {"collect-pod", alert.EntityPod},
	"runcommand":               {"exec-pod", alert.EntityPod},
}

// AKSActionNames lists the accepted action names, for documentation.
func AKSActionNames() []string {
	out := make([]string, 0, len(aksActions))
	for k := range aksActions {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func normalizeAction(s string) string {
	return strings.ToLower(strings.NewReplacer("-", "", "_", "", " ", "").Replace(s))
}

// triggerResponse is the endpoint's answer. A Logic App branches on the
// status code and on status; runcommand's result is at the top level.
type triggerResponse struct {
	Action string `json:"action"`
	// Status is succeeded, partial or failed.
	Status  string          `json:"status"`
	Actions []*ActionResult `json:"actions"`
	// Done and NotDone name the targets, so that a client can see what a
	// retry will still do.
	Done    []string        `json:"done"`
	NotDone []targetFailure `json:"notDone,omitempty"`
	Errors  []string        `json:"errors,omitempty"`

	// runcommand, for a single pod.
	Stdout         *string `json:"stdout,omitempty"`
	Stderr         *string `json:"stderr,omitempty"`
	StdoutEncoding string  `json:"stdoutEncoding,omitempty"`
	StderrEncoding string  `json:"stderrEncoding,omitempty"`
	ExitCode       *int    `json:"exitCode,omitempty"`
	Truncated      *bool   `json:"truncated,omitempty"`
	TimedOut       bool    `json:"timedOut,omitempty"`
}

type targetFailure struct {
	Target string `json:"target"`
	Error  string `json:"error"`
}

func (s *Server) aksTrigger(w http.ResponseWriter, r *http.Request, key *auth.Key) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.idempotent(w, r, key, body, func(w http.ResponseWriter) { s.aksRun(w, r, key, body) })
}

func (s *Server) aksRun(w http.ResponseWriter, r *http.Request, key *auth.Key, body []byte) {
	req, unknown, err := parseAKSRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(unknown) > 0 {
		s.Log.Debug("aks trigger: ignored unknown members", "members", unknown)
	}
	spec, ok := aksActions[normalizeAction(req.Action)]
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown action %q (want one of %s)", req.Action, strings.Join(AKSActionNames(), ", ")))
		return
	}
	if !key.Allows(spec.action) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("key %s may not run %s", key.Name, spec.action))
		return
	}
	if spec.action == "exec-pod" && !s.ExecEnabled {
		writeError(w, http.StatusForbidden, "runcommand is disabled: set exec.enabled: true in the kdfir serve config")
		return
	}
	ents, err := alert.ParseEntities(req.Entities)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	targets := targetsFor(ents, spec.target)
	if len(targets) == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("entities name no %s for action %s", spec.target, req.Action))
		return
	}
	params := map[string]any{}
	switch spec.action {
	case "collect-pod":
		if req.StorageAccount != "" || req.BlobContainer != "" || req.BlobSASToken != "" {
			dest, err := s.sasDestination(req.StorageAccount, req.BlobContainer, req.BlobSASToken)
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			params["to"] = dest
		}
	case "exec-pod":
		argv, err := commandArgv(req.Command)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		params["command"] = argv
		if req.Container != "" {
			params["container"] = req.Container
		}
	}
	cluster := clusterOf(ents, key)
	if err := s.keyCluster(key, cluster); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	// The actions outlive the request: a Logic App that gives up waiting
	// must not cancel an isolation midway.
	ctx := context.WithoutCancel(r.Context())
	resp := triggerResponse{Action: spec.action, Done: []string{}}
	var bad, unavailable, failed int
	var firstErr error
	for _, t := range targets {
		res, err := s.run(ctx, ActionRequest{Cluster: cluster, Action: spec.action, Target: t, Params: params,
			Reason: req.Reason, DryRun: req.DryRun, Actor: key.Name})
		if res != nil {
			resp.Actions = append(resp.Actions, res)
		}
		name := targetString(t)
		if err == nil {
			resp.Done = append(resp.Done, name)
			continue
		}
		if firstErr == nil {
			firstErr = err
		}
		switch {
		case errors.Is(err, ErrBadRequest):
			bad++
		case errors.Is(err, ErrUnavailable):
			unavailable++
		default:
			failed++
		}
		if res != nil && len(res.Changes) > 0 {
			// Part of this target's action took effect.
			resp.Done = append(resp.Done, name+" (in part)")
		}
		resp.NotDone = append(resp.NotDone, targetFailure{Target: name, Error: err.Error()})
		resp.Errors = append(resp.Errors, err.Error())
	}
	if spec.action == "exec-pod" && len(resp.Actions) == 1 {
		resp.setExec(resp.Actions[0].Output)
	}
	code := http.StatusOK
	switch {
	case len(resp.NotDone) == 0:
		resp.Status = "succeeded"
	case len(resp.Done) > 0:
		resp.Status, code = "partial", http.StatusConflict
	case bad == len(targets):
		writeError(w, http.StatusBadRequest, firstErr.Error())
		return
	case unavailable > 0 && failed == 0:
		resp.Status, code = "failed", http.StatusServiceUnavailable
		w.Header().Set("Retry-After", retryAfter)
	default:
		resp.Status, code = "failed", http.StatusInternalServerError
	}
	writeJSON(w, code, resp)
}

// retryAfter is the Retry-After of a 503, in seconds.
const retryAfter = "30"

// setExec lifts runcommand's result to the top level.
func (t *triggerResponse) setExec(out any) {
	var o respond.ExecOutput
	switch v := out.(type) {
	case respond.ExecOutput:
		o = v
	case *respond.ExecOutput:
		if v == nil {
			return
		}
		o = *v
	default:
		return
	}
	truncated := o.StdoutTruncated || o.StderrTruncated
	t.Stdout, t.Stderr, t.ExitCode, t.Truncated = &o.Stdout, &o.Stderr, &o.ExitCode, &truncated
	t.StdoutEncoding, t.StderrEncoding, t.TimedOut = o.StdoutEncoding, o.StderrEncoding, o.TimedOut
}

// targetsFor picks the entities an action acts on. A namespace action also
// takes the namespaces of named pods, and a pod action the pods of named
// containers.
func targetsFor(ents []alert.Entity, typ string) []alert.Entity {
	var out []alert.Entity
	seen := map[string]bool{}
	add := func(e alert.Entity) {
		if k := e.Key(); !seen[k] && e.Name != "" {
			seen[k] = true
			out = append(out, e)
		}
	}
	for _, e := range ents {
		if e.Type == typ {
			add(e)
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, e := range ents {
		switch {
		case typ == alert.EntityNamespace && e.Type == alert.EntityPod && e.Namespace != "":
			add(alert.Entity{Type: alert.EntityNamespace, Name: e.Namespace, Cluster: e.Cluster})
		case typ == alert.EntityPod && e.Type == alert.EntityContainer && e.Pod != "":
			add(alert.Entity{Type: alert.EntityPod, Name: e.Pod, Namespace: e.Namespace, Cluster: e.Cluster})
		}
	}
	return out
}

// clusterOf is the cluster the entities name, or the key's default.
func clusterOf(ents []alert.Entity, key *auth.Key) string {
	for _, e := range ents {
		if e.Type == alert.EntityCluster && e.Cluster != "" {
			return e.Cluster
		}
	}
	for _, e := range ents {
		if e.Cluster != "" {
			return e.Cluster
		}
	}
	return key.Cluster
}

// sasDestination builds the evidence destination the Sentinel playbooks
// describe with storageaccount (an account name), blobcontainer and
// blobsastoken (a SAS token, with or without "?", or a full SAS URL whose
// account and container must agree with the other two). The account maps
// to its endpoint through the evidence policy, which then checks the
// whole destination. Errors never hold the signature.
func (s *Server) sasDestination(account, container, sas string) (string, error) {
	pol := s.Evidence
	if pol == nil {
		return "", errors.New("collectartifacts to blob storage is not configured (evidence.allowedEndpoints)")
	}
	if strings.Contains(sas, "://") {
		u, err := url.Parse(sas)
		if err != nil || u.Host == "" {
			return "", errors.New("blobsastoken is neither a SAS token nor a SAS URL")
		}
		urlAccount, urlContainer := evidence.SplitContainerURL(u)
		if account == "" {
			account = urlAccount
		}
		if container == "" {
			container = urlContainer
		}
		if !strings.EqualFold(account, urlAccount) || container != urlContainer {
			return "", fmt.Errorf("blobsastoken is a URL for %s/%s, but storageaccount and blobcontainer say %s/%s", urlAccount, urlContainer, account, container)
		}
		sas = u.RawQuery
	}
	if account == "" || container == "" || sas == "" {
		return "", errors.New("collectartifacts needs storageaccount, blobcontainer and blobsastoken together")
	}
	if err := evidence.CheckSAS(sas, timeNow()); err != nil {
		return "", fmt.Errorf("blobsastoken: %w", err)
	}
	base, err := pol.AccountURL(account)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(container, "/?#") {
		return "", fmt.Errorf("blobcontainer %q is not a container name", container)
	}
	dest := base + "/" + url.PathEscape(container) + "?" + strings.TrimPrefix(sas, "?")
	if err := pol.Check(dest); err != nil {
		return "", err
	}
	return dest, nil
}

func commandArgv(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, errors.New("runcommand needs command")
	}
	var argv []string
	if err := json.Unmarshal(raw, &argv); err == nil {
		if len(argv) == 0 || argv[0] == "" {
			return nil, errors.New("command is empty")
		}
		return argv, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, errors.New("command must be a string or an array of strings")
	}
	argv = strings.Fields(s)
	if len(argv) == 0 {
		return nil, errors.New("command is empty")
	}
	return argv, nil
}
