package connectors

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/connections"
	"jiraexport/shared/table"
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

// DueIndexKeys are the index keys (gsi1pk, gsi1sk) of connector id of connection connID next due at next: for
// tools that seed items in bulk (the dispatcher benchmark), so the key scheme stays defined here.
func DueIndexKeys(next time.Time, connID, id string) (gsi1pk, gsi1sk string) {
	return table.DuePKOf(id), dueKey(next, connID, id)
}

// partitions are the index partitions one read covers: every shard, then the unsharded value, which holds only
// items written before the index was sharded (each moves to its shard at its next write).
func partitions(name func(int) string, legacy string) []string {
	out := make([]string, 0, table.DueShards+1)
	for i := range table.DueShards {
		out = append(out, name(i))
	}
	return append(out, legacy)
}

// Work is what one dispatcher tick may act on. Due connectors are the index's keys only: the queue, in due
// order. The tick reads the items of those it is about to act on (DueConnectors), so a tick that can start a
// hundred runs out of ten thousand due reads a hundred connectors, not ten thousand.
type Work struct {
	// Due are the index entries of due connectors (up to now), most overdue first.
	Due []DueRef
	// Active are the unfinished runs, oldest first, as read from their items.
	Active []ActiveRun
	// Connections has the status and sites of every connection of Due and Active (absent: the item is gone).
	Connections map[string]ConnectionInfo
	// Reads counts the DynamoDB requests the read took (for the dispatcher's figures).
	Reads int
}

// DueRef is one due connector as the index lists it (eventually consistent: the item decides).
type DueRef struct {
	ConnectionID, ConnectorID string
	// Key is its index sort key (due time first): its place in the queue.
	Key string
}

// ConnectionInfo is what the dispatcher needs of a connection: whether it may run, and its sites (for quota
// pauses).
type ConnectionInfo struct {
	Status connections.Status
	Sites  []string // cloud ids
}

// ActiveRun is an unfinished run, its connector (nil when deleted) and the status of its connection.
type ActiveRun struct {
	Run        *Run
	Connector  *Connector
	Connection connections.Status
}

// WorkLimits bound one read.
type WorkLimits struct {
	Due    int // due connectors read from the index (the most overdue, across shards)
	Active int // active runs read from the index (the oldest, across shards)
}

// dueBound is the highest due-index sort key of a connector due at or before now: keys are
// "<RFC 3339 second>Z#conn#id" and '$' sorts right after '#'.
func dueBound(now time.Time) string { return now.UTC().Format(time.RFC3339) + "$" }

// Work reads the dispatcher's candidates: the due entries (up to now) and active runs of every shard of the due
// index, then the active runs, their connectors and every connection involved in batched, strongly consistent
// reads.
func (st *Store) Work(ctx context.Context, now time.Time, lim WorkLimits) (*Work, error) {
	w := &Work{Connections: map[string]ConnectionInfo{}}
	var dueKeys, activeKeys []indexEntry
	var dueReads, activeReads int
	var dueErr, activeErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		dueKeys, dueReads, dueErr = st.mergedIndex(ctx, partitions(table.DuePK, table.GSIDueLegacy), dueBound(now), lim.Due)
	}()
	go func() {
		defer wg.Done()
		activeKeys, activeReads, activeErr = st.mergedIndex(ctx, partitions(table.ActivePK, table.GSIActiveLegacy), "", lim.Active)
	}()
	wg.Wait()
	w.Reads += dueReads + activeReads
	if err := errors.Join(dueErr, activeErr); err != nil {
		return nil, err
	}

	// Everything the decisions need, in one batched read: active runs, their connectors (their site, for quota
	// pauses) and every connection involved. Due connectors themselves are read later, only those acted on.
	want := newKeySet()
	for _, k := range dueKeys {
		connectorID, ok := strings.CutPrefix(k.sk, "CONNECTOR#")
		connID, isConn := strings.CutPrefix(k.pk, "CONN#")
		if !ok || !isConn {
			continue
		}
		w.Due = append(w.Due, DueRef{ConnectionID: connID, ConnectorID: connectorID, Key: k.gsk})
		want.add(k.pk, connections.MetaSK)
	}
	for _, k := range activeKeys {
		connectorID, _, ok := table.ParseRunSK(k.sk)
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
	for id, it := range items {
		pk, sk, _ := strings.Cut(id, "\x00")
		if sk != connections.MetaSK {
			continue
		}
		var meta struct {
			Status connections.Status `dynamodbav:"status"`
			Sites  []struct {
				CloudID string `dynamodbav:"cloudId"`
			} `dynamodbav:"sites"`
		}
		if err := attributevalue.UnmarshalMap(it, &meta); err != nil {
			return nil, fmt.Errorf("decode connection: %w", err)
		}
		info := ConnectionInfo{Status: meta.Status}
		for _, site := range meta.Sites {
			info.Sites = append(info.Sites, site.CloudID)
		}
		w.Connections[strings.TrimPrefix(pk, "CONN#")] = info
	}
	for _, k := range activeKeys {
		it, err := decodeRun(items[k.pk+"\x00"+k.sk])
		if err != nil {
			return nil, err
		}
		if it == nil || !it.Status.Active() {
			continue
		}
		c, err := decodeConnector(items[k.pk+"\x00"+connectorSK(it.ConnectorID)])
		if err != nil {
			return nil, err
		}
		w.Active = append(w.Active, ActiveRun{Run: it.run(), Connector: c, Connection: w.Connections[it.ConnID].Status})
	}
	return w, nil
}

