// Package tokens stores each connection's Atlassian OAuth tokens, envelope-encrypted with KMS, and refreshes them
// safely across concurrent Lambdas.
//
// Atlassian rotates refresh tokens: every refresh disables the token used, and replaying a superseded token more
// than 10 minutes later revokes the whole grant. golang.org/x/oauth2 keeps rotated tokens in memory only, so this
// package wraps it: one caller per connection refreshes at a time (a lease taken with a conditional DynamoDB
// update), and the rotated pair is persisted, with a version check, before the new access token is handed out.
//
// The refresh token never leaves the package: Token and TokenSource return access tokens only, so no other code
// can rotate the family behind the store's back.
package tokens

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"golang.org/x/oauth2"

	"jiraexport/shared/table"
)

var (
	// ErrNotFound means the connection has no token record.
	ErrNotFound = errors.New("tokens: no token for connection")
	// ErrReauthRequired means the grant is gone (revoked, expired, or its refresh token was rejected with
	// invalid_grant): the user must consent again. In the process that saw the rejection the error also wraps the
	// *oauth2.RetrieveError.
	ErrReauthRequired = errors.New("tokens: re-authorisation required")
)

// ReauthFunc is told, once per dead grant, that a connection needs the user to consent again; when it fails, a
// later Token call tells it again, so it must tolerate being told twice.
type ReauthFunc func(ctx context.Context, connID, reason string) error

// GrantReauthFunc is a ReauthFunc that is also told when the dead grant began (its familyStartedAt; zero when
// unknown). The report can arrive after the user has already consented again, so the callee compares this with
// the connection's current grant rather than trusting the report's order.
type GrantReauthFunc func(ctx context.Context, connID, reason string, grantStartedAt time.Time) error

// RetryPolicy bounds the retries of one refresh exchange after 5xx answers, 429s and transport errors. Retrying
// is safe because Atlassian accepts the refresh token just sent again within its 10-minute leeway.
type RetryPolicy struct {
	Attempts       int           // total attempts; default 4
	BaseDelay      time.Duration // first backoff; default 250ms, doubled per attempt, with jitter
	MaxDelay       time.Duration // default 2s
	AttemptTimeout time.Duration // one HTTP exchange; default 10s
}

// Option configures a Store.
type Option func(*Store)

// WithClock replaces time.Now (tests drive expiry and leases with it).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithRefreshAhead sets how long before expiry an access token is refreshed; default 5 minutes.
func WithRefreshAhead(d time.Duration) Option { return func(s *Store) { s.refreshAhead = d } }

// WithLeaseDuration sets how long a refresher holds a connection before another caller may take over; default
// 30s. It must exceed one exchange with its retries.
func WithLeaseDuration(d time.Duration) Option { return func(s *Store) { s.lease = d } }

// WithLogger sets the logger; default discards.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithHTTPClient sets the client used for the token endpoint; default has a 15s timeout. Whatever client is
// given, the Store uses a copy that follows no redirect.
func WithHTTPClient(c *http.Client) Option { return func(s *Store) { s.http = c } }

// WithReauthCallback sets the function told when a grant is dead, without the grant's start: a late report can
// then not be told from one about the current grant. Prefer WithGrantReauthCallback.
func WithReauthCallback(f ReauthFunc) Option {
	return WithGrantReauthCallback(func(ctx context.Context, connID, reason string, _ time.Time) error {
		return f(ctx, connID, reason)
	})
}

// WithGrantReauthCallback sets the function told when a grant is dead (wired to connections.OnGrantRejected).
func WithGrantReauthCallback(f GrantReauthFunc) Option { return func(s *Store) { s.onReauth = f } }

// WithRetryPolicy overrides the refresh retry policy; zero fields keep their defaults.
func WithRetryPolicy(p RetryPolicy) Option { return func(s *Store) { s.retry = p } }

// Store reads, writes and refreshes token records. It is safe for concurrent use.
type Store struct {
	db           *dynamodb.Client
	kms          *kms.Client
	table, keyID string
	oauth        *oauth2.Config
	now          func() time.Time
	refreshAhead time.Duration
	lease        time.Duration
	log          *slog.Logger
	http         *http.Client
	onReauth     GrantReauthFunc
	retry        RetryPolicy

	// afterRead, when set (tests only), runs between reading a record and trying to take its lease.
	afterRead func()
}

// NewStore returns a Store over table, encrypting with the KMS key keyID and refreshing with oauthCfg (whose
// Endpoint.TokenURL is ATLASSIAN_AUTH_URL + "/oauth/token").
//
// An AuthStyle left at AutoDetect is set to AuthStyleInParams on the Store's copy of the config: auto-detection
// sends a failed exchange a second time with the same refresh token, which a rotating server may count as reuse,
// and Atlassian reads client credentials from the body.
func NewStore(db *dynamodb.Client, kmsc *kms.Client, table, keyID string, oauthCfg *oauth2.Config, opts ...Option) *Store {
	cfg := *oauthCfg
	if cfg.Endpoint.AuthStyle == oauth2.AuthStyleAutoDetect {
		cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	}
	s := &Store{
		db: db, kms: kmsc, table: table, keyID: keyID, oauth: &cfg,
		now:          time.Now,
		refreshAhead: 5 * time.Minute,
		lease:        30 * time.Second,
		log:          slog.New(slog.DiscardHandler),
		http:         &http.Client{Timeout: 15 * time.Second},
	}
	for _, o := range opts {
		o(s)
	}
	s.http = noRedirects(s.http)
	s.retry = s.retry.withDefaults()
	return s
}

