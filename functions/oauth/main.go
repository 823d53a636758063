// Command oauth is the OAuthFunction Lambda: GET and POST /oauth/authorize and GET /oauth/callback (shared/oauthflow)
// behind the HTTP API, adapted from API Gateway payload 2.0 events to net/http.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"jiraexport/shared/access"
	"jiraexport/shared/apikeys"
	"jiraexport/shared/awsconfig"
	"jiraexport/shared/config"
	"jiraexport/shared/connections"
	"jiraexport/shared/fingerprint"
	"jiraexport/shared/oauthflow"
	"jiraexport/shared/oauthstate"
)

func main() {
	log := logger()
	h, err := build(context.Background(), log)
	if err != nil {
		// An init failure: Lambda reports it and retries the cold start.
		log.Error("init failed", slog.Any("error", err))
		os.Exit(1)
	}
	lambda.Start(httpadapter.NewV2(h).ProxyWithContext)
}

// logger returns the redacting logger and makes it the default, so what libraries log through slog is redacted
// too.
func logger() *slog.Logger {
	log := config.Logger()
	slog.SetDefault(log)
	return log
}

func build(ctx context.Context, log *slog.Logger) (*oauthflow.Handler, error) {
	cfg, err := config.Load(config.OAuth)
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
	kmsc := kms.NewFromConfig(awsCfg)
	conns := connections.NewStore(db, cfg.Table)
	toks := access.Tokens(access.Config{DB: db, KMS: kmsc, Table: cfg.Table, TokenKeyID: cfg.TokenKeyID,
		OAuth: cfg.OAuth2(secret), Log: log,
		// This function stores grants but never refreshes them, so the callback is a safeguard; stopping the
		// connection's work is the connectors function's (this one may not query the connectors).
		FlagOnly: true})
	return oauthflow.New(oauthflow.Config{
		ClientID: cfg.ClientID, ClientSecret: secret,
		AuthURL: cfg.AuthURL, APIURL: cfg.APIURL,
		PublicBaseURL: cfg.PublicBaseURL,
		Logger:        log,
	}, oauthflow.Deps{
		States:       oauthstate.NewStore(db, cfg.Table),
		Tokens:       toks,
		Connections:  conns,
		Keys:         apikeys.NewStore(db, cfg.Table),
		Fingerprints: fingerprint.New(kmsc, cfg.AccountKeyID),
	})
}
