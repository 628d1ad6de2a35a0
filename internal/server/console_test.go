package server_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium (Debian's chromium, which make tools
// installs) and returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (make tools installs it): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("ignore-certificate-errors", true), // the test server's self-signed certificate
		chromedp.NoSandbox,
		chromedp.WindowSize(1400, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelC := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })
	return ctx
}

// artifacts is where the browser tests save their screenshots:
// $KDFIR_ARTIFACTS, or a directory under the system's temporary one.
func artifacts(t *testing.T) string {
	dir := os.Getenv("KDFIR_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "kdfir-artifacts")
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func shot(t *testing.T, dir string, n int, name string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tgt *chromedp.Target) (chromedp.Void, error) {
		buf, err := chromedp.FullScreenshot(100)(ctx, tgt)
		if err != nil {
			return chromedp.Void{}, err
		}
		p := filepath.Join(dir, fmt.Sprintf("%02d-%s.png", n, name))
		t.Logf("screenshot %s", p)
		return chromedp.Void{}, os.WriteFile(p, buf, 0o644)
	}
}

// An analyst signs in, sees an alert arrive live in the queue, and closes
// it as a false positive; a read-only key sees no triage controls.
func TestConsoleQueueInBrowser(t *testing.T) {
	sv := kdfir(t)
	ns := strings.ToLower(fmt.Sprintf("console-%d", time.Now().UnixNano()))
	dir := artifacts(t)
	ctx := browser(t)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(sv.url+"/"),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		shot(t, dir, 1, "sign-in"),
		chromedp.SendKeys(chromedp.CSS("#key"), "kdfir_wrong"),
		chromedp.Click(chromedp.CSS("#signin-form button")),
		chromedp.WaitVisible(chromedp.CSS("#signin-error:not(:empty)")),
	); err != nil {
		t.Fatalf("sign-in page: %v", err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#key"), sv.keys["admin"]),
		chromedp.Click(chromedp.CSS("#signin-form button")),
		chromedp.WaitVisible(chromedp.CSS("#queue")),
		chromedp.WaitVisible(chromedp.CSS("#live.on")),
		shot(t, dir, 2, "queue"),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}

	// An alert arrives through the API and shows up without a reload.
	title := "live alert " + ns
	body := `{"schema":"kdfir.io/alert/v1","title":"` + title + `","severity":"high","entities":[{"type":"pod","namespace":"` + ns + `","name":"web-1","cluster":"testenv"}]}`
	var out alertResp
	if code := sv.call(t, "POST", "/v1/alerts", sv.keys["admin"], []byte(body), &out); code != 200 {
		t.Fatalf("alert: %d", code)
	}
	rowSel := `tr[data-id="` + out.Alert.ID + `"]`
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(rowSel)),
		shot(t, dir, 3, "alert-arrived"),
	); err != nil {
		t.Fatalf("the alert did not appear live: %v", err)
	}
	chips, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(rowSel+" td:nth-child(6)")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(chips, "pod: "+ns+"/web-1") {
		t.Fatalf("entity chips %q", chips)
	}

	// The queue's filters: another cluster or rule hides it, the last
	// hour and its own cluster show it.
	filter := func(id, v string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](`(() => { const e = document.getElementById(` + strconv.Quote(id) + `);
			e.value = ` + strconv.Quote(v) + `; e.dispatchEvent(new Event("change")); })()`)
	}
	if err := chromedp.Do(ctx,
		filter("f-cluster", "nowhere"), chromedp.WaitNotPresent(chromedp.CSS(rowSel)),
		filter("f-cluster", "TESTENV"), chromedp.WaitVisible(chromedp.CSS(rowSel)),
		filter("f-rule", "no-such-rule"), chromedp.WaitNotPresent(chromedp.CSS(rowSel)),
		filter("f-rule", ""), filter("f-since", "3600"), chromedp.WaitVisible(chromedp.CSS(rowSel)),
		filter("f-cluster", ""), filter("f-since", ""), chromedp.WaitVisible(chromedp.CSS(rowSel)),
	); err != nil {
		t.Fatalf("queue filters: %v", err)
	}

	// Close it as a false positive: it leaves the open queue.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(rowSel+" input.select")),
		chromedp.SetValue(chromedp.CSS("#bulk-class"), "false-positive"),
		chromedp.SendKeys(chromedp.CSS("#bulk-comment"), "test traffic"),
		chromedp.Click(chromedp.CSS("#bulk-close")),
		chromedp.WaitNotPresent(chromedp.CSS(rowSel)),
		shot(t, dir, 4, "closed"),
	); err != nil {
		t.Fatalf("close: %v", err)
	}
	var a struct {
		Triage struct {
			Status, Classification string
			History                []struct{ By, Field string }
		}
	}
	sv.call(t, "GET", "/v1/alerts/"+out.Alert.ID, sv.keys["admin"], nil, &a)
	if a.Triage.Status != "closed" || a.Triage.Classification != "false-positive" || len(a.Triage.History) == 0 || a.Triage.History[0].By != "admin" {
		t.Fatalf("after closing in the console: %+v", a.Triage)
	}

	// A read-only key signs in to a queue without triage controls.
	ro := browser(t)
	if err := chromedp.Do(ro,
		chromedp.Navigate(sv.url+"/"),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		chromedp.SetValue(chromedp.CSS("#key"), sv.keys["limited"]),
		chromedp.Click(chromedp.CSS("#signin-form button")),
		chromedp.WaitVisible(chromedp.CSS("#queue")),
		shot(t, dir, 5, "read-only"),
	); err != nil {
		t.Fatalf("read-only sign-in: %v", err)
	}
	bulkHidden, err := chromedp.Run(ro, chromedp.Evaluate[bool](`document.getElementById("bulk").hidden`))
	if err != nil {
		t.Fatal(err)
	}
	if !bulkHidden {
		t.Fatal("a key without the triage scope sees the close controls")
	}
}
