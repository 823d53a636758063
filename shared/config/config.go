// Package config reads what each function needs from its environment (set per function in template.yaml) and the
// Atlassian client secret from Secrets Manager, once per cold start. Each function asks for its own set
// (Required), so a function that has no business with, say, the client secret neither gets its ARN nor can start
// without noticing that something it needs is missing.
package config

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"golang.org/x/oauth2"

	"jiraexport/shared/logging"
)

// Config is a function's configuration; fields a function does not need are empty.
type Config struct {
	Table      string // TABLE_NAME
	KeyID      string // KMS_KEY_ID: the customer-managed key of the data at rest (ARN)
	TokenKeyID string // TOKEN_KEY_ID: the key of OAuth token envelopes only (ARN)
	// AccountKeyID is ACCOUNT_KEY_ID, the HMAC key of account fingerprints; only the OAuth function has it.
	AccountKeyID    string
	Bucket          string // BUCKET_NAME
	ClientID        string // ATLASSIAN_CLIENT_ID
	ClientSecretARN string // ATLASSIAN_CLIENT_SECRET_ARN
	AuthURL         string // ATLASSIAN_AUTH_URL, default https://auth.atlassian.com
	APIURL          string // ATLASSIAN_API_URL, default https://api.atlassian.com
	// PublicBaseURL is the API's public base URL; empty means: derived from each request's domain name.
	PublicBaseURL string
	// RunHistory is how long finished runs are kept (RUN_HISTORY_DAYS; zero or unset: as long as their connector).
	RunHistory time.Duration
	// ErasureSettle is how long an erasure waits for an export that was running at its fence
	// (ERASURE_SETTLE_SECONDS, the export's timeout; unset: erasure.DefaultSettle; "0": no wait, for tests).
	ErasureSettle time.Duration
	// RevokedGrants is how long a grant may stay revoked before the purge function erases its connection
	// (REVOKED_GRANT_DAYS, at least 1).
	RevokedGrants time.Duration
	// ExportFunction is the export function's name or ARN (EXPORT_FUNCTION_NAME), for those that start runs.
	ExportFunction string
	// PointsPerHour is the app's hourly Atlassian points budget the dispatcher admits work under
	// (ATLASSIAN_POINTS_PER_HOUR, template parameter AtlassianPointsPerHour; default 65,000, Atlassian's).
	PointsPerHour int64
	// DispatchGuard is how long the dispatcher leaves a run it handed to an export invocation alone
	// (DISPATCH_GUARD_SECONDS; unset: connectors.DispatchGuard, 45 s). Tests that crash exports shorten it with
	// the export's lease; the template leaves it unset.
	DispatchGuard time.Duration
}

// DefaultPointsPerHour is Atlassian's default hourly points quota of an OAuth 2.0 (3LO) app.
const DefaultPointsPerHour = 65000

// Function names a function by its folder under functions/.
type Function string

// The functions.
const (
	OAuth      Function = "oauth"
	Connectors Function = "connectors"
	Export     Function = "export"
	Dispatch   Function = "dispatch"
	Purge      Function = "purge"
)

// Required returns the environment variables fn cannot start without, sorted; nil for an unknown function.
// template.yaml gives each function these and the Optional ones it uses, and a template test holds the two
// together. OAuth tokens are sealed under TOKEN_KEY_ID (TokenKey); KMS_KEY_ID (the data key) only reaches the
// export, which names it on every S3 write.
func Required(fn Function) []string {
	atlassian := []string{"ATLASSIAN_CLIENT_ID", "ATLASSIAN_CLIENT_SECRET_ARN", "TABLE_NAME", "TOKEN_KEY_ID"}
	var vars []string
	switch fn {
	case OAuth:
		vars = append(atlassian, "ACCOUNT_KEY_ID")
	case Connectors:
		// BUCKET_NAME: DELETE /v1/connection erases the connection's exported objects.
		vars = append(atlassian, "BUCKET_NAME", "EXPORT_FUNCTION_NAME")
	case Export:
		vars = append(atlassian, "BUCKET_NAME", "KMS_KEY_ID")
	case Dispatch:
		vars = []string{"EXPORT_FUNCTION_NAME", "TABLE_NAME"}
	case Purge:
		vars = []string{"BUCKET_NAME", "REVOKED_GRANT_DAYS", "TABLE_NAME"}
	default:
		return nil
	}
	slices.Sort(vars)
	return vars
}

// Optional returns the variables fn reads when set and defaults otherwise, sorted.
func Optional(fn Function) []string {
	switch fn {
	case OAuth:
		return []string{"ATLASSIAN_API_URL", "ATLASSIAN_AUTH_URL", "PUBLIC_BASE_URL"}
	case Connectors:
		return []string{"ATLASSIAN_API_URL", "ATLASSIAN_AUTH_URL", "ERASURE_SETTLE_SECONDS", "PUBLIC_BASE_URL", "RUN_HISTORY_DAYS"}
	case Export:
		// EXPORT_LEASE_SECONDS: tests shorten the run lease (default 3 minutes); the template leaves it unset.
		return []string{"ATLASSIAN_API_URL", "ATLASSIAN_AUTH_URL", "EXPORT_LEASE_SECONDS", "RUN_HISTORY_DAYS"}
	case Dispatch:
		// DISPATCH_GUARD_SECONDS: tests shorten the dispatch guard (default 45 s); the template leaves it unset.
		return []string{"ATLASSIAN_POINTS_PER_HOUR", "DISPATCH_GUARD_SECONDS"}
	case Purge:
		return []string{"ERASURE_SETTLE_SECONDS"}
	}
	return nil
}

