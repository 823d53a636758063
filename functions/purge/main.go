// Command purge is the PurgeFunction: an administrator's erasure of one connection or of every connection holding
// a Jira site, invoked directly (`aws lambda invoke`, no HTTP route). It only wires configuration, clients and the
// erasure core (shared/erasure); its answer is the erasure report.
//
// Input:  {"connectionId": "...", "dryRun": true} or {"siteId": "...", "dryRun": false}, plus "continuation"
// from a previous answer whose "complete" was false; or {"revokedGrants": true} to erase every connection whose
// grant stayed revoked REVOKED_GRANT_DAYS. Output: a list of erasure reports.
package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"jiraexport/shared/awsconfig"
	"jiraexport/shared/config"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/erasure"
)

func main() {
	log := config.Logger()
	slog.SetDefault(log)
	e, revokedFor, err := build(context.Background())
	if err != nil {
		log.Error("init failed", "error", err)
		os.Exit(1)
	}
	lambda.Start(erasure.AdminHandler(e, log, revokedFor))
}

func build(ctx context.Context) (*erasure.Eraser, time.Duration, error) {
	cfg, err := config.Load(config.Purge)
	if err != nil {
		return nil, 0, err
	}
	awsCfg, err := awsconfig.Load(ctx)
	if err != nil {
		return nil, 0, err
	}
	db := dynamodb.NewFromConfig(awsCfg)
	return erasure.New(erasure.Config{
		DB: db, S3: awsconfig.NewS3(awsCfg), Table: cfg.Table, Bucket: cfg.Bucket,
		Connections: connections.NewStore(db, cfg.Table), Runs: connectors.NewStore(db, cfg.Table),
		Settle: cfg.ErasureSettle,
	}), cfg.RevokedGrants, nil
}
