// Command export is the ExportFunction: one export run per invocation, invoked asynchronously by the dispatcher
// and the connectors API with {"connectionId","connectorId","runId"}. It only wires configuration, clients and
// the engine; the work is in shared/export.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"golang.org/x/oauth2"

	"jiraexport/shared/access"
	"jiraexport/shared/attachments"
	"jiraexport/shared/awsconfig"
	"jiraexport/shared/config"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/export"
	"jiraexport/shared/jira"
	"jiraexport/shared/mirror"
	"jiraexport/shared/pseudonym"
	"jiraexport/shared/ratebudget"
	"jiraexport/shared/ratebudget/pacer"
	"jiraexport/shared/tokens"
)

func main() {
	log := config.Logger()
	slog.SetDefault(log)
	eng, err := build(context.Background(), log)
	if err != nil {
		log.Error("init failed", "error", err)
		os.Exit(1)
	}
	lambda.Start(handler(eng))
}

// handler returns nil for every run this invocation may not or need not work on (a duplicate event, a finished or
// leased run): an error makes Lambda retry the event, which is only worth it when the work itself could not start.
func handler(eng *export.Engine) func(context.Context, connectors.RunRef) error {
	return func(ctx context.Context, ref connectors.RunRef) error {
		if ref.ConnectionID == "" || ref.ConnectorID == "" || ref.RunID == "" {
			slog.WarnContext(ctx, "export event without a run reference ignored")
			return nil
		}
		_, err := eng.Run(ctx, ref)
		return err
	}
}

func build(ctx context.Context, log *slog.Logger) (*export.Engine, error) {
	cfg, err := config.Load(config.Export)
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
	lease, err := seconds("EXPORT_LEASE_SECONDS")
	if err != nil {
		return nil, err
	}
	db := dynamodb.NewFromConfig(awsCfg)
	// A dead grant only flags the connection here (FlagOnly): the export fails its own run with reason
	// reauth_required, and any other run of the connection does the same at its next checkpoint, so the outcome
	// does not depend on which process saw the rejection first.
	kmsc := kms.NewFromConfig(awsCfg)
	tok := access.Tokens(access.Config{DB: db, KMS: kmsc, Table: cfg.Table,
		TokenKeyID: cfg.TokenKeyID, OAuth: cfg.OAuth2(secret), Log: log, FlagOnly: true})
	// One pacer per process: its per-site × endpoint × method buckets outlive a run, so a warm container that
	// serves run after run keeps Atlassian's steady rates and the slow-downs NearLimit and burst 429s asked for.
	// The quota 429 it sees is recorded as a shared pause by the engine, which knows the run's connection.
	paced := &http.Client{Transport: pacer.New(http.DefaultTransport, pacer.Options{})}
	s3c := awsconfig.NewS3(awsCfg)
	// The gateway client sends the bearer (the Transferor never lets it follow the 303) and is paced like every
	// Jira call (attachment content has its own 300/s bucket); the media client is a plain one that never carries
	// Authorization and is not a Jira endpoint.
	// Two parts at once: a large attachment's parts are streamed one after the other, and the next one starts
	// while the last waits for S3's answer (with the transfer package's buffered parts, one at a time ran the
	// benchmark's 1 GiB copy at 78 % of a plain copy, two at 84 to 89 %); a small one's transfer-package upload
	// holds a part buffer each.
	att := attachments.New(s3c, attachments.Config{APIURL: cfg.APIURL, Bucket: cfg.Bucket, KMSKeyID: cfg.KeyID,
		Concurrency: 2, Gateway: &http.Client{Timeout: 30 * time.Second, Transport: paced.Transport}, Media: &http.Client{}})
	return export.New(export.Config{
		Attachments: att,
		Runs:        connectors.NewStore(db, cfg.Table, connectors.WithRunHistory(cfg.RunHistory)),
		Connections: connections.NewStore(db, cfg.Table),
		Tokens:      tok,
		Mirror:      mirror.NewWriter(s3c, cfg.Bucket, cfg.KeyID),
		DB:          db,
		Table:       cfg.Table,
		Jira: func(ts oauth2.TokenSource, observe func(jira.Observation)) *jira.Client {
			// Pages of 50 full issues can be large: a longer per-attempt timeout than the API's.
			return jira.New(cfg.APIURL, ts, jira.Options{Timeout: 30 * time.Second, Observe: observe, IsReauth: deadGrant, HTTPClient: paced})
		},
		Pseudonyms: pseudonym.NewStore(db, kmsc, cfg.Table, cfg.KeyID),
		Budget:     export.Budget{Pauses: ratebudget.NewPauses(db, cfg.Table), Ledger: ratebudget.NewLedger(db, cfg.Table)},
		Log:        log,
		Lease:      lease,
	}), nil
}

// seconds reads an optional duration in seconds from the environment (zero: the engine's default).
func seconds(name string) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s must be a positive number of seconds", name)
	}
	return time.Duration(n) * time.Second, nil
}

// deadGrant tells the Jira client which token errors mean the grant is gone.
func deadGrant(err error) bool {
	return errors.Is(err, tokens.ErrReauthRequired) || errors.Is(err, tokens.ErrNotFound)
}
