package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// AuditEvent holds the fields of an audit.k8s.io/v1 Event that tests look
// at; Raw is the whole event as the API server wrote it.
type AuditEvent struct {
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	User       struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	Raw json.RawMessage `json:"-"`
}

// AuditEvents reads every event the API server has written to its audit
// log so far.
func (e *Env) AuditEvents() ([]AuditEvent, error) {
	f, err := os.Open(e.AuditLogPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []AuditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		var ev AuditEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("audit log line %d: %w", len(out)+1, err)
		}
		ev.Raw = append(json.RawMessage(nil), line...)
		out = append(out, ev)
	}
	return out, sc.Err()
}

// WaitAuditEvents polls the audit log until match returns at least one
// event, or the timeout passes. The API server writes its log
// asynchronously, so a test reads it this way.
func (e *Env) WaitAuditEvents(ctx context.Context, timeout time.Duration, match func(AuditEvent) bool) ([]AuditEvent, error) {
	var found []AuditEvent
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		evs, err := e.AuditEvents()
		if err != nil {
			return false, nil
		}
		found = found[:0]
		for _, ev := range evs {
			if match(ev) {
				found = append(found, ev)
			}
		}
		return len(found) > 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("no matching audit event within %s", timeout)
	}
	return found, nil
}
