// Command export is a placeholder so the template's function builds while the function is written; it fails every
// invocation.
package main

import (
	"context"
	"errors"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(context.Context, map[string]any) error { return errors.New("not implemented yet") })
}
