package ratebudget

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/table"
)

// Item layout in the single table (README "Rate budget"):
//
//	pk CONN#<connId>  sk POINTS#<yyyymmddhh>   points (N, atomic ADD), ttl
//	pk APP            sk POINTS#<yyyymmddhh>   points (N, atomic ADD), ttl, connId "APP"
//	pk APP            sk PAUSE#global          until (epoch ms), reason, ttl, connId "APP"
//	pk APP            sk PAUSE#site#<cloudId>  until, reason, cloudId, ttl, connId (of the run that saw the 429)
const (
	appPK      = table.PKApp
	appConnID  = table.ConnIDApp // app-wide items belong to no connection, so erasure never matches them
	itemPoints = "points_hour"
	pointsKeep = 48 * time.Hour // counters outlive their hour by two days, for operators
)

// HourKey is the sort key of the points counter for the UTC hour containing at: POINTS#yyyymmddhh.
func HourKey(at time.Time) string { return table.PointsSK(at) }

// Ledger records points spent per connection and per app per UTC hour, for the dispatcher's admission.
type Ledger struct{ t *table.Table }

// NewLedger returns a Ledger on the table name (table.WithClock sets its clock, for tests).
func NewLedger(db table.Client, name string, opts ...table.Option) *Ledger {
	return &Ledger{t: table.New(db, name, opts...)}
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
	ttl := table.TTLValue(hour.Add(time.Hour + pointsKeep))
	add := func(pk, owner string) error {
		in := &dynamodb.UpdateItemInput{
			TableName:        l.t.TableName(),
			Key:              table.Key(pk, sk),
			UpdateExpression: aws.String("ADD #p :p SET #ttl = :ttl, #type = :type, #hour = :hour"),
			ExpressionAttributeNames: map[string]string{
				"#p": "points", "#ttl": "ttl", "#type": "type", "#hour": "hour",
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":p":    table.N(points),
				":ttl":  ttl,
				":type": table.S(itemPoints),
				":hour": table.S(hour.Format(time.RFC3339)),
			},
		}
		if owner != "" {
			*in.UpdateExpression += ", #conn = :conn"
			in.ExpressionAttributeNames["#conn"] = "connId"
			in.ExpressionAttributeValues[":conn"] = table.S(owner)
		}
		_, err := l.t.DB().UpdateItem(ctx, in)
		return err
	}
	if err := add(table.ConnPK(connID), ""); err != nil {
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
	keys := []table.Item{table.Key(appPK, sk)}
	seen := map[string]bool{}
	for _, c := range connIDs {
		u.ByConnection[c] = 0
		if !seen[c] {
			seen[c] = true
			keys = append(keys, table.Key(table.ConnPK(c), sk))
		}
	}
	err := l.t.BatchGet(ctx, keys, "pk, points", func(items []table.Item) error {
		for _, it := range items {
			pk, p := table.StringOf(it["pk"]), table.IntOf(it["points"])
			if pk == appPK {
				u.App = p
			} else if connID, ok := table.ParseConnPK(pk); ok {
				u.ByConnection[connID] = p
			}
		}
		return nil
	})
	if err != nil {
		return Usage{}, fmt.Errorf("ratebudget: read points: %w", err)
	}
	return u, nil
}
