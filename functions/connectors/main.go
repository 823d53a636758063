// Command connectors is the ConnectorsFunction: the /v1 connectors API behind API Gateway (HTTP API, payload 2.0).
// It only wires configuration, stores and the handler; the work is in shared/connectorsapi.
package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"
	"golang.org/x/oauth2"

	"jiraexport/shared/apikeys"
	"jiraexport/shared/awsconfig"
	"jiraexport/shared/config"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/connectorsapi"
	"jiraexport/shared/erasure"
	"jiraexport/shared/jira"
	"jiraexport/shared/oauthstate"
	"jiraexport/shared/tokens"
)

func main() {
	log := config.Logger()
	slog.SetDefault(log)
	h, err := build(context.Background(), log)
	if err != nil {
		// An init failure: Lambda reports it and retries the cold start.
		log.Error("init failed", "error", err)
		os.Exit(1)
	}
	lambda.Start(httpadapter.NewV2(h).ProxyWithContext)
}

func build(ctx context.Context, log *slog.Logger) (http.Handler, error) {
	cfg, err := config.FromEnv()
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsconfig.Load(ctx)
	if err != nil {
		return nil, err
	}
	secret, err := config.ClientSecret(ctx, secretsmanager.NewFromConfig(awsCfg), cfg.ClientSecretARN)
	if err != nil {
		return nil, err
	}
	db := dynamodb.NewFromConfig(awsCfg)
	conns := connections.NewStore(db, cfg.Table)
	store := connectors.NewStore(db, cfg.Table, connectors.WithRunHistory(cfg.RunHistory))
	tok := tokens.NewStore(db, kms.NewFromConfig(awsCfg), cfg.Table, cfg.TokenKeyID, cfg.OAuth2(secret),
		tokens.WithLogger(log), tokens.WithGrantReauthCallback(conns.OnGrantRejected(store)))
	eraser := erasure.New(erasure.Config{
		DB: db, S3: awsconfig.NewS3(awsCfg), Table: cfg.Table, Bucket: cfg.Bucket,
		Connections: conns, Runs: store, Settle: cfg.ErasureSettle,
		// Within connectorsapi.DefaultRequestTimeout: what is left is finished by calling DELETE again.
		StopMargin: 3 * time.Second,
	})

	return connectorsapi.New(connectorsapi.Config{
		Keys:        apikeys.NewStore(db, cfg.Table),
		Connections: conns,
		Tokens:      tokenAdapter{tok},
		Reauth:      oauthstate.NewStore(db, cfg.Table),
		Store:       store,
		Jira: func(ts oauth2.TokenSource) connectorsapi.Jira {
			// One quick retry at most: a request has connectorsapi.DefaultRequestTimeout in all.
			return jira.New(cfg.APIURL, ts, jira.Options{MaxRetries: 1, MaxWait: 5 * time.Second})
		},
		Eraser:        eraser,
		Log:           log,
		PublicBaseURL: cfg.PublicBaseURL,
	}), nil
}

// tokenAdapter presents shared/tokens as the API's Tokens port.
type tokenAdapter struct{ s *tokens.Store }

func (t tokenAdapter) TokenSource(ctx context.Context, connID string) oauth2.TokenSource {
	return t.s.TokenSource(ctx, connID)
}

func (t tokenAdapter) Info(ctx context.Context, connID string) (*connectorsapi.TokenInfo, error) {
	m, err := t.s.Metadata(ctx, connID)
	if err != nil {
		return nil, err
	}
	return &connectorsapi.TokenInfo{Scope: m.Scope, Expiry: m.Expiry, FamilyStartedAt: m.FamilyStartedAt}, nil
}

func (t tokenAdapter) ReauthRequired(err error) bool {
	return errors.Is(err, tokens.ErrReauthRequired) || errors.Is(err, tokens.ErrNotFound)
}