// noRedirects returns a copy of c that follows no redirect. A refresh request carries the client secret and the
// refresh token in its body, and Go re-sends the body of a 307 or 308 to wherever it points: the token endpoint
// never redirects, so a redirect is an error (x/oauth2 reports the 3xx as a failed exchange), never followed.
func noRedirects(c *http.Client) *http.Client {
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = 4
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 250 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 2 * time.Second
	}
	if p.AttemptTimeout <= 0 {
		p.AttemptTimeout = 10 * time.Second
	}
	return p
}

// Metadata is the plaintext part of a token record.
type Metadata struct {
	Scope, TokenType string
	// Expiry is the access token's.
	Expiry time.Time
	// FamilyStartedAt is when the grant's refresh-token family began: Atlassian ends a family 365 days later
	// whatever the rotations, so this is when the user will have to consent again.
	FamilyStartedAt time.Time
	// RefreshedAt is the last rotation (or the Put).
	RefreshedAt time.Time
	Version     int64
}

// Put stores the tokens of a new grant (first consent or re-authorisation), replacing any earlier record of the
// connection, its lease and any re-authorisation marker. familyStartedAt is when the code exchange happened
// (zero means now). The token must carry a refresh token (scope offline_access).
func (s *Store) Put(ctx context.Context, connID string, tok *oauth2.Token, familyStartedAt time.Time) error {
	if connID == "" || tok == nil || tok.AccessToken == "" {
		return errors.New("tokens: Put needs a connection id and an access token")
	}
	if tok.RefreshToken == "" {
		return errors.New("tokens: Put needs a refresh token (was offline_access requested?)")
	}
	now := s.now().UTC()
	if familyStartedAt.IsZero() {
		familyStartedAt = now
	}
	env, err := s.seal(ctx, connID, tok.AccessToken, tok.RefreshToken)
	if err != nil {
		return err
	}
	u := newUpdate()
	u.set("#type", "type", table.S(itemType))
	u.set("enc", "enc", table.S(encVersion))
	u.set("edk", "edk", table.B(env.edk))
	u.set("nonce", "nonce", table.B(env.nonce))
	u.set("ct", "ct", table.B(env.ct))
	u.setOrRemove("scope", scopeOf(tok))
	u.setOrRemove("tokenType", tokenTypeOf(tok))
	u.setTime("expiry", tok.Expiry)
	u.setTime("familyStartedAt", familyStartedAt)
	u.setTime("refreshedAt", now)
	u.remove("leaseOwner", "leaseUntil", "reauthReason", "reauthAt", "reauthNotified", "ttl")
	u.bumpVersion(true)
	in := u.input(s.table, connID)
	if _, err := s.db.UpdateItem(ctx, in); err != nil {
		return fmt.Errorf("tokens: put %s: %w", connID, err)
	}
	s.log.InfoContext(ctx, "token stored", slog.String("connectionId", connID))
	return nil
}

// Metadata returns the record's plaintext metadata without decrypting anything.
func (s *Store) Metadata(ctx context.Context, connID string) (*Metadata, error) {
	rec, err := s.get(ctx, connID)
	if err != nil {
		return nil, err
	}
	if rec.reauthReason != "" {
		return nil, rec.reauthErr()
	}
	return &Metadata{Scope: rec.scope, TokenType: rec.tokenType, Expiry: rec.expiry,
		FamilyStartedAt: rec.familyStartedAt, RefreshedAt: rec.refreshedAt, Version: rec.version}, nil
}

// Delete removes the connection's token record (disconnect, purge). Deleting a missing record is not an error.
func (s *Store) Delete(ctx context.Context, connID string) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.table), Key: key(connID)})
	if err != nil {
		return fmt.Errorf("tokens: delete %s: %w", connID, err)
	}
	return nil
}

// TokenSource returns a source of access tokens for Jira clients (oauth2.NewClient, oauth2.Transport). It caches
// the token in memory until the refresh-ahead window and then asks the Store, which refreshes and persists.
// ctx is used for those calls, as with oauth2.Config.TokenSource.
func (s *Store) TokenSource(ctx context.Context, connID string) oauth2.TokenSource {
	return oauth2.ReuseTokenSourceWithExpiry(nil, storeSource{ctx: ctx, s: s, connID: connID}, s.refreshAhead)
}

type storeSource struct {
	ctx    context.Context
	s      *Store
	connID string
}

func (t storeSource) Token() (*oauth2.Token, error) { return t.s.Token(t.ctx, t.connID) }

func scopeOf(t *oauth2.Token) string {
	if v, ok := t.Extra("scope").(string); ok {
		return v
	}
	return ""
}

func tokenTypeOf(t *oauth2.Token) string {
	if t.TokenType == "" {
		return "Bearer"
	}
	return t.TokenType
}
