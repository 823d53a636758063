package erasure

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// AdminRequest is the purge function's input: a Request, or RevokedGrants to erase every connection whose grant
// has stayed revoked longer than the handler's revokedFor.
type AdminRequest struct {
	Request
	RevokedGrants bool `json:"revokedGrants,omitempty"`
}

// AdminHandler is the purge function's handler: it runs one request and writes one audit line (ids and counts,
// never content). A bad request fails the invocation without touching anything. revokedFor is RevokedGrantDays.
func AdminHandler(e *Eraser, log *slog.Logger, revokedFor time.Duration) func(ctx context.Context, r AdminRequest) ([]*Report, error) {
	return func(ctx context.Context, r AdminRequest) ([]*Report, error) {
		if !r.RevokedGrants {
			rep, err := admin(ctx, e, log, r.Request)
			if err != nil {
				return nil, err
			}
			return []*Report{rep}, nil
		}
		if r.ConnectionID != "" || r.SiteID != "" || revokedFor <= 0 {
			return nil, ErrBadRequest
		}
		before := e.c.Now().Add(-revokedFor)
		ids, err := e.ExpiredRevoked(ctx, before, 100)
		if err != nil {
			return nil, err
		}
		reps := []*Report{}
		for _, id := range ids {
			rep, err := admin(ctx, e, log, Request{ConnectionID: id, DryRun: r.DryRun, RevokedBefore: before})
			if errors.Is(err, ErrNotRevoked) {
				continue // re-authorised since it was listed
			}
			if err != nil {
				return reps, err
			}
			reps = append(reps, rep)
		}
		return reps, nil
	}
}

func admin(ctx context.Context, e *Eraser, log *slog.Logger, r Request) (*Report, error) {
	rep, err := e.Erase(ctx, r)
	if errors.Is(err, ErrBadRequest) || errors.Is(err, ErrBadContinuation) {
		log.WarnContext(ctx, "purge refused", "reason", err.Error())
		return nil, err
	}
	attrs := []any{"siteId", r.SiteID, "dryRun", r.DryRun, "resumed", r.Continuation != "", "automatic", !r.RevokedBefore.IsZero()}
	if rep != nil {
		attrs = append(attrs, "connectionIds", strings.Join(rep.ConnectionIDs, ","), "complete", rep.Complete, "total", rep.Total(),
			"deleted", slog.GroupValue(counts(rep.Deleted)...), "foundBehindFence", slog.GroupValue(counts(rep.FoundBehindFence)...),
			"runsCancelled", rep.RunsCancelled)
	} else {
		attrs = append(attrs, "connectionIds", r.ConnectionID)
	}
	if err != nil {
		log.ErrorContext(ctx, "purge failed", append(attrs, "error", err)...)
		return rep, fmt.Errorf("purge: %w", err)
	}
	log.InfoContext(ctx, "purge", attrs...)
	return rep, nil
}

func counts(m map[string]int64) []slog.Attr {
	out := make([]slog.Attr, 0, len(m))
	for k, v := range m {
		out = append(out, slog.Int64(k, v))
	}
	return out
}
