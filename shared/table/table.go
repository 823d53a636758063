// Package table owns the single DynamoDB table: its key scheme (every partition and sort key the stores use,
// README "DynamoDB single table"), its attribute names, and what every store needs to use it: the client, the
// table's name and a clock (Table), value and time helpers, and the classification of failed conditional writes
// and cancelled transactions.
//
// Expressions are written as DynamoDB expression strings with named values built by S, N, Bool and Millis. The
// expression builder (feature/dynamodb/expression) was considered: it would rewrite every condition the stores
// test and reason about into generated placeholders, for no change in what is stored, so the strings stay.
package table

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/backoff"
)

// Client is what the stores ask of DynamoDB (*dynamodb.Client has it).
type Client interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

var _ Client = (*dynamodb.Client)(nil)

// Table is the single table as a store sees it.
type Table struct {
	db   Client
	name string
	now  func() time.Time
}

// Option tunes a Table.
type Option func(*Table)

// WithClock sets the clock that stamps items and checks expiries (tests).
func WithClock(now func() time.Time) Option { return func(t *Table) { t.now = now } }

// New returns the table name on db.
func New(db Client, name string, opts ...Option) *Table {
	t := &Table{db: db, name: name, now: time.Now}
	for _, o := range opts {
		o(t)
	}
	return t
}

// DB is the client.
func (t *Table) DB() Client { return t.db }

// Name is the table's name.
func (t *Table) Name() string { return t.name }

// TableName is the table's name for a request's TableName.
func (t *Table) TableName() *string { return aws.String(t.name) }

// Now is the table's clock.
func (t *Table) Now() time.Time { return t.now() }

// Get reads the item pk/sk with a strongly consistent read into out (attributevalue tags). It reports false,
// leaving out alone, when there is no such item.
func (t *Table) Get(ctx context.Context, pk, sk string, out any) (bool, error) {
	res, err := t.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: t.TableName(), Key: Key(pk, sk), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return false, err
	}
	if res.Item == nil {
		return false, nil
	}
	if err := attributevalue.UnmarshalMap(res.Item, out); err != nil {
		return false, fmt.Errorf("decode %s: %w", sk, err)
	}
	return true, nil
}

// PrefixQuery is a strongly consistent query of the items of partition pk whose sort key begins with prefix.
func (t *Table) PrefixQuery(pk, prefix string) *dynamodb.QueryInput {
	return &dynamodb.QueryInput{
		TableName:                 t.TableName(),
		KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :prefix)"),
		ExpressionAttributeValues: Item{":pk": S(pk), ":prefix": S(prefix)},
		ConsistentRead:            aws.Bool(true),
	}
}

// EachPage runs the query in and calls fn with each page's items.
func (t *Table) EachPage(ctx context.Context, in *dynamodb.QueryInput, fn func([]Item) error) error {
	p := dynamodb.NewQueryPaginator(t.db, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		if err := fn(page.Items); err != nil {
			return err
		}
	}
	return nil
}

// Batch limits of DynamoDB.
const (
	batchGetMax   = 100
	batchWriteMax = 25
)

// unprocessedRetries spaces the re-sends of keys DynamoDB left unprocessed (throttling), with the exponential
// backoff AWS advises for batch operations.
func unprocessedRetries() backoff.Policy {
	return backoff.Policy{Base: 50 * time.Millisecond, Max: time.Second, Retries: 8}
}

// errUnprocessed: DynamoDB kept leaving items unprocessed through every retry.
var errUnprocessed = errors.New("items left unprocessed after retries")

// BatchGet reads keys with strongly consistent reads, projection ("" for whole items), in batches of 100, and
// calls fn with the items of each answer, in no particular order; missing items are left out.
func (t *Table) BatchGet(ctx context.Context, keys []Item, projection string, fn func([]Item) error) error {
	for start := 0; start < len(keys); start += batchGetMax {
		ka := types.KeysAndAttributes{Keys: keys[start:min(start+batchGetMax, len(keys))], ConsistentRead: aws.Bool(true)}
		if projection != "" {
			ka.ProjectionExpression = aws.String(projection)
		}
		pending := map[string]types.KeysAndAttributes{t.name: ka}
		for attempt := 0; len(pending) > 0; attempt++ {
			if attempt > 0 {
				if err := t.waitUnprocessed(ctx, attempt-1); err != nil {
					return err
				}
			}
			out, err := t.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
			if err != nil {
				return err
			}
			if err := fn(out.Responses[t.name]); err != nil {
				return err
			}
			pending = out.UnprocessedKeys
		}
	}
	return nil
}

// DeleteKeys deletes the items keys, in batches of 25. Deleting a missing item is not an error.
func (t *Table) DeleteKeys(ctx context.Context, keys []Item) error {
	for start := 0; start < len(keys); start += batchWriteMax {
		batch := keys[start:min(start+batchWriteMax, len(keys))]
		reqs := make([]types.WriteRequest, len(batch))
		for i, k := range batch {
			reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: k}}
		}
		for attempt := 0; len(reqs) > 0; attempt++ {
			if attempt > 0 {
				if err := t.waitUnprocessed(ctx, attempt-1); err != nil {
					return err
				}
			}
			out, err := t.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{t.name: reqs}})
			if err != nil {
				return err
			}
			reqs = out.UnprocessedItems[t.name]
		}
	}
	return nil
}

func (t *Table) waitUnprocessed(ctx context.Context, attempt int) error {
	p := unprocessedRetries()
	if !p.Allows(attempt) {
		return errUnprocessed
	}
	return p.Wait(ctx, attempt, 0)
}

// DeletePrefix deletes every item of partition pk whose sort key begins with prefix.
func (t *Table) DeletePrefix(ctx context.Context, pk, prefix string) error {
	in := t.PrefixQuery(pk, prefix)
	in.ProjectionExpression = aws.String("pk, sk")
	return t.EachPage(ctx, in, func(items []Item) error { return t.DeleteKeys(ctx, items) })
}
