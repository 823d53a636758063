package connectors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/connections"
)

// The dispatcher's side of the store. Its reads start from the sparse "due" index, which is eventually
// consistent and projects keys only: the index says where to look, and every decision is taken on the items
// themselves, read strongly consistently, and made safe by conditional writes. Two overlapping ticks therefore
// read the same candidates but only one of them wins each write.

// DispatchGuard is how long a run that was handed to an export invocation is left alone by other dispatchers:
// ticks overlap (a retried tick, a slow one) and the API invokes the export of a run it starts, so without it one
// run would be invoked once per overlapping tick. A run whose invocation was lost is picked up again after it.
// It covers an async event's way to a running export (queueing, a cold start) until the export holds the run's
// lease, which then guards the run; WithDispatchGuard changes it (the dispatcher's DISPATCH_GUARD_SECONDS).
const DispatchGuard = 45 * time.Second

// WithDispatchGuard sets the store's dispatch guard (DispatchGuard when d <= 0): tests that crash exports on
// purpose shorten it with the lease, so the dispatcher resumes a crashed run within seconds.
func WithDispatchGuard(d time.Duration) Option { return func(s *Store) { s.guard = d } }

// DispatchGuard is the store's dispatch guard.
func (st *Store) DispatchGuard() time.Duration {
	if st.guard <= 0 {
		return DispatchGuard
	}
	return st.guard
}

// ErrNotDue: the connector is no longer due (another tick started its run or moved its schedule, a user edited,
// disabled or deleted it).
var ErrNotDue = errors.New("connector is not due")

// ErrNotDispatchable: the run is not (or no longer) waiting for an invocation: it finished, is leased, may not
// resume yet, or was handed to an invocation within the dispatch guard.
var ErrNotDispatchable = errors.New("run is not waiting for an invocation")

// Work is what one dispatcher tick may act on, as read from the items (not the index).
type Work struct {
	// Due are the enabled connectors whose next run is due, most overdue first.
	Due []DueConnector
	// Active are the unfinished runs, oldest first.
	Active []ActiveRun
	// Reads counts the DynamoDB requests the read took (for the dispatcher's figures).
	Reads int
}

// DueConnector is a due connector and the status of its connection.
type DueConnector struct {
	Connector  *Connector
	Connection connections.Status // "" when the connection item is gone
}

// ActiveRun is an unfinished run, its connector (nil when deleted) and the status of its connection.
type ActiveRun struct {
	Run        *Run
	Connector  *Connector
	Connection connections.Status
}

// WorkLimits bound one read.
type WorkLimits struct {
	Due    int // connectors read from the DUE partition
	Active int // runs read from the ACTIVE partition
}

// dueBound is the highest due-index sort key of a connector due at or before now: keys are
// "<RFC 3339 second>Z#conn#id" and '$' sorts right after '#'.
func dueBound(now time.Time) string { return now.UTC().Format(time.RFC3339) + "$" }

