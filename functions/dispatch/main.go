// Command dispatch is the DispatchFunction: fired every minute by EventBridge Scheduler, it starts due
// connectors' runs, resumes paused or abandoned runs and invokes the export asynchronously. It only wires
// configuration, clients and the dispatcher; the work is in shared/dispatch.
package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"

	"jiraexport/shared/awsconfig"
	"jiraexport/shared/config"
	"jiraexport/shared/connectors"
	"jiraexport/shared/dispatch"
	"jiraexport/shared/invoke"
	"jiraexport/shared/ratebudget"
)

func main() {
	log := config.Logger()
	slog.SetDefault(log)
	d, err := build(context.Background(), log)
	if err != nil {
		// An init failure: Lambda reports it and retries the cold start.
		log.Error("init failed", "error", err)
		os.Exit(1)
	}
	// The scheduler's event carries nothing the tick needs: the table is the source of truth.
	lambda.Start(func(ctx context.Context, _ json.RawMessage) (dispatch.Report, error) { return d.Tick(ctx) })
}

func build(ctx context.Context, log *slog.Logger) (*dispatch.Dispatcher, error) {
	cfg, err := config.Load(config.Dispatch)
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsconfig.Load(ctx)
	if err != nil {
		return nil, err
	}
	db := dynamodb.NewFromConfig(awsCfg)
	return dispatch.New(dispatch.Config{
		Store:   connectors.NewStore(db, cfg.Table, connectors.WithDispatchGuard(cfg.DispatchGuard)),
		Invoker: invoke.NewExport(awslambda.NewFromConfig(awsCfg), cfg.ExportFunction),
		// Nothing starts on a site under a quota pause; what starts gets a fair share of the hour's points
		// (the Allocator's default safety margin and pacing) as its invocation's allowance.
		Pauses: dispatch.QuotaPauses{Store: ratebudget.NewPauses(db, cfg.Table)},
		Budget: dispatch.PointsBudget{Ledger: ratebudget.NewLedger(db, cfg.Table),
			Allocator: ratebudget.Allocator{HourlyBudget: cfg.PointsPerHour}},
		Log: log,
	})
}
