package evidence

import (
	"context"
	"fmt"

	"github.com/kdfir/kdfir/internal/journal"
)

// Journal is the part of the action journal a collection writes to.
type Journal interface {
	Begin(ctx context.Context, e *journal.Entry) error
	Finish(ctx context.Context, e *journal.Entry, result any, actionErr error) error
}

// Journaled runs one collection and journals it: the intent before any
// artifact is fetched, then the location, the manifest's SHA-256 and the
// result. The caller fills in e's actor, reason, cluster, target and
// params. It returns the result and, when the collection could not be made
// at all, an error; artifacts that failed are in Result.Failed (and
// recorded in the journal as the entry's error).
func Journaled(ctx context.Context, j Journal, c *Collector, sink Sink, req Request, e *journal.Entry) (*Result, error) {
	e.Action = req.Action()
	if err := j.Begin(ctx, e); err != nil {
		return nil, err
	}
	req.ActionID = e.ID
	res, err := c.Collect(ctx, sink, req)
	outcome := err
	if res != nil {
		if len(res.Failed) > 0 && err == nil {
			outcome = fmt.Errorf("%d of %d artifacts not collected (see %s in %s)", len(res.Failed), res.Artifacts, ManifestName, res.Location)
		}
		e.Changes = []journal.Change{{
			Object: journal.Object{APIVersion: "v1", Kind: req.Kind, Namespace: req.Namespace, Name: req.Name},
			Op:     "upload", Detail: "evidence written to " + res.Location,
		}}
	}
	// The journal outlives a canceled request: record the outcome anyway.
	if jerr := j.Finish(context.WithoutCancel(ctx), e, res, outcome); jerr != nil && err == nil {
		err = fmt.Errorf("journal the outcome: %w", jerr)
	}
	return res, err
}