// Work reads the dispatcher's candidates: the index partitions DUE (up to now) and ACTIVE, then the items they
// name (connectors, runs and connections) in batched, strongly consistent reads.
func (st *Store) Work(ctx context.Context, now time.Time, lim WorkLimits) (*Work, error) {
	w := &Work{}
	dueKeys, n, err := st.indexKeys(ctx, DueGSIPK, dueBound(now), lim.Due)
	w.Reads += n
	if err != nil {
		return nil, err
	}
	activeKeys, n, err := st.indexKeys(ctx, ActiveGSIPK, "", lim.Active)
	w.Reads += n
	if err != nil {
		return nil, err
	}

	// Everything the decisions need, in one batched read: due connectors, active runs, the connectors of those
	// runs (their site, for quota pauses) and every connection involved.
	want := newKeySet()
	for _, k := range dueKeys {
		want.add(k.pk, k.sk)
		want.add(k.pk, connections.MetaSK)
	}
	for _, k := range activeKeys {
		connectorID, _, ok := splitRunSK(k.sk)
		if !ok {
			continue
		}
		want.add(k.pk, k.sk)
		want.add(k.pk, connectorSK(connectorID))
		want.add(k.pk, connections.MetaSK)
	}
	items, n, err := st.batchGet(ctx, want.keys)
	w.Reads += n
	if err != nil {
		return nil, err
	}
	status := func(pk string) connections.Status {
		it := items[pk+"\x00"+connections.MetaSK]
		if v, ok := it["status"].(*types.AttributeValueMemberS); ok {
			return connections.Status(v.Value)
		}
		return ""
	}
	connector := func(pk, sk string) (*Connector, error) {
		av := items[pk+"\x00"+sk]
		if av == nil {
			return nil, nil
		}
		var it connectorItem
		if err := attributevalue.UnmarshalMap(av, &it); err != nil {
			return nil, fmt.Errorf("decode connector: %w", err)
		}
		return it.connector(), nil
	}
	for _, k := range dueKeys {
		c, err := connector(k.pk, k.sk)
		if err != nil {
			return nil, err
		}
		// The index lags the items: a connector deleted, disabled or already moved on is not due.
		if c == nil || !c.Enabled || c.NextRunAt == nil || c.NextRunAt.After(now) {
			continue
		}
		w.Due = append(w.Due, DueConnector{Connector: c, Connection: status(k.pk)})
	}
	for _, k := range activeKeys {
		it, err := decodeRun(items[k.pk+"\x00"+k.sk])
		if err != nil {
			return nil, err
		}
		if it == nil || !it.Status.Active() {
			continue
		}
		c, err := connector(k.pk, connectorSK(it.ConnectorID))
		if err != nil {
			return nil, err
		}
		w.Active = append(w.Active, ActiveRun{Run: it.run(), Connector: c, Connection: status(k.pk)})
	}
	return w, nil
}

type itemKey struct{ pk, sk string }

