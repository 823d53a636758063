package ratebudget

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/backoff"
)

// Item layout in the single table (README "Rate budget"):
//
//	pk CONN#<connId>  sk POINTS#<yyyymmddhh>   points (N, atomic ADD), ttl
//	pk APP            sk POINTS#<yyyymmddhh>   points (N, atomic ADD), ttl, connId "APP"
//	pk APP            sk PAUSE#global          until (epoch ms), reason, ttl, connId "APP"
//	pk APP            sk PAUSE#site#<cloudId>  until, reason, cloudId, ttl, connId (of the run that saw the 429)
const (
	appPK       = "APP"
	pointsSK    = "POINTS#"
	hourLayout  = "2006010215"
	appConnID   = "APP" // connId of app-wide items: they belong to no connection, so erasure never matches them
	itemPoints  = "points_hour"
	pointsKeep  = 48 * time.Hour // counters outlive their hour by two days, for operators
	batchGetMax = 100
)

// HourKey is the sort key of the points counter for the UTC hour containing at: POINTS#yyyymmddhh.
func HourKey(at time.Time) string { return pointsSK + Hour(at).Format(hourLayout) }

func connPK(connID string) string { return "CONN#" + connID }

// Option tunes a Ledger or Pauses.
type Option func(*options)

type options struct{ now func() time.Time }

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

func newOptions(opts []Option) options {
	o := options{now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Ledger records points spent per connection and per app per UTC hour, for the dispatcher's admission.
type Ledger struct {
	db    *dynamodb.Client
	table string
	now   func() time.Time
}

// NewLedger returns a Ledger on table.
func NewLedger(db *dynamodb.Client, table string, opts ...Option) *Ledger {
	o := newOptions(opts)
	return &Ledger{db: db, table: table, now: o.now}
}

// Record adds points spent by connection connID in the UTC hour containing at, to the connection's and the
// app's counters. Each is one atomic ADD; they are two writes, not a transaction, because every export of the
// app adds to the same APP item and concurrent transactions on one item cancel each other. SDK retries of a
// write whose answer was lost may count twice: an overcount only makes admission more careful.
func (l *Ledger) Record(ctx context.Context, connID string, at time.Time, points int64) error {
	if points <= 0 {
		return nil
	}
	if connID == "" {
		return errors.New("ratebudget: record points: empty connection id")
	}
	hour := Hour(at)
	sk := HourKey(hour)
	ttl := strconv.FormatInt(hour.Add(time.Hour+pointsKeep).Unix(), 10)
	add := func(pk, owner string) error {
		in := &dynamodb.UpdateItemInput{
			TableName:        aws.String(l.table),
			Key:              key(pk, sk),
			UpdateExpression: aws.String("ADD #p :p SET #ttl = :ttl, #type = :type, #hour = :hour"),
			ExpressionAttributeNames: map[string]string{
				"#p": "points", "#ttl": "ttl", "#type": "type", "#hour": "hour",
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":p":    num(points),
				":ttl":  &types.AttributeValueMemberN{Value: ttl},
				":type": &types.AttributeValueMemberS{Value: itemPoints},
				":hour": &types.AttributeValueMemberS{Value: hour.Format(time.RFC3339)},
			},
		}
		if owner != "" {
			*in.UpdateExpression += ", #conn = :conn"
			in.ExpressionAttributeNames["#conn"] = "connId"
			in.ExpressionAttributeValues[":conn"] = &types.AttributeValueMemberS{Value: owner}
		}
		_, err := l.db.UpdateItem(ctx, in)
		return err
	}
	if err := add(connPK(connID), ""); err != nil {
		return fmt.Errorf("ratebudget: record %d points for %s: %w", points, connID, err)
	}
	if err := add(appPK, appConnID); err != nil {
		return fmt.Errorf("ratebudget: record %d app points: %w", points, err)
	}
	return nil
}

// Flush records what t has pending (call it at checkpoints, not per request). What was recorded leaves t's
// pending points; on error the rest stays pending for the next Flush. t.Points() is unaffected: it is the run's
// counter.
func (l *Ledger) Flush(ctx context.Context, connID string, t *Tally) error {
	t.flushing.Lock()
	defer t.flushing.Unlock()
	for h, p := range t.snapshot() {
		if err := l.Record(ctx, connID, h, p); err != nil {
			return err
		}
		t.settle(h, p)
	}
	return nil
}

// Usage is the points spent in one UTC hour.
type Usage struct {
	Hour time.Time
	// App is the app-wide total (all connections, the connectors API included).
	App int64
	// ByConnection holds each asked connection's total (zero when it spent nothing).
	ByConnection map[string]int64
}

// Usage reads the points spent in the UTC hour containing at, app-wide and for each of connIDs.
func (l *Ledger) Usage(ctx context.Context, at time.Time, connIDs ...string) (Usage, error) {
	sk := HourKey(at)
	u := Usage{Hour: Hour(at), ByConnection: make(map[string]int64, len(connIDs))}
	keys := []map[string]types.AttributeValue{key(appPK, sk)}
	seen := map[string]bool{}
	for _, c := range connIDs {
		u.ByConnection[c] = 0
		if !seen[c] {
			seen[c] = true
			keys = append(keys, key(connPK(c), sk))
		}
	}
	for start := 0; start < len(keys); start += batchGetMax {
		pending := map[string]types.KeysAndAttributes{l.table: {
			Keys:                 keys[start:min(start+batchGetMax, len(keys))],
			ProjectionExpression: aws.String("pk, points"),
			ConsistentRead:       aws.Bool(true),
		}}
		for attempt := 0; len(pending) > 0; attempt++ {
			out, err := l.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
			if err != nil {
				return Usage{}, fmt.Errorf("ratebudget: read points: %w", err)
			}
			for _, it := range out.Responses[l.table] {
				pk, _ := it["pk"].(*types.AttributeValueMemberS)
				p := numOf(it["points"])
				switch {
				case pk == nil:
				case pk.Value == appPK:
					u.App = p
				default:
					u.ByConnection[pk.Value[len("CONN#"):]] = p
				}
			}
			pending = out.UnprocessedKeys
			if len(pending) > 0 {
				if err := unprocessedWait(ctx, attempt); err != nil {
					return Usage{}, fmt.Errorf("ratebudget: read points: %w", err)
				}
			}
		}
	}
	return u, nil
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk},
		"sk": &types.AttributeValueMemberS{Value: sk},
	}
}

func num(n int64) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func numOf(av types.AttributeValue) int64 {
	n, ok := av.(*types.AttributeValueMemberN)
	if !ok {
		return 0
	}
	v, _ := strconv.ParseInt(n.Value, 10, 64)
	return v
}

// unprocessedWait spaces re-reads of keys DynamoDB left unprocessed (throttling), as AWS advises.
func unprocessedWait(ctx context.Context, attempt int) error {
	p := backoff.Policy{Base: 50 * time.Millisecond, Max: time.Second, Retries: 8}
	if !p.Allows(attempt) {
		return errors.New("keys left unprocessed after retries")
	}
	return p.Wait(ctx, attempt, 0)
}
