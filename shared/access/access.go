// Package access builds a function's access to its connections' Jira: the token store, wired so that a grant
// Atlassian rejects (revoked, expired) flags the connection reauth_required and, where the function may, cancels
// its active runs. Every function and every test harness that refreshes tokens builds the store here, so the tests
// run exactly the wiring production runs.
package access

import (
	"log/slog"

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
	KeyID string // the data key (KMS_KEY_ID)
	OAuth *oauth2.Config
	Log   *slog.Logger
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
		work = connectors.NewStore(c.DB, c.Table)
	}
	base := []tokens.Option{tokens.WithGrantReauthCallback(conns.OnGrantRejected(work))}
	if c.Log != nil {
		base = append(base, tokens.WithLogger(c.Log))
	}
	return tokens.NewStore(c.DB, c.KMS, c.Table, c.KeyID, c.OAuth, append(base, opts...)...)
}
