package respond

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/kdfir/kdfir/internal/journal"
)

// Exec defaults.
const (
	DefaultExecTimeout = 30 * time.Second
	MaxExecTimeout     = 10 * time.Minute
	DefaultMaxOutput   = 1 << 20 // bytes of stdout, and of stderr, kept
)

// ErrExecDisabled refuses exec when it is not enabled.
var ErrExecDisabled = errors.New("exec is disabled")

// ErrNotAllowed refuses a command that is not in the exec allowlist.
var ErrNotAllowed = errors.New("command is not in the exec allowlist")

// ExecPolicy governs exec-pod. The zero value refuses every command.
type ExecPolicy struct {
	Enabled bool
	// Allow holds argv prefixes; a command may run when its argv starts
	// with one of them.
	Allow [][]string
	// AllowAny lets any command run when Allow is empty; without it, an
	// empty allowlist allows nothing.
	AllowAny bool
	// MaxOutputBytes caps the stdout and the stderr kept, each (default
	// DefaultMaxOutput).
	MaxOutputBytes int
}

// check refuses argv unless exec is enabled and argv is allowed.
func (p ExecPolicy) check(argv []string) error {
	if !p.Enabled {
		return ErrExecDisabled
	}
	if len(p.Allow) == 0 {
		if p.AllowAny {
			return nil
		}
		return fmt.Errorf("%w: the allowlist is empty (list commands in exec.allow, or set exec.allowAny: true)", ErrNotAllowed)
	}
	for _, prefix := range p.Allow {
		if len(argv) >= len(prefix) && slices.Equal(argv[:len(prefix)], prefix) {
			return nil
		}
	}
	allowed := make([]string, len(p.Allow))
	for i, a := range p.Allow {
		allowed[i] = fmt.Sprintf("%q", a)
	}
	return fmt.Errorf("%w: %q (allowed prefixes: %s)", ErrNotAllowed, argv, strings.Join(allowed, ", "))
}

// ExecPodParams are the parameters of exec-pod.
type ExecPodParams struct {
	// Container defaults to the pod's kubectl.kubernetes.io/default-container,
	// else its first container.
	Container string `json:"container,omitempty"`
	// Command is the argv; it never runs through a shell.
	Command []string `json:"command"`
	// Timeout is a Go duration (default 30s).
	Timeout string `json:"timeout,omitempty"`
}

type execRecord struct {
	ExecPodParams
	MaxOutputBytes int `json:"maxOutputBytes"`
}

// ExecOutput is exec-pod's journaled result.
type ExecOutput struct {
	Container string   `json:"container"`
	Command   []string `json:"command"`
	// ExitCode is the command's exit status (-1 when it did not finish).
	ExitCode int `json:"exitCode"`
	// Stdout and Stderr hold at most MaxOutputBytes each; an Encoding of
	// "base64" means the bytes were not UTF-8 text. Bytes counts what the
	// command wrote in all.
	Stdout          string `json:"stdout"`
	StdoutEncoding  string `json:"stdoutEncoding,omitempty"`
	StdoutBytes     int64  `json:"stdoutBytes"`
	StdoutTruncated bool   `json:"stdoutTruncated,omitempty"`
	Stderr          string `json:"stderr"`
	StderrEncoding  string `json:"stderrEncoding,omitempty"`
	StderrBytes     int64  `json:"stderrBytes"`
	StderrTruncated bool   `json:"stderrTruncated,omitempty"`
	MaxOutputBytes  int    `json:"maxOutputBytes"`
	TimedOut        bool   `json:"timedOut,omitempty"`
	DurationMS      int64  `json:"durationMs"`
}

// ExecPod runs a command in a pod's container through pods/exec
// (WebSocket, falling back to SPDY), with a timeout, and journals its
// output and exit code. It is refused unless Policy enables it.
type ExecPod struct {
	Policy ExecPolicy
}

