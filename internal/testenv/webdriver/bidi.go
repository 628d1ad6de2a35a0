package webdriver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Firefox is headless Firefox driven over WebDriver BiDi.
type Firefox struct {
	proc    *proc
	profile string
	conn    *websocket.Conn
	context string // the tab's browsing context

	wmu  sync.Mutex // one writer at a time
	mu   sync.Mutex
	next int
	wait map[int]chan bidiResponse
	logs []LogEntry
	err  error // why the connection ended
}

// LogEntry is one of the page's script errors or console messages
// (BiDi's log.entryAdded).
type LogEntry struct {
	Level string // debug, info, warn or error
	Type  string // javascript (an uncaught error) or console
	Text  string
	URL   string
	Line  int
}

func (e LogEntry) String() string {
	s := e.Type + " " + e.Level + ": " + e.Text
	if e.URL != "" {
		s += fmt.Sprintf(" (%s:%d)", e.URL, e.Line)
	}
	return s
}

type bidiResponse struct {
	ID      *int            `json:"id"`
	Type    string          `json:"type"` // success, error or event
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
}

// firefoxPrefs keep a test profile quiet: no first-run pages and no
// calls home. The remote agent sets its own recommended preferences too.
const firefoxPrefs = `user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.disabledForTesting", true);
user_pref("app.normandy.enabled", false);
user_pref("browser.newtabpage.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("browser.safebrowsing.update.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("messaging-system.rsexperimentloader.enabled", false);
user_pref("app.shield.optoutstudies.enabled", false);
user_pref("browser.backup.enabled", false);
user_pref("browser.backup.scheduled.enabled", false);
user_pref("browser.startup.page", 0);
user_pref("browser.sessionstore.resume_from_crash", false);
user_pref("browser.aboutwelcome.enabled", false);
user_pref("toolkit.startup.max_resumed_crashes", -1);
user_pref("services.settings.server", "data:,#remote-settings-disabled");
`

var bidiListening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// StartFirefox starts headless Firefox (Debian's firefox-esr, or firefox)
// with a new profile, and opens a BiDi session on its tab. It collects
// the page's errors and console messages from the start (see Logs).
func StartFirefox(ctx context.Context, opts Options) (b *Firefox, err error) {
	bin, err := lookPath("firefox-esr", "firefox-esr")
	if err != nil {
		if p, err2 := exec.LookPath("firefox"); err2 == nil {
			bin = p
		} else {
			return nil, err
		}
	}
	profile, err := os.MkdirTemp("", "kdfir-firefox-")
	if err != nil {
		return nil, err
	}
	b = &Firefox{profile: profile, wait: map[int]chan bidiResponse{}}
	defer func() {
		if err != nil {
			b.Close()
			b = nil
		}
	}()
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(firefoxPrefs), 0o600); err != nil {
		return nil, err
	}
	w, h := opts.size()
	b.proc, _, err = start("firefox", []string{"MOZ_CRASHREPORTER_DISABLE=1"}, bidiListening, false, bin,
		"--headless", "--no-remote", "--profile", profile, "--remote-debugging-port=0",
		fmt.Sprintf("--window-size=%d,%d", w, h), "about:blank")
	if err != nil {
		return nil, err
	}
	var ws string
	select {
	case ws = <-b.proc.found:
	case <-b.proc.done:
		return nil, fmt.Errorf("firefox exited before listening: %s", b.proc.output())
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("firefox did not start listening within 30 s: %s", b.proc.output())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := dialer.DialContext(ctx, strings.TrimSuffix(ws, "/")+"/session", nil)
	if err != nil {
		return nil, fmt.Errorf("connect to firefox's BiDi server: %w", err)
	}
	b.conn = conn
	go b.read()

	caps := map[string]any{"alwaysMatch": map[string]any{"acceptInsecureCerts": opts.AcceptInsecureCerts}}
	if err := b.call(ctx, "session.new", map[string]any{"capabilities": caps}, nil); err != nil {
		return nil, err
	}
	if err := b.call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}, nil); err != nil {
		return nil, err
	}
	var tree struct {
		Contexts []struct{ Context string }
	}
	if err := b.call(ctx, "browsingContext.getTree", map[string]any{"maxDepth": 0}, &tree); err != nil {
		return nil, err
	}
	if len(tree.Contexts) == 0 {
		return nil, errors.New("firefox has no tab")
	}
	b.context = tree.Contexts[0].Context
	if err := b.call(ctx, "browsingContext.setViewport", map[string]any{"context": b.context,
		"viewport": map[string]int{"width": w, "height": h}}, nil); err != nil {
		return nil, err
	}
	return b, nil
}

