package journal

import (
	"context"
	"fmt"
)

// Unreverted returns every entry for (cluster, action, target) whose
// effect may still be in place, newest first: every entry not reverted,
// whatever its status (succeeded, pending, incomplete, or failed: a failed
// action may have changed something before it failed, and an incomplete
// one stays incomplete after a revert of it failed), except those still
// waiting for approval, which changed nothing. Releasing a target reverts
// all of them.
func (j *Journal) Unreverted(ctx context.Context, cluster, action, target string) ([]*Entry, error) {
	rows, err := j.db.QueryContext(ctx,
		`SELECT entry, process FROM actions WHERE cluster = ? AND action = ? AND target = ? AND reverted = 0 AND status NOT IN ('pending_approval', 'approved')
		 ORDER BY time DESC, id DESC`, cluster, action, target)
	if err != nil {
		return nil, fmt.Errorf("list unreverted %s %s: %w", action, target, err)
	}
	defer rows.Close()
	var out []*Entry
	for rows.Next() {
		e, err := j.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
