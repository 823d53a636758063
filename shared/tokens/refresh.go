package tokens

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"golang.org/x/oauth2"

	"jiraexport/shared/backoff"
	"jiraexport/shared/table"
)

const (
	// minValidity is how long a token must still live to be handed out while another caller refreshes it.
	minValidity = time.Minute
	// persistMargin is kept free at the end of a lease for persisting what the exchange returned.
	persistMargin = 5 * time.Second
	// writeTimeout bounds the writes that must happen even when the caller's context has ended (persisting a
	// rotated pair, the re-authorisation tombstone, releasing a lease).
	writeTimeout = 10 * time.Second
)

// errLostRace means the record changed under us (another caller took the lease, persisted, or a new grant was
// put): read again rather than refresh.
var errLostRace = errors.New("tokens: record changed concurrently")

// errWaitTimeout ends a wait for another caller's refresh that did not finish in time.
var errWaitTimeout = errors.New("tokens: timed out waiting for a concurrent refresh")

// Token returns a valid access token for the connection (without its refresh token), refreshing it first when
// it is inside the refresh-ahead window. Concurrent callers anywhere share one refresh: the one holding the
// connection's lease exchanges the refresh token and persists the rotated pair before anyone uses it; the others
// wait for that (or use the current token while it still has a minute to live). A rejected grant returns
// ErrReauthRequired and is never retried.
func (s *Store) Token(ctx context.Context, connID string) (*oauth2.Token, error) {
	// The wait outlasts one lease, so a caller waiting on a crashed refresher takes over when its lease ends.
	waitUntil := time.Now().Add(s.lease + persistMargin)
	wait := backoff.Policy{Base: 50 * time.Millisecond, Max: time.Second}
	for waits := 0; ; {
		rec, err := s.get(ctx, connID)
		if err != nil {
			return nil, err
		}
		if rec.reauthReason != "" {
			// A callback not recorded as done is tried again, once the one that made the tombstone has had its
			// time: before that it may still be running.
			if !rec.reauthNotified && s.onReauth != nil && !s.now().Before(rec.reauthAt.Add(writeTimeout)) {
				return nil, errors.Join(rec.reauthErr(), s.notify(ctx, connID, rec.version, rec.reauthReason, rec.familyStartedAt))
			}
			return nil, rec.reauthErr()
		}
		now := s.now()
		switch {
		case !rec.needsRefresh(now, s.refreshAhead):
			return s.accessToken(ctx, connID, rec)
		case rec.leased(now):
			if !rec.needsRefresh(now, minValidity) {
				return s.accessToken(ctx, connID, rec)
			}
		default:
			if s.afterRead != nil {
				s.afterRead()
			}
			tok, err := s.refresh(ctx, connID, rec)
			if !errors.Is(err, errLostRace) {
				return tok, err
			}
			if time.Now().Before(waitUntil) {
				continue // the record moved on: its new state decides, no need to sleep first
			}
		}
		if err := sleep(ctx, wait.Delay(waits, 0), waitUntil); err != nil {
			return nil, fmt.Errorf("tokens: token for %s: %w", connID, err)
		}
		waits++
	}
}

func (s *Store) accessToken(ctx context.Context, connID string, rec *record) (*oauth2.Token, error) {
	sec, err := s.open(ctx, connID, rec.env)
	if err != nil {
		return nil, err
	}
	tt := rec.tokenType
	if tt == "" {
		tt = "Bearer"
	}
	return &oauth2.Token{AccessToken: sec.AccessToken, TokenType: tt, Expiry: rec.expiry}, nil
}