// indexKeys reads up to limit table keys of one partition of the due index, in sort order, with sort keys up to
// bound (when not empty).
func (st *Store) indexKeys(ctx context.Context, partition, bound string, limit int) ([]itemKey, int, error) {
	in := &dynamodb.QueryInput{
		TableName: &st.table, IndexName: aws.String("due"),
		KeyConditionExpression:    aws.String("gsi1pk = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": s(partition)},
	}
	if bound != "" {
		in.KeyConditionExpression = aws.String("gsi1pk = :p AND gsi1sk <= :b")
		in.ExpressionAttributeValues[":b"] = s(bound)
	}
	var out []itemKey
	reads := 0
	for limit > 0 && len(out) < limit {
		in.Limit = aws.Int32(int32(min(limit-len(out), 1000))) //nolint:gosec // bounded by 1000 just above
		res, err := st.db.Query(ctx, in)
		reads++
		if err != nil {
			return nil, reads, fmt.Errorf("query %s index: %w", partition, err)
		}
		for _, it := range res.Items {
			pk, _ := it["pk"].(*types.AttributeValueMemberS)
			sk, _ := it["sk"].(*types.AttributeValueMemberS)
			if pk != nil && sk != nil {
				out = append(out, itemKey{pk.Value, sk.Value})
			}
		}
		if len(res.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
	return out, reads, nil
}

// splitRunSK parses RUN#<connectorId>#<runId>.
func splitRunSK(sk string) (connectorID, runID string, ok bool) {
	rest, ok := strings.CutPrefix(sk, "RUN#")
	if !ok {
		return "", "", false
	}
	connectorID, runID, ok = strings.Cut(rest, "#")
	return connectorID, runID, ok && connectorID != "" && runID != ""
}

type keySet struct {
	seen map[string]bool
	keys []itemKey
}

func newKeySet() *keySet { return &keySet{seen: map[string]bool{}} }

func (k *keySet) add(pk, sk string) {
	if id := pk + "\x00" + sk; !k.seen[id] {
		k.seen[id] = true
		k.keys = append(k.keys, itemKey{pk, sk})
	}
}

// batchGet reads items strongly consistently, 100 keys a request (BatchGetItem's limit), re-asking for the keys
// DynamoDB leaves unprocessed. Items are returned by pk + "\x00" + sk; missing items are absent.
func (st *Store) batchGet(ctx context.Context, keys []itemKey) (map[string]map[string]types.AttributeValue, int, error) {
	out := make(map[string]map[string]types.AttributeValue, len(keys))
	reads := 0
	for i := 0; i < len(keys); i += 100 {
		chunk := keys[i:min(i+100, len(keys))]
		req := make([]map[string]types.AttributeValue, len(chunk))
		for j, k := range chunk {
			req[j] = st.key(k.pk, k.sk)
		}
		pending := map[string]types.KeysAndAttributes{st.table: {Keys: req, ConsistentRead: aws.Bool(true)}}
		for try := 0; len(pending) > 0; try++ {
			if try == 8 {
				return nil, reads, errors.New("batch read: unprocessed keys remain")
			}
			if try > 0 {
				// Unprocessed keys mean throttling: back off before asking again, as DynamoDB advises.
				select {
				case <-ctx.Done():
					return nil, reads, ctx.Err()
				case <-time.After(time.Duration(25<<try) * time.Millisecond):
				}
			}
			res, err := st.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
			reads++
			if err != nil {
				return nil, reads, fmt.Errorf("batch read: %w", err)
			}
			for _, it := range res.Responses[st.table] {
				pk, _ := it["pk"].(*types.AttributeValueMemberS)
				sk, _ := it["sk"].(*types.AttributeValueMemberS)
				if pk != nil && sk != nil {
					out[pk.Value+"\x00"+sk.Value] = it
				}
			}
			pending = res.UnprocessedKeys
		}
	}
	return out, reads, nil
}

// StartScheduledRun creates run runID of the due connector c (trigger schedule) and moves its next run to next,
// in one transaction that also bumps the connector's version (its ETag changes). It succeeds only if the
// connector is still exactly as read (version c.Version: not edited, not started by another tick), has no active
// run, and its connection is active; otherwise it fails with ErrNotDue, ErrActiveRun or ErrNotActive and writes
// nothing. dispatch marks the run as handed to an invocation now (the caller invokes the export right after),
// with allowance as its points allowance (0: none set).
func (st *Store) StartScheduledRun(ctx context.Context, c *Connector, runID string, next time.Time, dispatch bool, allowance int64) (*Run, error) {
	now := st.now().UTC()
	connID := c.ConnectionID
	it := runItem{
		PK: connPK(connID), SK: runSK(c.ID, runID), Type: ItemTypeRun, V: 1, ID: runID, ConnectorID: c.ID, ConnID: connID,
		Status: RunQueued, Phase: "queued", Trigger: TriggerSchedule, Errors: []RunError{},
		CreatedAt: fmtTime(now), UpdatedAt: fmtTime(now),
		GSI1PK: ActiveGSIPK, GSI1SK: fmtTime(now) + "#" + connID + "#" + runID,
	}
	if dispatch {
		it.DispatchedAt, it.Allowance = now.UnixMilli(), allowance
	}
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return nil, fmt.Errorf("encode run: %w", err)
	}
	summary, err := attributevalue.Marshal(summaryItem{ID: runID, Status: RunQueued, CreatedAt: it.CreatedAt})
	if err != nil {
		return nil, fmt.Errorf("encode run: %w", err)
	}
	upd, vals := st.advanceExpr(c, next)
	vals[":run"], vals[":summary"] = s(runID), summary
	_, err = st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName: &st.table, Key: st.key(connPK(connID), connectorSK(c.ID)),
			UpdateExpression:                    aws.String(upd + ", activeRun = :run, lastRun = :summary"),
			ConditionExpression:                 aws.String("v = :v AND enabled = :t AND attribute_not_exists(activeRun)"),
			ExpressionAttributeValues:           vals,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
		{Put: &types.Put{TableName: &st.table, Item: av, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
		st.connectionIsActiveItem(connID),
	}})
	if err != nil {
		r := cancelled(err)
		switch {
		case condFailedAt(r, 0):
			if old := r[0].Item; old != nil {
				if _, has := old["activeRun"]; has {
					if v, _ := old["v"].(*types.AttributeValueMemberN); v != nil && v.Value == vals[":v"].(*types.AttributeValueMemberN).Value {
						return nil, ErrActiveRun
					}
				}
			}
			return nil, ErrNotDue
		case condFailedAt(r, 2):
			return nil, ErrNotActive
		case conflicted(r):
			// Another tick wrote the connector at the same moment; it decides.
			return nil, ErrNotDue
		}
		return nil, fmt.Errorf("start scheduled run: %w", err)
	}
	return it.run(), nil
}

