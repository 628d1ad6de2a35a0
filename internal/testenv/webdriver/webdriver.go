// Package webdriver drives real browsers from tests, with no driver
// library: Firefox over WebDriver BiDi (which it speaks natively) and
// WebKitGTK, Safari's engine, over the classic W3C WebDriver HTTP protocol
// through WebKitWebDriver. Both stand behind one small interface.
package webdriver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrNotInstalled is wrapped by the Start functions when a browser or a
// program it needs is not on the machine.
var ErrNotInstalled = errors.New("not installed")

// Browser is one browser session with one tab.
type Browser interface {
	// Navigate loads url and waits for the page's load event.
	Navigate(ctx context.Context, url string) error
	// Eval runs body as the body of an async function in the page (so it
	// may await, and returns with return) and decodes what it returns,
	// through JSON, into out (which may be nil).
	Eval(ctx context.Context, body string, out any) error
	// Screenshot returns a PNG of the page.
	Screenshot(ctx context.Context) ([]byte, error)
	// Cookies returns the browser's cookies, HttpOnly ones included.
	Cookies(ctx context.Context) ([]Cookie, error)
	// Close ends the session and the browser and everything it started.
	Close() error
}

// Cookie is a cookie as the browser stores it.
type Cookie struct {
	Name, Value, Domain, Path string
	HTTPOnly, Secure          bool
	SameSite                  string // "strict", "lax" or "none"
}

// Options apply to every browser.
type Options struct {
	Width, Height int // the viewport; 1400×900 when zero
	// AcceptInsecureCerts lets the browser load a test server's
	// self-signed certificate.
	AcceptInsecureCerts bool
}

func (o *Options) size() (int, int) {
	w, h := o.Width, o.Height
	if w == 0 || h == 0 {
		w, h = 1400, 900
	}
	return w, h
}

func lookPath(name, pkg string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s: %w (Debian package %s; make tools installs it)", name, ErrNotInstalled, pkg)
	}
	return p, nil
}

// wrapEval makes an expression, from an async function body, that
// resolves to the JSON of what the body returns, or to an object naming
// the exception, so both protocols carry only a string back.
func wrapEval(body string) string {
	return `(async () => {` + body + "\n" + `})().then(
  (v) => JSON.stringify({ v: v === undefined ? null : v }),
  (e) => JSON.stringify({ e: String(e) + (e && e.stack ? "\n" + e.stack : "") }))`
}

// proc is a process a Start function ran, in its own process group so
// that Close ends what it spawned too.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	tail []string // its last lines of output
	// match, when set, picks a line out of the output: the first line it
	// matches is sent on found, as its first submatch.
	match *regexp.Regexp
	found chan string
}

// start runs bin. With displayFD the child gets a pipe as its fd 3,
// whose reading end start returns.
func start(name string, env []string, match *regexp.Regexp, displayFD bool, bin string, args ...string) (*proc, *os.File, error) {
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	var extra *os.File
	if displayFD {
		// fd 3 for the child, for Xvfb's -displayfd.
		er, ew, err := os.Pipe()
		if err != nil {
			r.Close()
			w.Close()
			return nil, nil, err
		}
		cmd.ExtraFiles = []*os.File{ew}
		defer ew.Close()
		extra = er
	}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		if extra != nil {
			extra.Close()
		}
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	w.Close()
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), match: match, found: make(chan string, 1)}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	go p.read(r)
	return p, extra, nil
}

// read keeps the process's last lines and looks for p.match, until its
// output ends.
func (p *proc) read(r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		l := sc.Text()
		p.mu.Lock()
		p.tail = append(p.tail, l)
		if len(p.tail) > 40 {
			p.tail = p.tail[len(p.tail)-40:]
		}
		p.mu.Unlock()
		if p.match != nil {
			if m := p.match.FindStringSubmatch(l); m != nil {
				p.match = nil
				p.found <- m[1]
			}
		}
	}
	_, _ = io.Copy(io.Discard, r) // after a line too long, so the process never blocks
}

// output is the process's last lines, for an error message.
func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to d for the process to exit by itself.
func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// stop ends the process group, if its leader has not exited: SIGTERM,
// then SIGKILL after 5 s, to the leader and to anything it spawned.
func (p *proc) stop() {
	if p == nil || p.exited() {
		return
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	if !p.wait(5 * time.Second) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
	}
}

// Start starts a browser with start (StartFirefox or StartWebKit) for
// the test, and closes it when the test ends. When the browser is not
// installed the test is skipped, unless KDFIR_REQUIRE_BROWSERS is set
// (as make test does, after make tools installed them): then it fails.
func Start[B Browser](tb testing.TB, start func(context.Context, Options) (B, error), opts Options) B {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := start(ctx, opts)
	if err != nil {
		if errors.Is(err, ErrNotInstalled) && os.Getenv("KDFIR_REQUIRE_BROWSERS") == "" {
			tb.Skipf("%v; set KDFIR_REQUIRE_BROWSERS=1 to fail instead", err)
		}
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Logf("close the browser: %v", err)
		}
	})
	return b
}
