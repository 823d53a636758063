package connectors

import (
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/table"
)

// WithRunHistory keeps a run d after it reaches a final status: the final-status write sets its `ttl`, and
// DynamoDB deletes it after that (within a few days; reads do not filter expired runs, they are history). Zero keeps
// runs for as long as their connector (the default).
func WithRunHistory(d time.Duration) Option { return func(s *Store) { s.history = d } }

// withRunTTL adds `ttl` to the SET clause of a transaction item that finishes a run.
func (st *Store) withRunTTL(it types.TransactWriteItem) types.TransactWriteItem {
	u := it.Update
	if st.history <= 0 || u == nil || u.UpdateExpression == nil {
		return it
	}
	expr := strings.Replace(*u.UpdateExpression, "SET ", "SET #ttl = :ttl, ", 1)
	u.UpdateExpression = &expr
	if u.ExpressionAttributeNames == nil {
		u.ExpressionAttributeNames = map[string]string{}
	}
	u.ExpressionAttributeNames["#ttl"] = "ttl"
	u.ExpressionAttributeValues[":ttl"] = table.TTLValue(st.now().Add(st.history))
	return it
}
