// Package awsconfig loads the AWS SDK configuration once per process, the same way in every function.
//
// Endpoints for local emulators come only from the SDK's own AWS_ENDPOINT_URL_<SERVICE> variables, so no code
// path differs between AWS and the local stack; S3 path-style addressing is the one explicit option.
package awsconfig

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Load returns the default configuration with a bounded HTTP timeout on every AWS call and the SDK's standard
// retryer (exponential backoff with jitter, for retryable errors only).
func Load(ctx context.Context) (aws.Config, error) {
	httpClient := awshttp.NewBuildableClient().WithTimeout(15 * time.Second)
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithHTTPClient(httpClient),
		config.WithRetryMaxAttempts(4),
	)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS config: %w", err)
	}
	return cfg, nil
}

// S3PathStyle returns an option that turns on path-style addressing, which loopback endpoints need (they have
// no per-bucket host names). Tools and tests that always talk to the local stack pass true; functions use NewS3.
func S3PathStyle(enabled bool) func(*s3.Options) {
	return func(o *s3.Options) { o.UsePathStyle = enabled }
}

// NewS3 returns the S3 client every function uses: path-style addressing when S3_USE_PATH_STYLE is "true" (the
// local stack sets it, stacktest passes it on to the functions it runs; AWS never needs it).
func NewS3(cfg aws.Config) *s3.Client {
	return s3.NewFromConfig(cfg, S3PathStyle(os.Getenv("S3_USE_PATH_STYLE") == "true"))
}
