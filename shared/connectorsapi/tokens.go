package connectorsapi

import (
	"context"
	"errors"

	"golang.org/x/oauth2"

	"jiraexport/shared/tokens"
)

// TokenStore presents shared/tokens as the API's Tokens port; functions/connectors and the tests use the same.
type TokenStore struct{ S *tokens.Store }

var _ Tokens = TokenStore{}

// TokenSource implements Tokens.
func (t TokenStore) TokenSource(ctx context.Context, connID string) oauth2.TokenSource {
	return t.S.TokenSource(ctx, connID)
}

// Info implements Tokens.
func (t TokenStore) Info(ctx context.Context, connID string) (*TokenInfo, error) {
	m, err := t.S.Metadata(ctx, connID)
	if err != nil {
		return nil, err
	}
	return &TokenInfo{Scope: m.Scope, Expiry: m.Expiry, FamilyStartedAt: m.FamilyStartedAt}, nil
}

// ReauthRequired implements Tokens: a rejected or missing grant needs the user's consent again.
func (t TokenStore) ReauthRequired(err error) bool {
	return errors.Is(err, tokens.ErrReauthRequired) || errors.Is(err, tokens.ErrNotFound)
}
