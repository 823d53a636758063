// Command oauth is the OAuthFunction Lambda: GET /oauth/authorize and GET /oauth/callback (shared/oauthflow)
// behind the HTTP API, adapted from API Gateway payload 2.0 events to net/http.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"
	"golang.org/x/oauth2"

	"jiraexport/shared/apikeys"
	"jiraexport/shared/awsconfig"
	"jiraexport/shared/connections"
	"jiraexport/shared/logging"
	"jiraexport/shared/oauthflow"
	"jiraexport/shared/oauthstate"
	"jiraexport/shared/tokens"
)

func main() {
	level := os.Getenv("AWS_LAMBDA_LOG_LEVEL")
	if level == "" {
		level = os.Getenv("LOG_LEVEL")
	}
	log := logging.New(os.Stdout, logging.ParseLevel(level))
	h, err := build(context.Background(), log)
	if err != nil {
		// An init failure: Lambda reports it and retries the cold start.
		log.Error("init failed", slog.Any("error", err))
		os.Exit(1)
	}
	lambda.Start(httpadapter.NewV2(h).ProxyWithContext)
}

func build(ctx context.Context, log *slog.Logger) (*oauthflow.Handler, error) {
	env, err := readEnv("TABLE_NAME", "KMS_KEY_ID", "ATLASSIAN_CLIENT_ID", "ATLASSIAN_CLIENT_SECRET_ARN",
		"ATLASSIAN_AUTH_URL", "ATLASSIAN_API_URL")
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsconfig.Load(ctx)
	if err != nil {
		return nil, err
	}
	secret, err := clientSecret(ctx, secretsmanager.NewFromConfig(awsCfg), env["ATLASSIAN_CLIENT_SECRET_ARN"])
	if err != nil {
		return nil, err
	}
	db := dynamodb.NewFromConfig(awsCfg)
	table := env["TABLE_NAME"]
	conns := connections.NewStore(db, table)
	toks := tokens.NewStore(db, kms.NewFromConfig(awsCfg), table, env["KMS_KEY_ID"], &oauth2.Config{
		ClientID: env["ATLASSIAN_CLIENT_ID"], ClientSecret: secret, Endpoint: oauthflow.Endpoint(env["ATLASSIAN_AUTH_URL"]),
	}, tokens.WithLogger(log), tokens.WithReauthCallback(conns.MarkReauthRequired))
	return oauthflow.New(oauthflow.Config{
		ClientID: env["ATLASSIAN_CLIENT_ID"], ClientSecret: secret,
		AuthURL: env["ATLASSIAN_AUTH_URL"], APIURL: env["ATLASSIAN_API_URL"],
		PublicBaseURL: os.Getenv("PUBLIC_BASE_URL"),
		Logger:        log,
	}, oauthflow.Deps{
		States:      oauthstate.NewStore(db, table),
		Tokens:      toks,
		Connections: conns,
		Keys:        apikeys.NewStore(db, table),
	})
}

func readEnv(names ...string) (map[string]string, error) {
	out := map[string]string{}
	var missing []string
	for _, n := range names {
		v := os.Getenv(n)
		if v == "" {
			missing = append(missing, n)
		}
		out[n] = v
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing environment: %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// clientSecret reads the Atlassian client secret once per cold start.
func clientSecret(ctx context.Context, sm *secretsmanager.Client, arn string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("read the Atlassian client secret: %w", err)
	}
	s := strings.TrimSpace(aws.ToString(out.SecretString))
	if s == "" {
		return "", fmt.Errorf("the Atlassian client secret %s is empty", arn)
	}
	return s, nil
}
