package detect

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kdfir/kdfir/internal/audit"
)

func queueEvents(t *testing.T, ids ...string) []audit.Event {
	t.Helper()
	var out []audit.Event
	for i, id := range ids {
		e, err := audit.ParseEvent([]byte(`{"kind":"Event","auditID":"` + id + `","verb":"get"}`))
		if err != nil {
			t.Fatal(err)
		}
		e.Time = time.Date(2025, 1, 1, 0, 0, i, 0, time.UTC)
		e.Cluster, e.ClusterResourceID = "prod", "arn:aws:eks:eu-west-1:1:cluster/prod"
		out = append(out, e)
	}
	return out
}

func pendingIDs(t *testing.T, q *Queue) []string {
	t.Helper()
	bs, err := q.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, b := range bs {
		var part []string
		for _, e := range b.Events {
			if e.Cluster != "prod" || e.Time.Year() != 2025 || e.ClusterResourceID == "" {
				t.Errorf("event %s lost its tags: %+v", e.AuditID, e)
			}
			part = append(part, e.AuditID)
		}
		ids = append(ids, strings.Join(part, "+")+fmt.Sprintf("|%s", b.Meta))
	}
	return ids
}

// TestQueueSurvivesRestart: batches appended but not done are pending
// after the queue is reopened (as after a crash), in order, with their
// tags and meta; done batches are not.
func TestQueueSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nrt-queue.log")
	q, err := OpenQueue(path)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := q.Append(queueEvents(t, "a", "b"), []byte(`{"key":"k1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Append(queueEvents(t, "c"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Append(queueEvents(t, "d"), []byte(`{"key":"k2"}`)); err != nil {
		t.Fatal(err)
	}
	if err := q.Done(p1); err != nil {
		t.Fatal(err)
	}
	// The process dies: no Close. A torn append is left behind.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"events":[{"raw":{"kind":"Ev`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	q2, err := OpenQueue(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"c|", `d|{"key":"k2"}`}, pendingIDs(t, q2)); d != "" {
		t.Errorf("pending after restart (-want +got):\n%s", d)
	}
	bs, _ := q2.Pending()
	for _, b := range bs {
		if err := q2.Done(b.Pos); err != nil {
			t.Fatal(err)
		}
	}
	if got := pendingIDs(t, q2); len(got) != 0 {
		t.Errorf("pending after all done: %v", got)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Errorf("queue file not emptied: %v %v", fi.Size(), err)
	}
	// New batches after the queue emptied itself are kept too.
	if _, err := q2.Append(queueEvents(t, "e"), nil); err != nil {
		t.Fatal(err)
	}
	q2.Close()
	q3, err := OpenQueue(path)
	if err != nil {
		t.Fatal(err)
	}
	defer q3.Close()
	if d := cmp.Diff([]string{"e|"}, pendingIDs(t, q3)); d != "" {
		t.Errorf("pending after emptying and appending (-want +got):\n%s", d)
	}
}

func TestQueueBadPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.log")
	if err := os.WriteFile(path+".pos", []byte("twelve\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenQueue(path); err == nil || !strings.Contains(err.Error(), "not an offset") || strings.Contains(err.Error(), "\n") {
		t.Errorf("bad position file: %v", err)
	}
}