// Load reads fn's configuration; every missing required variable is named in the error.
func Load(fn Function) (*Config, error) {
	required := Required(fn)
	if required == nil {
		return nil, fmt.Errorf("config: unknown function %q", fn)
	}
	return load(required)
}

// FromEnv reads the configuration with the variables every function required before each got its own set
// (table, data key, token key, client id and secret), for code not yet moved to Load. Prefer Load with the
// function's name.
func FromEnv() (*Config, error) {
	return load([]string{"ATLASSIAN_CLIENT_ID", "ATLASSIAN_CLIENT_SECRET_ARN", "KMS_KEY_ID", "TABLE_NAME", "TOKEN_KEY_ID"})
}

func load(required []string) (*Config, error) {
	c := &Config{
		Table:           os.Getenv("TABLE_NAME"),
		KeyID:           os.Getenv("KMS_KEY_ID"),
		TokenKeyID:      os.Getenv("TOKEN_KEY_ID"),
		AccountKeyID:    os.Getenv("ACCOUNT_KEY_ID"),
		Bucket:          os.Getenv("BUCKET_NAME"),
		ClientID:        os.Getenv("ATLASSIAN_CLIENT_ID"),
		ClientSecretARN: os.Getenv("ATLASSIAN_CLIENT_SECRET_ARN"),
		AuthURL:         strings.TrimRight(or(os.Getenv("ATLASSIAN_AUTH_URL"), "https://auth.atlassian.com"), "/"),
		APIURL:          strings.TrimRight(or(os.Getenv("ATLASSIAN_API_URL"), "https://api.atlassian.com"), "/"),
		PublicBaseURL:   strings.TrimRight(os.Getenv("PUBLIC_BASE_URL"), "/"),
		ExportFunction:  os.Getenv("EXPORT_FUNCTION_NAME"),
	}
	if d := os.Getenv("RUN_HISTORY_DAYS"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("RUN_HISTORY_DAYS %q is not a number of days", d)
		}
		c.RunHistory = time.Duration(n) * 24 * time.Hour
	}
	if d := os.Getenv("ERASURE_SETTLE_SECONDS"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("ERASURE_SETTLE_SECONDS %q is not a number of seconds", d)
		}
		c.ErasureSettle = time.Duration(n) * time.Second
		if n == 0 {
			c.ErasureSettle = -1 // erasure.Config: negative means no wait
		}
	}
	c.PointsPerHour = DefaultPointsPerHour
	if d := os.Getenv("ATLASSIAN_POINTS_PER_HOUR"); d != "" {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("ATLASSIAN_POINTS_PER_HOUR %q is not a positive number of points", d)
		}
		c.PointsPerHour = n
	}
	if d := os.Getenv("DISPATCH_GUARD_SECONDS"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("DISPATCH_GUARD_SECONDS %q is not a positive number of seconds", d)
		}
		c.DispatchGuard = time.Duration(n) * time.Second
	}
	if d := os.Getenv("REVOKED_GRANT_DAYS"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("REVOKED_GRANT_DAYS %q is not a number of days", d)
		}
		c.RevokedGrants = time.Duration(n) * 24 * time.Hour
	}
	var missing []string
	for _, name := range required {
		if os.Getenv(name) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing environment: %s", strings.Join(missing, ", "))
	}
	return c, nil
}

// OAuth2 returns the Atlassian OAuth 2.0 (3LO) client configuration, on Endpoint(c.AuthURL).
func (c *Config) OAuth2(clientSecret string) *oauth2.Config {
	return &oauth2.Config{ClientID: c.ClientID, ClientSecret: clientSecret, Endpoint: Endpoint(c.AuthURL)}
}

// Endpoint is Atlassian's OAuth endpoint under authURL (ATLASSIAN_AUTH_URL), the one place it is built. Client
// credentials go in the request body (AuthStyleInParams): Atlassian reads them there, and auto-detection would
// retry a failed exchange with the same single-use code or rotating refresh token.
func Endpoint(authURL string) oauth2.Endpoint {
	authURL = strings.TrimRight(authURL, "/")
	return oauth2.Endpoint{
		AuthURL: authURL + "/authorize", TokenURL: authURL + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams,
	}
}

// ClientSecret reads the Atlassian client secret.
func ClientSecret(ctx context.Context, sm *secretsmanager.Client, arn string) (string, error) {
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

// Logger returns the redacting JSON logger at the level Lambda's logging configuration sets
// (AWS_LAMBDA_LOG_LEVEL, or LOG_LEVEL outside Lambda).
func Logger() *slog.Logger {
	return logging.New(os.Stdout, logging.ParseLevel(or(os.Getenv("AWS_LAMBDA_LOG_LEVEL"), os.Getenv("LOG_LEVEL"))))
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