// read dispatches the connection's messages: answers to their callers,
// log events to b.logs.
func (b *Firefox) read() {
	for {
		var m bidiResponse
		if err := b.conn.ReadJSON(&m); err != nil {
			b.mu.Lock()
			b.err = err
			for id, ch := range b.wait {
				close(ch)
				delete(b.wait, id)
			}
			b.mu.Unlock()
			return
		}
		if m.Type == "event" {
			if m.Method == "log.entryAdded" {
				var e struct {
					Level, Type, Text string
					StackTrace        struct {
						CallFrames []struct {
							URL        string
							LineNumber int
						}
					}
				}
				if json.Unmarshal(m.Params, &e) == nil {
					le := LogEntry{Level: e.Level, Type: e.Type, Text: e.Text}
					if f := e.StackTrace.CallFrames; len(f) > 0 {
						le.URL, le.Line = f[0].URL, f[0].LineNumber
					}
					b.mu.Lock()
					b.logs = append(b.logs, le)
					b.mu.Unlock()
				}
			}
			continue
		}
		if m.ID == nil {
			continue
		}
		b.mu.Lock()
		ch := b.wait[*m.ID]
		delete(b.wait, *m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
}

// call sends one command and decodes its result into out.
func (b *Firefox) call(ctx context.Context, method string, params, out any) error {
	ch := make(chan bidiResponse, 1)
	b.mu.Lock()
	if b.err != nil {
		b.mu.Unlock()
		return fmt.Errorf("%s: connection closed: %w", method, b.err)
	}
	b.next++
	id := b.next
	b.wait[id] = ch
	b.mu.Unlock()
	b.wmu.Lock()
	err := b.conn.WriteJSON(map[string]any{"id": id, "method": method, "params": params})
	b.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: connection closed: %v", method, b.err)
		}
		if m.Type == "error" {
			return fmt.Errorf("%s: %s: %s", method, m.Error, m.Message)
		}
		if out != nil {
			return json.Unmarshal(m.Result, out)
		}
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.wait, id)
		b.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (b *Firefox) Navigate(ctx context.Context, url string) error {
	return b.call(ctx, "browsingContext.navigate", map[string]any{"context": b.context, "url": url, "wait": "complete"}, nil)
}

func (b *Firefox) Eval(ctx context.Context, body string, out any) error {
	var r struct {
		Type   string // success or exception
		Result struct {
			Type  string
			Value json.RawMessage
		}
		ExceptionDetails struct{ Text string }
	}
	if err := b.call(ctx, "script.evaluate", map[string]any{
		"expression":      wrapEval(body),
		"target":          map[string]string{"context": b.context},
		"awaitPromise":    true,
		"resultOwnership": "none",
	}, &r); err != nil {
		return err
	}
	if r.Type == "exception" {
		return fmt.Errorf("script: %s", r.ExceptionDetails.Text)
	}
	var s string
	if r.Result.Type != "string" || json.Unmarshal(r.Result.Value, &s) != nil {
		return fmt.Errorf("script returned a %s", r.Result.Type)
	}
	return decodeEval(s, out)
}

func (b *Firefox) Screenshot(ctx context.Context) ([]byte, error) {
	var r struct{ Data string }
	if err := b.call(ctx, "browsingContext.captureScreenshot", map[string]any{"context": b.context, "origin": "document"}, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

func (b *Firefox) Cookies(ctx context.Context) ([]Cookie, error) {
	var r struct {
		Cookies []struct {
			Name, Domain, Path string
			Value              struct{ Value string }
			HTTPOnly           bool `json:"httpOnly"`
			Secure             bool
			SameSite           string
		}
	}
	if err := b.call(ctx, "storage.getCookies", map[string]any{}, &r); err != nil {
		return nil, err
	}
	var cs []Cookie
	for _, c := range r.Cookies {
		cs = append(cs, Cookie{Name: c.Name, Value: c.Value.Value, Domain: c.Domain, Path: c.Path,
			HTTPOnly: c.HTTPOnly, Secure: c.Secure, SameSite: strings.ToLower(c.SameSite)})
	}
	return cs, nil
}

// Logs returns the page's script errors and console messages so far.
func (b *Firefox) Logs() []LogEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]LogEntry(nil), b.logs...)
}

// Close asks Firefox to quit, then ends its process group.
func (b *Firefox) Close() error {
	if b.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = b.call(ctx, "browser.close", map[string]any{}, nil)
		cancel()
		b.conn.Close()
	}
	if b.proc != nil {
		b.proc.wait(5 * time.Second)
		b.proc.stop()
	}
	return os.RemoveAll(b.profile)
}

func decodeEval(s string, out any) error {
	var r struct {
		V json.RawMessage `json:"v"`
		E *string         `json:"e"`
	}
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return fmt.Errorf("script result %q: %w", s, err)
	}
	if r.E != nil {
		return fmt.Errorf("script threw: %s", *r.E)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(r.V, out)
}