// DueConnectors reads the connectors refs name, strongly consistently, and returns those still due at now by
// their items, by connector id. The index lags the items: a connector deleted, disabled or already moved on (by
// another tick, or a user's edit) is left out.
func (st *Store) DueConnectors(ctx context.Context, refs []DueRef, now time.Time) (map[string]*Connector, int, error) {
	want := newKeySet()
	for _, r := range refs {
		want.add(connPK(r.ConnectionID), connectorSK(r.ConnectorID))
	}
	items, reads, err := st.batchGet(ctx, want.keys)
	if err != nil {
		return nil, reads, err
	}
	out := make(map[string]*Connector, len(refs))
	for _, r := range refs {
		c, err := decodeConnector(items[connPK(r.ConnectionID)+"\x00"+connectorSK(r.ConnectorID)])
		if err != nil {
			return nil, reads, err
		}
		if c == nil || !c.Enabled || c.NextRunAt == nil || c.NextRunAt.After(now) {
			continue
		}
		out[c.ID] = c
	}
	return out, reads, nil
}

func decodeConnector(av map[string]types.AttributeValue) (*Connector, error) {
	if av == nil {
		return nil, nil
	}
	var it connectorItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return nil, fmt.Errorf("decode connector: %w", err)
	}
	return it.connector(), nil
}

type itemKey struct{ pk, sk string }

// indexEntry is one entry of the due index: the table keys and the index sort key.
type indexEntry struct{ pk, sk, gsk string }

// indexCursor is one partition's read position in a merged index read.
type indexCursor struct {
	partition string
	buf       []indexEntry // read, not yet merged
	last      string       // the last sort key read ("" before the first page)
	next      map[string]types.AttributeValue
	done      bool
}

