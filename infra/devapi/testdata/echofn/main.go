// Command echofn is a test function for the local HTTP router: it answers with what API Gateway sent it, so
// tests can check the event the router builds and the response it relays.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

func handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	slog.New(lambdacontext.NewLogHandler()).InfoContext(ctx, "echo", "route", ev.RouteKey, "env", os.Getenv("ECHO_ENV"))
	switch ev.RawPath {
	case "/fail":
		return events.APIGatewayV2HTTPResponse{}, errors.New("asked to fail")
	case "/v1/b64":
		return events.APIGatewayV2HTTPResponse{StatusCode: 200, Headers: map[string]string{"Content-Type": "application/octet-stream"},
			Body: "AAEC", IsBase64Encoded: true}, nil
	}
	b, err := json.Marshal(map[string]any{
		"routeKey": ev.RouteKey, "rawPath": ev.RawPath, "query": ev.QueryStringParameters,
		"pathParameters": ev.PathParameters, "cookies": ev.Cookies, "body": ev.Body,
		"isBase64Encoded": ev.IsBase64Encoded, "method": ev.RequestContext.HTTP.Method,
		"header": ev.Headers["x-test"], "env": os.Getenv("ECHO_ENV"),
	})
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	return events.APIGatewayV2HTTPResponse{
		StatusCode: 201,
		Headers:    map[string]string{"Content-Type": "application/json", "X-Echo": "yes"},
		Cookies:    []string{"a=1; Path=/", "b=2; Path=/"},
		Body:       string(b),
	}, nil
}

func main() {
	lambda.Start(handle)
}