// Info implements Action.
func (ExecPod) Info() Info {
	return Info{
		Name:    "exec-pod",
		Summary: "run a command (never through a shell) in a pod's container and journal its output",
		Example: "kdfir exec pod shop/web-7f9 -c app --allow-exec -- cat /etc/hostname",
		Role:    RoleExec,
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
			// WebSocket exec is a GET, SPDY a POST (create).
			{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"get", "create"}},
		},
	}
}

// Validate implements Action. It refuses the command before any API call
// unless the policy enables it and allows it.
func (a ExecPod) Validate(target string, params json.RawMessage) (json.RawMessage, error) {
	var p ExecPodParams
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if _, _, err := parsePodTarget(target); err != nil {
		return nil, err
	}
	if len(p.Command) == 0 || p.Command[0] == "" {
		return nil, inputErrorf("no command given")
	}
	if p.Container != "" {
		if errs := validation.IsDNS1123Label(p.Container); len(errs) > 0 {
			return nil, inputErrorf("invalid container name %q: %s", p.Container, errs[0])
		}
	}
	timeout := DefaultExecTimeout
	if p.Timeout != "" {
		d, err := time.ParseDuration(p.Timeout)
		if err != nil || d <= 0 {
			return nil, inputErrorf("invalid timeout %q: want a positive duration such as 30s", p.Timeout)
		}
		if d > MaxExecTimeout {
			return nil, inputErrorf("timeout %s is longer than the maximum, %s", p.Timeout, MaxExecTimeout)
		}
		timeout = d
	}
	p.Timeout = timeout.String()
	if err := a.Policy.check(p.Command); err != nil {
		return nil, err
	}
	max := a.Policy.MaxOutputBytes
	if max <= 0 {
		max = DefaultMaxOutput
	}
	return mustJSON(execRecord{ExecPodParams: p, MaxOutputBytes: max}), nil
}

// Plan implements Action: the pod and the container must exist.
func (ExecPod) Plan(ctx context.Context, env Env, e *journal.Entry) (string, error) {
	ns, name, err := parsePodTarget(e.Target)
	if err != nil {
		return "", err
	}
	var rec execRecord
	if err := decodeParams(e.Params, &rec); err != nil {
		return "", err
	}
	pod, err := getPod(ctx, env, ns, name)
	if err != nil {
		return "", err
	}
	if rec.Container, err = pickContainer(pod, rec.Container); err != nil {
		return "", err
	}
	e.Params = mustJSON(rec)
	e.Changes = []journal.Change{{Object: podObject(ns, name), Op: "exec", Detail: fmt.Sprintf("run %q in container %s", rec.Command, rec.Container)}}
	return "", nil
}

func pickContainer(pod *corev1.Pod, name string) (string, error) {
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	if len(names) == 0 {
		return "", fmt.Errorf("pod %s/%s has no containers", pod.Namespace, pod.Name)
	}
	if name == "" {
		if d := pod.Annotations["kubectl.kubernetes.io/default-container"]; slices.Contains(names, d) {
			return d, nil
		}
		return names[0], nil
	}
	if !slices.Contains(names, name) {
		return "", fmt.Errorf("container %s not found in pod %s/%s (containers: %s)", name, pod.Namespace, pod.Name, strings.Join(names, ", "))
	}
	return name, nil
}

