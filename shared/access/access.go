// Package access builds a function's access to its connections' Jira: the token store, wired so that a grant
// Atlassian rejects (revoked, expired) flags the connection reauth_required and, where the function may, cancels
// its active runs. Every function and every test harness that refreshes tokens builds the store here, so the tests
// run exactly the wiring production runs.
package access

import (
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"golang.org/x/oauth2"

	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/tokens"
)

// Config is what a token store needs.
type Config struct {
	DB    *dynamodb.Client
	KMS   *kms.Client
	Table string
	// TokenKeyID is the token key (TOKEN_KEY_ID, TokenKey), never the data key: DataKey's policy refuses token
	// envelopes, and only TokenKey's policy names the roles that may open them.
	TokenKeyID string
	OAuth      *oauth2.Config
	Log        *slog.Logger
	// RunHistory is how long a run cancelled because its grant was rejected is kept (RUN_HISTORY_DAYS), as the
	// function's own connectors store keeps the runs it finishes.
	RunHistory time.Duration
	// FlagOnly keeps a rejected grant from cancelling runs: for a function that stores grants but may not query
	// the connectors (the OAuth function); the connection is still flagged, and its runs stop at their next
	// checkpoint because exports require an active connection.
	FlagOnly bool
}

// Tokens returns the token store, with opts (clock, retry policy, ...) applied after the wiring.
func Tokens(c Config, opts ...tokens.Option) *tokens.Store {
	conns := connections.NewStore(c.DB, c.Table)
	var work connections.WorkStopper
	if !c.FlagOnly {
		work = connectors.NewStore(c.DB, c.Table, connectors.WithRunHistory(c.RunHistory))
	}
	base := []tokens.Option{tokens.WithGrantReauthCallback(conns.OnGrantRejected(work))}
	if c.Log != nil {
		base = append(base, tokens.WithLogger(c.Log))
	}
	return tokens.NewStore(c.DB, c.KMS, c.Table, c.TokenKeyID, c.OAuth, append(base, opts...)...)
}
