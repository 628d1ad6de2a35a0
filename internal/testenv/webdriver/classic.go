package webdriver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Classic is a session of a W3C WebDriver server over HTTP.
type Classic struct {
	base    string // the driver's URL
	session string
	client  *http.Client
	procs   []*proc // started by StartWebKit, stopped last first
}

// wdError is the driver's answer to a failed command.
type wdError struct {
	Error, Message string
}

// call sends one command; path is under the session unless it starts
// with "/" (then it is under the driver).
func (c *Classic) call(ctx context.Context, method, path string, body, out any) error {
	u := c.base + path
	if !strings.HasPrefix(path, "/") {
		u = c.base + "/session/" + c.session + "/" + path
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	var v struct{ Value json.RawMessage }
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if resp.StatusCode != http.StatusOK {
		var e wdError
		_ = json.Unmarshal(v.Value, &e)
		return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, e.Error, e.Message)
	}
	if out != nil {
		return json.Unmarshal(v.Value, out)
	}
	return nil
}

func (c *Classic) Navigate(ctx context.Context, url string) error {
	return c.call(ctx, "POST", "url", map[string]string{"url": url}, nil)
}

func (c *Classic) Eval(ctx context.Context, body string, out any) error {
	// execute/async: the last argument is the callback.
	script := "const done = arguments[arguments.length - 1];\n" + wrapEval(body) + ".then(done);"
	var s string
	if err := c.call(ctx, "POST", "execute/async", map[string]any{"script": script, "args": []any{}}, &s); err != nil {
		return err
	}
	return decodeEval(s, out)
}

func (c *Classic) Screenshot(ctx context.Context) ([]byte, error) {
	var s string
	if err := c.call(ctx, "GET", "screenshot", nil, &s); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(s)
}

func (c *Classic) Cookies(ctx context.Context) ([]Cookie, error) {
	var r []struct {
		Name, Value, Domain, Path string
		HTTPOnly                  bool `json:"httpOnly"`
		Secure                    bool
		SameSite                  string
	}
	if err := c.call(ctx, "GET", "cookie", nil, &r); err != nil {
		return nil, err
	}
	var cs []Cookie
	for _, k := range r {
		cs = append(cs, Cookie{Name: k.Name, Value: k.Value, Domain: k.Domain, Path: k.Path,
			HTTPOnly: k.HTTPOnly, Secure: k.Secure, SameSite: strings.ToLower(k.SameSite)})
	}
	return cs, nil
}

// Close ends the session, then stops what StartWebKit started.
func (c *Classic) Close() error {
	var err error
	if c.session != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = c.call(ctx, "DELETE", "", nil, nil)
		cancel()
		c.session = ""
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop()
	}
	return err
}

// StartWebKit starts WebKitWebDriver (Debian's webkit2gtk-driver) and
// opens a session of WebKitGTK's MiniBrowser in it. WebKitGTK has no
// headless mode, so it runs on a virtual display: a private Xvfb.
func StartWebKit(ctx context.Context, opts Options) (b *Classic, err error) {
	driver, err := lookPath("WebKitWebDriver", "webkit2gtk-driver")
	if err != nil {
		return nil, err
	}
	xvfb, err := lookPath("Xvfb", "xvfb")
	if err != nil {
		return nil, err
	}
	mini, _ := filepath.Glob("/usr/lib/*/webkit2gtk-4.*/MiniBrowser")
	if len(mini) == 0 {
		return nil, fmt.Errorf("WebKitGTK's MiniBrowser: %w (Debian package libwebkit2gtk-4.1-0)", ErrNotInstalled)
	}
	c := &Classic{client: &http.Client{}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	w, h := opts.size()

	// Xvfb picks a free display and writes its number to fd 3.
	x, fd, err := start("Xvfb", nil, nil, true, xvfb, "-displayfd", "3", "-nolisten", "tcp",
		"-screen", "0", fmt.Sprintf("%dx%dx24", w+200, h+200))
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, x)
	display := make(chan string, 1)
	go func() {
		defer fd.Close()
		l, _ := bufio.NewReader(fd).ReadString('\n')
		display <- strings.TrimSpace(l)
	}()
	var disp string
	select {
	case disp = <-display:
	case <-time.After(15 * time.Second):
		return nil, fmt.Errorf("no display number from Xvfb within 15 s: %s", x.output())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if _, err := strconv.Atoi(disp); err != nil {
		return nil, fmt.Errorf("start Xvfb (display %q): %s", disp, x.output())
	}

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	d, _, err := start("WebKitWebDriver", []string{"DISPLAY=:" + disp}, nil, false, driver, "--port="+strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, d)
	c.base = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		var st struct{ Ready bool }
		if err := c.call(ctx, "GET", "/status", nil, &st); err == nil && st.Ready {
			break
		}
		if d.exited() || time.Now().After(deadline) {
			return nil, fmt.Errorf("WebKitWebDriver is not ready: %s", d.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var r struct{ SessionID string }
	if err := c.call(ctx, "POST", "/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"acceptInsecureCerts":      opts.AcceptInsecureCerts,
		"webkitgtk:browserOptions": map[string]any{"binary": mini[0], "args": []string{"--automation"}},
	}}}, &r); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, d.output())
	}
	c.session = r.SessionID
	if err := c.call(ctx, "POST", "window/rect", map[string]int{"x": 0, "y": 0, "width": w, "height": h}, nil); err != nil {
		return nil, err
	}
	return c, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
