package evidence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

var exitStatus = regexp.MustCompile(`exit (?:status|code) (\d+)`)

// ExecError is a command that ran in a container and exited non-zero.
type ExecError struct {
	Argv   []string
	Code   int
	Stderr string
}

func (e *ExecError) Error() string {
	msg := fmt.Sprintf("%s: exit code %d", strings.Join(e.Argv, " "), e.Code)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// notFound tells whether an exec of cat failed because the file does not
// exist.
func notFound(err error) bool {
	var ee *ExecError
	return errors.As(err, &ee) && (strings.Contains(ee.Stderr, "No such file") || strings.Contains(ee.Stderr, "Not a directory"))
}

// exec runs argv (no shell) in a container, streaming its stdout to
// stdout, the way kubectl 1.30 and later does: WebSocket, falling back to
// SPDY.
func (c *Collector) exec(ctx context.Context, ns, pod, container string, argv []string, stdout io.Writer) error {
	req := c.stream.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: argv, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(c.config, "GET", req.URL().String())
	if err != nil {
		return err
	}
	spdy, err := remotecommand.NewSPDYExecutor(c.config, "POST", req.URL())
	if err != nil {
		return err
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	stderr := &limitedBuffer{max: 4 << 10}
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: stdout, Stderr: stderr})
	var ee utilexec.ExitError
	if errors.As(err, &ee) {
		return &ExecError{Argv: argv, Code: ee.ExitStatus(), Stderr: stderr.String()}
	}
	// Some runtimes (kwok among them) report the exit status only in the
	// error's message.
	if m := exitStatus.FindStringSubmatch(fmt.Sprint(err)); m != nil {
		code, _ := strconv.Atoi(m[1])
		return &ExecError{Argv: argv, Code: code, Stderr: stderr.String()}
	}
	if err != nil {
		return fmt.Errorf("exec %s in %s/%s -c %s: %w", strings.Join(argv, " "), ns, pod, container, err)
	}
	return nil
}

// execOutput runs argv in a container and returns its stdout, of which it
// keeps at most 1 MiB.
func (c *Collector) execOutput(ctx context.Context, ns, pod, container string, argv ...string) (string, error) {
	out := &limitedBuffer{max: 1 << 20}
	err := c.exec(ctx, ns, pod, container, argv, out)
	return out.String(), err
}

func execSource(ns, pod, container string, argv []string) string {
	return "exec " + ns + "/" + pod + " -c " + container + ": " + strings.Join(argv, " ")
}

// goPipe runs write in a goroutine and returns the reading end of what it
// writes. The reader ends with write's error, and Close stops write.
func goPipe(ctx context.Context, write func(ctx context.Context, w io.Writer) error) io.ReadCloser {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(write(ctx, pw))
	}()
	return &pipeReader{PipeReader: pr, cancel: cancel, done: done}
}

type pipeReader struct {
	*io.PipeReader
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *pipeReader) Close() error {
	p.cancel()
	err := p.PipeReader.Close()
	<-p.done
	return err
}

// limitedBuffer keeps the first max bytes written to it and drops the
// rest.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.Buffer.Len(); room > 0 {
		l.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
