// Command connectors is the ConnectorsFunction: the /v1 connectors API behind API Gateway (HTTP API, payload 2.0).
// It only wires configuration, stores and the handler; the work is in shared/connectorsapi.
package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"time"

	lambdaruntime "github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"
	"golang.org/x/oauth2"

	"jiraexport/shared/access"
	"jiraexport/shared/apikeys"
	"jiraexport/shared/awsconfig"
	"jiraexport/shared/config"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/connectorsapi"
	"jiraexport/shared/erasure"
	"jiraexport/shared/invoke"
	"jiraexport/shared/jira"
	"jiraexport/shared/oauthstate"
	"jiraexport/shared/ratebudget"
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
	lambdaruntime.Start(httpadapter.NewV2(h).ProxyWithContext)
}

func build(ctx context.Context, log *slog.Logger) (http.Handler, error) {
	cfg, err := config.Load(config.Connectors)
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
	tok := access.Tokens(access.Config{DB: db, KMS: kms.NewFromConfig(awsCfg), Table: cfg.Table,
		TokenKeyID: cfg.TokenKeyID, OAuth: cfg.OAuth2(secret), Log: log, RunHistory: cfg.RunHistory})
	ledger := ratebudget.NewLedger(db, cfg.Table)
	eraser := erasure.New(erasure.Config{
		DB: db, S3: awsconfig.NewS3(awsCfg), Table: cfg.Table, Bucket: cfg.Bucket,
		Connections: conns, Runs: store, Settle: cfg.ErasureSettle,
		// Within connectorsapi.DefaultRequestTimeout: what is left is finished by calling DELETE again.
		StopMargin: 3 * time.Second,
	})

	return connectorsapi.New(connectorsapi.Config{
		Keys:        apikeys.NewStore(db, cfg.Table),
		Connections: conns,
		Tokens:      connectorsapi.TokenStore{S: tok},
		Reauth:      oauthstate.NewStore(db, cfg.Table),
		Store:       store,
		JiraFor: func(connID string, ts oauth2.TokenSource) connectorsapi.Jira {
			// One quick retry at most: a request has connectorsapi.DefaultRequestTimeout in all.
			return jira.New(cfg.APIURL, ts, jira.Options{MaxRetries: 1, MaxWait: 5 * time.Second,
				Observe: connectorsapi.RecordPoints(ledger, connID, nil, log)})
		},
		Eraser:        eraser,
		Exports:       invoke.NewExport(lambda.NewFromConfig(awsCfg), cfg.ExportFunction),
		Usage:         ledger,
		Log:           log,
		PublicBaseURL: cfg.PublicBaseURL,
	}), nil
}
