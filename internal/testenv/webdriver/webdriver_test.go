package webdriver_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/testenv/webdriver"
)

const page = `<!doctype html><title>t</title><script src="/s.js"></script><p id="p">hello</p>`

// Each client loads a page over TLS with a self-signed certificate, runs
// a script, reads an HttpOnly cookie it cannot see from the page, and
// takes a screenshot.
func TestClients(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/s.js" {
			w.Header().Set("Content-Type", "text/javascript")
			w.Write([]byte(`console.error("from the page"); window.x = 41;`))
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "v", Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
		w.Write([]byte(page))
	}))
	defer srv.Close()
	for name, start := range map[string]func(*testing.T) webdriver.Browser{
		"Firefox": func(t *testing.T) webdriver.Browser {
			return webdriver.Start(t, webdriver.StartFirefox, webdriver.Options{AcceptInsecureCerts: true})
		},
		"WebKit": func(t *testing.T) webdriver.Browser {
			return webdriver.Start(t, webdriver.StartWebKit, webdriver.Options{AcceptInsecureCerts: true})
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			t0 := time.Now()
			b := start(t)
			t.Logf("started in %v", time.Since(t0))
			if err := b.Navigate(ctx, srv.URL+"/"); err != nil {
				t.Fatal(err)
			}
			var got struct {
				X      int
				Text   string
				Cookie string
			}
			if err := b.Eval(ctx, `await new Promise((r) => setTimeout(r, 10));
return { x: window.x + 1, text: document.getElementById("p").textContent, cookie: document.cookie };`, &got); err != nil {
				t.Fatal(err)
			}
			if got.X != 42 || got.Text != "hello" || got.Cookie != "" {
				t.Fatalf("eval: %+v", got)
			}
			if err := b.Eval(ctx, `throw new Error("boom")`, nil); err == nil || !strings.Contains(err.Error(), "boom") {
				t.Fatalf("a script's exception: %v", err)
			}
			cs, err := b.Cookies(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != 1 || cs[0].Name != "sid" || !cs[0].HTTPOnly || !cs[0].Secure || cs[0].SameSite != "strict" {
				t.Fatalf("cookies: %+v", cs)
			}
			png, err := b.Screenshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(png, []byte("\x89PNG")) {
				t.Fatalf("screenshot is not a PNG: %q", png[:min(8, len(png))])
			}
			if ff, ok := b.(*webdriver.Firefox); ok {
				logs := ff.Logs()
				if len(logs) != 1 || logs[0].Level != "error" || logs[0].Text != "from the page" {
					t.Fatalf("logs: %v", logs)
				}
			}
		})
	}
}