// mergedIndex reads up to limit entries of the due index across parts, in sort key order (with sort keys up to
// bound, when not empty), as if they were one partition. It reads every partition's first page in parallel,
// sized for its share of limit, and then further pages only of the partitions that hold the merge back: an entry
// is final once every partition not yet exhausted has read past it. Shards hashed uniformly take about one page
// each, so the read costs about what one partition's would.
func (st *Store) mergedIndex(ctx context.Context, parts []string, bound string, limit int) ([]indexEntry, int, error) {
	if limit <= 0 {
		return nil, 0, nil
	}
	page := min(limit/len(parts)+limit/(4*len(parts))+16, 2000)
	curs := make([]*indexCursor, len(parts))
	for i, p := range parts {
		curs[i] = &indexCursor{partition: p}
	}
	var reads atomic.Int64
	fetch := func(cs []*indexCursor) error {
		errs := make([]error, len(cs))
		var wg sync.WaitGroup
		for i, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				reads.Add(1)
				errs[i] = st.indexPage(ctx, c, bound, page)
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	if err := fetch(curs); err != nil {
		return nil, int(reads.Load()), err
	}
	var out []indexEntry
	for {
		// The frontier is the smallest last-read key of the partitions with more to read: everything buffered up
		// to it is in its final order.
		frontier, open := "", false
		for _, c := range curs {
			if !c.done && (!open || c.last < frontier) {
				frontier, open = c.last, true
			}
		}
		var batch []indexEntry
		for _, c := range curs {
			cut := len(c.buf)
			if open {
				cut = sort.Search(len(c.buf), func(i int) bool { return c.buf[i].gsk > frontier })
			}
			batch = append(batch, c.buf[:cut]...)
			c.buf = c.buf[cut:]
		}
		slices.SortFunc(batch, func(a, b indexEntry) int { return strings.Compare(a.gsk, b.gsk) })
		out = append(out, batch...)
		if len(out) >= limit || !open {
			break
		}
		var behind []*indexCursor
		for _, c := range curs {
			if !c.done && c.last == frontier {
				behind = append(behind, c)
			}
		}
		if err := fetch(behind); err != nil {
			return nil, int(reads.Load()), err
		}
	}
	return out[:min(limit, len(out))], int(reads.Load()), nil
}

// indexPage reads c's next page of up to limit entries.
func (st *Store) indexPage(ctx context.Context, c *indexCursor, bound string, limit int) error {
	in := &dynamodb.QueryInput{
		TableName: &st.table, IndexName: aws.String("due"),
		KeyConditionExpression:    aws.String("gsi1pk = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": s(c.partition)},
		Limit:                     aws.Int32(int32(limit)), //nolint:gosec // at most 2000
		ExclusiveStartKey:         c.next,
	}
	if bound != "" {
		in.KeyConditionExpression = aws.String("gsi1pk = :p AND gsi1sk <= :b")
		in.ExpressionAttributeValues[":b"] = s(bound)
	}
	res, err := st.db.Query(ctx, in)
	if err != nil {
		return fmt.Errorf("query %s index: %w", c.partition, err)
	}
	for _, it := range res.Items {
		pk, _ := it["pk"].(*types.AttributeValueMemberS)
		sk, _ := it["sk"].(*types.AttributeValueMemberS)
		gsk, _ := it["gsi1sk"].(*types.AttributeValueMemberS)
		if pk != nil && sk != nil && gsk != nil {
			c.buf = append(c.buf, indexEntry{pk.Value, sk.Value, gsk.Value})
			c.last = gsk.Value
		}
	}
	c.next = res.LastEvaluatedKey
	c.done = len(res.LastEvaluatedKey) == 0
	return nil
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

// batchGet reads items strongly consistently, 100 keys a request (BatchGetItem's limit), up to four requests at
// once, re-asking for the keys DynamoDB leaves unprocessed. Items are returned by pk + "\x00" + sk; missing
// items are absent.
func (st *Store) batchGet(ctx context.Context, keys []itemKey) (map[string]map[string]types.AttributeValue, int, error) {
	out := make(map[string]map[string]types.AttributeValue, len(keys))
	var mu sync.Mutex
	var reads atomic.Int64
	chunks := (len(keys) + 99) / 100
	errs := make([]error, chunks)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for c := range chunks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			chunk := keys[c*100 : min(c*100+100, len(keys))]
			got, n, err := st.batchGetChunk(ctx, chunk)
			reads.Add(int64(n))
			errs[c] = err
			mu.Lock()
			maps.Copy(out, got)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, int(reads.Load()), err
	}
	return out, int(reads.Load()), nil
}

// batchGetChunk reads up to 100 keys in one BatchGetItem, then their unprocessed keys.
func (st *Store) batchGetChunk(ctx context.Context, chunk []itemKey) (map[string]map[string]types.AttributeValue, int, error) {
	out := make(map[string]map[string]types.AttributeValue, len(chunk))
	reads := 0
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
		GSI1PK: table.ActivePKOf(c.ID), GSI1SK: fmtTime(now) + "#" + connID + "#" + runID,
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
	vals[":next"], vals[":due"], vals[":duekey"] = s(fmtTime(next)), s(table.DuePKOf(c.ID)), s(dueKey(next, c.ConnectionID, c.ID))
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
		// The run's points so far are the allowance's base, so the dispatcher can tell what this invocation has
		// spent of it (a new run has none: StartScheduledRun leaves the base out).
		UpdateExpression: aws.String("SET dispatchedAt = :nowms, allowance = :allow, " +
			"allowanceBase = if_not_exists(counters.pointsSpent, :zero), v = v + :one"),
		ConditionExpression: aws.String("attribute_exists(pk) AND (" +
			"#st = :queued OR " +
			"(#st = :paused AND (attribute_not_exists(resumeAfter) OR resumeAfter <= :nowms)) OR " +
			"(#st = :running AND (attribute_not_exists(leaseUntil) OR leaseUntil < :nowms))" +
			") AND (attribute_not_exists(dispatchedAt) OR dispatchedAt <= :guard)"),
		ExpressionAttributeNames: map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":queued": s(string(RunQueued)), ":paused": s(string(RunPaused)), ":running": s(string(RunRunning)),
			":nowms": ms(now), ":guard": ms(now.Add(-st.DispatchGuard())), ":allow": n(allowance), ":one": n(1), ":zero": n(0),
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