// Apply implements Action. A dry run does not run the command. A command
// that exits non-zero is a successful action with that exit code; a
// timeout fails the action, keeping the output so far.
func (ExecPod) Apply(ctx context.Context, env Env, e *journal.Entry, dryRun bool) (Outcome, error) {
	if dryRun {
		return Outcome{}, nil
	}
	ns, name, err := parsePodTarget(e.Target)
	if err != nil {
		return Outcome{}, err
	}
	var rec execRecord
	if err := decodeParams(e.Params, &rec); err != nil {
		return Outcome{}, err
	}
	timeout, err := time.ParseDuration(rec.Timeout)
	if err != nil {
		return Outcome{}, fmt.Errorf("journaled timeout: %w", err)
	}
	out := ExecOutput{Container: rec.Container, Command: rec.Command, ExitCode: -1, MaxOutputBytes: rec.MaxOutputBytes}
	exec, err := newExecutor(env, ns, name, rec.Container, rec.Command)
	if err != nil {
		return Outcome{Output: out}, err
	}
	stdout, stderr := &capped{max: rec.MaxOutputBytes}, &capped{max: rec.MaxOutputBytes}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	err = exec.StreamWithContext(tctx, remotecommand.StreamOptions{Stdout: stdout, Stderr: stderr})
	out.DurationMS = time.Since(start).Milliseconds()
	var exitErr utilexec.ExitError
	switch {
	case err == nil:
		out.ExitCode = 0
	case errors.As(err, &exitErr):
		out.ExitCode, err = exitErr.ExitStatus(), nil
	case runtimeExitStatus(err) >= 0:
		out.ExitCode, err = runtimeExitStatus(err), nil
	case ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded):
		out.TimedOut = true
		err = fmt.Errorf("command %q timed out after %s", rec.Command, timeout)
	default:
		err = fmt.Errorf("exec in pod %s/%s: %w", ns, name, err)
	}
	var warnings []string
	out.Stdout, out.StdoutEncoding, out.StdoutBytes, out.StdoutTruncated = stdout.result()
	out.Stderr, out.StderrEncoding, out.StderrBytes, out.StderrTruncated = stderr.result()
	for _, s := range []struct {
		name  string
		trunc bool
		n     int64
	}{{"stdout", out.StdoutTruncated, out.StdoutBytes}, {"stderr", out.StderrTruncated, out.StderrBytes}} {
		if s.trunc {
			warnings = append(warnings, fmt.Sprintf("%s truncated: kept %d of %d bytes", s.name, rec.MaxOutputBytes, s.n))
		}
	}
	return Outcome{Output: out, Warnings: warnings}, err
}

// runtimeExitStatus reads the exit code from an exec error that ends in
// os/exec's "exit status N": some runtimes (kwok, for one) report a
// command's non-zero exit that way, as an internal error, instead of the
// NonZeroExitCode status a kubelet sends (exec.CodeExitError). It returns
// -1 for any other error.
func runtimeExitStatus(err error) int {
	m := runtimeExitRE.FindStringSubmatch(err.Error())
	if m == nil {
		return -1
	}
	n, convErr := strconv.Atoi(m[1])
	if convErr != nil {
		return -1
	}
	return n
}

var runtimeExitRE = regexp.MustCompile(`: exit status ([0-9]{1,3})$`)

// newExecutor connects to pods/exec as kubectl 1.30+ does: WebSocket,
// falling back to SPDY.
func newExecutor(env Env, ns, pod, container string, argv []string) (remotecommand.Executor, error) {
	cfg := rest.CopyConfig(env.Config)
	cfg.Timeout = 0 // the command's own timeout applies
	req := env.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: argv, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", req.URL().String())
	if err != nil {
		return nil, fmt.Errorf("exec websocket: %w", err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return nil, fmt.Errorf("exec spdy: %w", err)
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// capped keeps the first max bytes written to it and counts the rest.
type capped struct {
	mu    sync.Mutex
	max   int
	buf   bytes.Buffer
	total int64
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += int64(len(p))
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// result returns the kept bytes as text (or base64 when they are not
// UTF-8), the total written, and whether some were dropped.
func (c *capped) result() (text, encoding string, total int64, truncated bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf.Bytes()
	text = string(b)
	if !utf8.Valid(b) {
		text, encoding = base64.StdEncoding.EncodeToString(b), "base64"
	}
	return text, encoding, c.total, c.total > int64(c.buf.Len())
}

// Revert implements Action: exec changes nothing kdfir can undo.
func (ExecPod) Revert(context.Context, Env, *journal.Entry, bool) (*journal.Revert, error) {
	return nil, ErrNotRevertible
}