// refresh takes the connection's lease, rotates the token pair and persists it. errLostRace means another
// caller got there first.
func (s *Store) refresh(ctx context.Context, connID string, rec *record) (tok *oauth2.Token, err error) {
	owner := newOwnerID()
	now := s.now()
	until := now.Add(s.lease)
	u := newUpdate()
	u.set("leaseOwner", "leaseOwner", table.S(owner))
	u.set("leaseUntil", "leaseUntil", table.N(until.UnixMilli()))
	u.bumpVersion(false)
	u.expectVersion(rec.version)
	u.values[":now"] = table.N(now.UnixMilli())
	u.cond = append(u.cond, "(attribute_not_exists(#leaseUntil) OR #leaseUntil < :now)", "attribute_not_exists(#reauthReason)")
	u.names["#reauthReason"] = "reauthReason"
	in := u.input(s.table, connID)
	in.ReturnValuesOnConditionCheckFailure = ddbtypes.ReturnValuesOnConditionCheckFailureAllOld
	leaseV := rec.version + 1
	if _, err := s.db.UpdateItem(ctx, in); err != nil {
		// The SDK retries a write whose response was lost; the retry then fails the condition against our own
		// lease. Only that lease carries our owner id, so it is ours, not one to wait out.
		old, failed := table.ConditionFailed(err)
		if !failed {
			return nil, fmt.Errorf("tokens: lease %s: %w", connID, err)
		}
		cur, derr := decodeRecord(old)
		if derr != nil || len(old) == 0 || cur.leaseOwner != owner {
			return nil, errLostRace
		}
		leaseV = cur.version
	}
	settled := false // true once the lease is gone: persisted, tombstoned, or taken over
	defer func() {
		if !settled {
			s.release(ctx, connID, leaseV)
		}
	}()

	sec, err := s.open(ctx, connID, rec.env)
	if err != nil {
		return nil, err
	}
	if sec.RefreshToken == "" {
		settled = true
		return nil, s.reauth(ctx, connID, leaseV, rec.familyStartedAt, "no refresh token", nil)
	}
	// Finish the exchange inside the lease, leaving room to persist, so no one takes over a live refresh.
	exCtx, cancel := context.WithTimeout(ctx, until.Sub(s.now())-min(persistMargin, s.lease/4))
	newTok, err := s.exchange(exCtx, connID, sec.RefreshToken)
	cancel()
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
		settled = true
		return nil, s.reauth(ctx, connID, leaseV, rec.familyStartedAt, "invalid_grant", re)
	}
	if err != nil {
		return nil, fmt.Errorf("tokens: refresh %s: %w", connID, err)
	}
	if newTok.RefreshToken == "" {
		// x/oauth2 already keeps the old one when the answer has none; this keeps it whatever the library does.
		newTok.RefreshToken = sec.RefreshToken
	}
	expiry := newTok.Expiry
	if secs, ok := expiresIn(newTok); ok {
		expiry = s.now().Add(secs) // on the store's clock, like every other time in the record
	}

	// From here the pair exists only in memory: persist it even if the caller's context has ended.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer wcancel()
	env, err := s.seal(wctx, connID, newTok.AccessToken, newTok.RefreshToken)
	if err != nil {
		return nil, err
	}
	p := newUpdate()
	p.set("enc", "enc", table.S(encVersion))
	p.set("edk", "edk", table.B(env.edk))
	p.set("nonce", "nonce", table.B(env.nonce))
	p.set("ct", "ct", table.B(env.ct))
	scope := scopeOf(newTok)
	if scope == "" {
		scope = rec.scope
	}
	p.setOrRemove("scope", scope)
	p.setOrRemove("tokenType", tokenTypeOf(newTok))
	p.setTime("expiry", expiry)
	p.setTime("refreshedAt", s.now())
	p.remove("leaseOwner", "leaseUntil")
	p.bumpVersion(false)
	p.expectVersion(leaseV)
	if _, err := s.db.UpdateItem(wctx, p.input(s.table, connID)); err != nil {
		if isConditionFailed(err) {
			// Our lease ran out and someone took over (their exchange of the same refresh token was inside
			// Atlassian's leeway), or a new grant was put. Theirs wins; ours is dropped unused.
			settled = true
			s.log.WarnContext(ctx, "token refresh lost its lease before persisting", slog.String("connectionId", connID))
			return nil, errLostRace
		}
		// The stored refresh token is now the previous one, which Atlassian accepts again for 10 minutes:
		// releasing the lease lets the next caller retry inside that window.
		return nil, fmt.Errorf("tokens: persist refreshed token %s: %w", connID, err)
	}
	settled = true
	s.log.InfoContext(ctx, "token refreshed", slog.String("connectionId", connID), slog.Int64("version", leaseV+1))
	return &oauth2.Token{AccessToken: newTok.AccessToken, TokenType: tokenTypeOf(newTok), Expiry: expiry}, nil
}

// exchange performs one refresh through x/oauth2, retrying 5xx, 429 and transport failures with backoff.
func (s *Store) exchange(ctx context.Context, connID, refreshToken string) (*oauth2.Token, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.http)
	b := backoff.Policy{Base: s.retry.BaseDelay, Max: s.retry.MaxDelay}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, s.retry.AttemptTimeout)
		// A fresh source per attempt: the same refresh token each time, never one the library rotated in memory.
		tok, err := s.oauth.TokenSource(actx, &oauth2.Token{RefreshToken: refreshToken}).Token()
		cancel()
		if err == nil {
			return tok, nil
		}
		if !retryable(ctx, err) || attempt >= s.retry.Attempts {
			return nil, err
		}
		s.log.WarnContext(ctx, "token refresh attempt failed, retrying", slog.String("connectionId", connID),
			slog.Int("attempt", attempt), slog.Int("status", statusOf(err)))
		if serr := sleep(ctx, b.Delay(attempt-1, 0), time.Time{}); serr != nil {
			return nil, errors.Join(err, serr)
		}
	}
}

