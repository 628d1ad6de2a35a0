package audit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/audit"
)

// TestDeepNesting checks that deeply nested request objects are mapped in
// linear time.
func TestDeepNesting(t *testing.T) {
	const depth = 9990
	raw := `{"kind":"Event","verb":"create","requestObject":` + strings.Repeat(`{"a":[`, depth/2) + `1` + strings.Repeat(`]}`, depth/2) + `}`
	e, err := audit.ParseEvent([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, name := range audit.Tables() {
		m, _ := audit.NewMapper(name)
		m.Row(&e)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("mapping a deep event took %v", d)
	}
}
