// Command connectors is the ConnectorsFunction: the /v1 connectors API behind API Gateway (HTTP API, payload 2.0).
// It only wires configuration, stores and the handler; the work is in shared/connectorsapi.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

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
	"jiraexport/shared/connectors"
	"jiraexport/shared/connectorsapi"
	"jiraexport/shared/jira"
	"jiraexport/shared/logging"
	"jiraexport/shared/oauthstate"
	"jiraexport/shared/tokens"
)

func main() {
	level := os.Getenv("AWS_LAMBDA_LOG_LEVEL")
	if level == "" {
		level = os.Getenv("LOG_LEVEL")
	}
	log := logging.New(os.Stdout, logging.ParseLevel(level))
	slog.SetDefault(log)
	h, err := build(context.Background(), log)
	if err != nil {
		log.Error("init failed", "error", err)
		os.Exit(1)
	}
	lambda.Start(httpadapter.NewV2(h).ProxyWithContext)
}

func env(name string) (string, error) {
	v := os.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s is not set", name)
	}
	return v, nil
}

func build(ctx context.Context, log *slog.Logger) (http.Handler, error) {
	var missing []string
	get := func(name string) string {
		v, err := env(name)
		if err != nil {
			missing = append(missing, name)
		}
		return v
	}
	table, keyID, clientID, secretARN := get("TABLE_NAME"), get("KMS_KEY_ID"), get("ATLASSIAN_CLIENT_ID"), get("ATLASSIAN_CLIENT_SECRET_ARN")
	if len(missing) > 0 {
		return nil, errors.New("missing configuration: " + strings.Join(missing, ", "))
	}
	authURL := strings.TrimRight(or(os.Getenv("ATLASSIAN_AUTH_URL"), "https://auth.atlassian.com"), "/")
	apiURL := or(os.Getenv("ATLASSIAN_API_URL"), "https://api.atlassian.com")

	cfg, err := awsconfig.Load(ctx)
	if err != nil {
		return nil, err
	}
	db := dynamodb.NewFromConfig(cfg)
	sec, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretARN)})
	if err != nil {
		return nil, fmt.Errorf("read client secret: %w", err)
	}
	conns := connections.NewStore(db, table)
	tok := tokens.NewStore(db, kms.NewFromConfig(cfg), table, keyID, &oauth2.Config{
		ClientID: clientID, ClientSecret: aws.ToString(sec.SecretString),
		Endpoint: oauth2.Endpoint{AuthURL: authURL + "/authorize", TokenURL: authURL + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
	}, tokens.WithLogger(log), tokens.WithReauthCallback(conns.MarkReauthRequired))

	return connectorsapi.New(connectorsapi.Config{
		Keys:        apikeys.NewStore(db, table),
		Connections: conns,
		Tokens:      tokenAdapter{tok},
		Reauth:      oauthstate.NewStore(db, table),
		Store:       connectors.NewStore(db, table),
		Jira: func(ts oauth2.TokenSource) connectorsapi.Jira {
			return jira.New(apiURL, ts, jira.Options{})
		},
		Log:           log,
		PublicBaseURL: os.Getenv("PUBLIC_BASE_URL"),
	}), nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
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

func (t tokenAdapter) Delete(ctx context.Context, connID string) error {
	return t.s.Delete(ctx, connID)
}

func (t tokenAdapter) ReauthRequired(err error) bool {
	return errors.Is(err, tokens.ErrReauthRequired) || errors.Is(err, tokens.ErrNotFound)
}
