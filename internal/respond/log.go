package respond

import (
	"context"
	"log/slog"
)

type logKey struct{}

// withLogger carries the action's logger (which holds its id) in ctx.
func withLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, logKey{}, l)
}

func loggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}