// AdvanceSchedule moves the due connector c's next run to next without starting one (its previous run is still
// active, or its connection cannot run anything now: a missed occurrence is skipped, not queued). It bumps the
// version and fails with ErrNotDue when c changed since it was read.
func (st *Store) AdvanceSchedule(ctx context.Context, c *Connector, next time.Time) error {
	upd, vals := st.advanceExpr(c, next)
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &st.table, Key: st.key(connPK(c.ConnectionID), connectorSK(c.ID)),
		UpdateExpression:          aws.String(upd),
		ConditionExpression:       aws.String("v = :v AND enabled = :t"),
		ExpressionAttributeValues: vals,
	})
	if isCondFailed(err) {
		return ErrNotDue
	}
	if err != nil {
		return fmt.Errorf("advance schedule: %w", err)
	}
	return nil
}

// advanceExpr is the update that moves c's next run to next (or off the index when next is zero: a schedule
// with no further occurrence) and bumps its version, conditional on version c.Version (":v").
func (st *Store) advanceExpr(c *Connector, next time.Time) (string, map[string]types.AttributeValue) {
	vals := map[string]types.AttributeValue{":v": n(c.Version), ":one": n(1), ":t": &types.AttributeValueMemberBOOL{Value: true}}
	if next.IsZero() {
		return "REMOVE nextRunAt, gsi1pk, gsi1sk SET v = v + :one", vals
	}
	vals[":next"], vals[":due"], vals[":duekey"] = s(fmtTime(next)), s(DueGSIPK), s(dueKey(next, c.ConnectionID, c.ID))
	return "SET nextRunAt = :next, gsi1pk = :due, gsi1sk = :duekey, v = v + :one", vals
}

// ClaimDispatch marks an active run as handed to an export invocation now, with allowance as its points allowance
// (0: none). It succeeds only for a run waiting for one: queued, paused with its ResumeAfter come, or running
// under an expired lease (a crashed export), and not handed to an invocation within the dispatch guard. So of
// overlapping dispatchers exactly one invokes the export of a run. Otherwise it fails with ErrNotDispatchable (or
// ErrNotFound).
func (st *Store) ClaimDispatch(ctx context.Context, ref RunRef, allowance int64) error {
	now := st.now().UTC()
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &st.table, Key: st.runKey(ref),
		UpdateExpression: aws.String("SET dispatchedAt = :nowms, allowance = :allow, v = v + :one"),
		ConditionExpression: aws.String("attribute_exists(pk) AND (" +
			"#st = :queued OR " +
			"(#st = :paused AND (attribute_not_exists(resumeAfter) OR resumeAfter <= :nowms)) OR " +
			"(#st = :running AND (attribute_not_exists(leaseUntil) OR leaseUntil < :nowms))" +
			") AND (attribute_not_exists(dispatchedAt) OR dispatchedAt <= :guard)"),
		ExpressionAttributeNames: map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":queued": s(string(RunQueued)), ":paused": s(string(RunPaused)), ":running": s(string(RunRunning)),
			":nowms": ms(now), ":guard": ms(now.Add(-st.DispatchGuard())), ":allow": n(allowance), ":one": n(1),
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		var cf *types.ConditionalCheckFailedException
		if errors.As(err, &cf) {
			if cf.Item == nil {
				return ErrNotFound
			}
			return ErrNotDispatchable
		}
		return fmt.Errorf("claim run dispatch: %w", err)
	}
	return nil
}

// Dispatchable reports whether run r waits for an export invocation at now: queued, paused with its ResumeAfter
// come, or running under an expired lease, and not handed to an invocation within guard (the store's
// DispatchGuard). ClaimDispatch applies the same rule atomically; this is its read-side twin, so a tick spends no
// write on runs that are busy.
func (r *Run) Dispatchable(now time.Time, guard time.Duration) bool {
	if r.DispatchedAt != nil && r.DispatchedAt.After(now.Add(-guard)) {
		return false
	}
	switch r.Status {
	case RunQueued:
		return true
	case RunPaused:
		return r.ResumeAfter == nil || !r.ResumeAfter.After(now)
	case RunRunning:
		return r.LeaseUntil == nil || r.LeaseUntil.Before(now)
	}
	return false
}