func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.Response == nil {
			return false
		}
		c := re.Response.StatusCode
		return c >= 500 || c == http.StatusTooManyRequests
	}
	return true // transport error or attempt timeout: the request may not have arrived, and the leeway covers it if it did
}

func statusOf(err error) int {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

// reauth replaces the record with a tombstone holding no token material, then tells the callback. When the
// record moved on (a new grant was put meanwhile) neither happens.
func (s *Store) reauth(ctx context.Context, connID string, leaseV int64, familyStartedAt time.Time, reason string, cause error) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	now := s.now()
	u := newUpdate()
	u.set("reauthReason", "reauthReason", table.S(reason))
	u.setTime("reauthAt", now)
	u.set("ttl", "ttl", table.N(now.Add(tombstoneTTL).Unix()))
	u.remove("enc", "edk", "nonce", "ct", "leaseOwner", "leaseUntil", "scope", "tokenType", "expiry", "refreshedAt")
	u.bumpVersion(false)
	u.expectVersion(leaseV)
	var errs []error
	tombstoned := true
	if _, err := s.db.UpdateItem(wctx, u.input(s.table, connID)); err != nil {
		if isConditionFailed(err) {
			return errLostRace
		}
		// Without the tombstone a later caller meets invalid_grant again; the user still has to be told now.
		tombstoned = false
		errs = append(errs, fmt.Errorf("tokens: tombstone %s: %w", connID, err))
	}
	s.log.WarnContext(ctx, "grant rejected, re-authorisation required", slog.String("connectionId", connID), slog.String("reason", reason))
	if s.onReauth != nil {
		if tombstoned {
			errs = append(errs, s.notify(wctx, connID, leaseV+1, reason, familyStartedAt))
		} else if err := s.onReauth(wctx, connID, reason, familyStartedAt); err != nil {
			errs = append(errs, fmt.Errorf("tokens: reauth callback for %s: %w", connID, err))
		}
	}
	base := fmt.Errorf("%w (%s)", ErrReauthRequired, reason)
	if cause != nil {
		base = fmt.Errorf("%w: %w", ErrReauthRequired, cause)
	}
	return errors.Join(append([]error{base}, errs...)...)
}

// notify runs the re-authorisation callback for the tombstone at version tombV and records on it that the
// callback succeeded. A failed callback leaves the mark unset, so the next Token call tries again: the tombstone
// stops Atlassian being asked, and without the callback nothing else would tell the connection.
func (s *Store) notify(ctx context.Context, connID string, tombV int64, reason string, familyStartedAt time.Time) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := s.onReauth(wctx, connID, reason, familyStartedAt); err != nil {
		return fmt.Errorf("tokens: reauth callback for %s: %w", connID, err)
	}
	u := newUpdate()
	u.set("reauthNotified", "reauthNotified", table.Bool(true))
	u.bumpVersion(false)
	u.expectVersion(tombV)
	if _, err := s.db.UpdateItem(wctx, u.input(s.table, connID)); err != nil && !isConditionFailed(err) {
		// The callback is told again later, which it tolerates; nothing is lost.
		s.log.WarnContext(ctx, "re-authorisation notice not recorded", slog.String("connectionId", connID), slog.Any("error", err))
	}
	return nil
}

// release gives the lease back after a failed refresh so the next caller need not wait for it to expire.
func (s *Store) release(ctx context.Context, connID string, leaseV int64) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	u := newUpdate()
	u.remove("leaseOwner", "leaseUntil")
	u.bumpVersion(false)
	u.expectVersion(leaseV)
	if _, err := s.db.UpdateItem(wctx, u.input(s.table, connID)); err != nil && !isConditionFailed(err) {
		s.log.WarnContext(ctx, "token lease release failed", slog.String("connectionId", connID), slog.Any("error", err))
	}
}

func expiresIn(t *oauth2.Token) (time.Duration, bool) {
	var secs float64
	switch v := t.Extra("expires_in").(type) {
	case float64:
		secs = v
	case int64:
		secs = float64(v)
	default:
		return 0, false
	}
	if secs <= 0 {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}

func newOwnerID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails on supported platforms
	return hex.EncodeToString(b)
}

// sleep waits d, failing early when ctx ends or when the wait would pass until (zero: no bound).
func sleep(ctx context.Context, d time.Duration, until time.Time) error {
	if !until.IsZero() {
		left := time.Until(until)
		if left <= 0 {
			return errWaitTimeout
		}
		d = min(d, left)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
