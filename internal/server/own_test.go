package server

import (
	"testing"

	"github.com/kdfir/kdfir/internal/audit"
)

// Only kdfir's authenticated identity marks its own events: a forged
// User-Agent does not hide an event from detection.
func TestNotOwnUsesIdentityNotUserAgent(t *testing.T) {
	ev := func(user, ua string) audit.Event {
		return audit.Event{User: audit.UserInfo{Username: user}, UserAgent: ua}
	}
	batch := []audit.Event{
		ev("system:serviceaccount:kdfir:kdfir", UserAgent+"/1.0"),
		ev("mallory", UserAgent+"/1.0"),
		ev("system:serviceaccount:kdfir:kdfir", "kubectl/v1.30"),
	}
	got := notOwn(batch, "system:serviceaccount:kdfir:kdfir")
	// mallory's forged User-Agent hides nothing, and a person using
	// kdfir's credentials with kubectl stays in view.
	if len(got) != 2 || got[0].User.Username != "mallory" || got[1].UserAgent != "kubectl/v1.30" {
		t.Fatalf("notOwn = %+v, want mallory's event and the kubectl one", got)
	}
	if got := notOwn(batch, ""); len(got) != 3 {
		t.Fatalf("without a known identity, %d of 3 events kept", len(got))
	}
}
