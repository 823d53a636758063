package connectors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/connections"
	"jiraexport/shared/table"
)

// Item types and keys (see .notes/contracts.md).
const (
	ItemTypeConnector = "connector"
	ItemTypeCount     = "connector_count"
	ItemTypeRun       = "run"

	countSK = table.SKConnectors

	connectorsList = "connectors"
)

// The package's short names for shared/table's key builders and helpers (due.go uses them too).
func connPK(connID string) string              { return table.ConnPK(connID) }
func connectorSK(id string) string             { return table.ConnectorSK(id) }
func runPrefix(connectorID string) string      { return table.RunPrefix(connectorID) }
func runSK(connectorID, runID string) string   { return table.RunSK(connectorID, runID) }
func fmtTime(t time.Time) string               { return table.FormatTime(t) }
func parseTime(s string) time.Time             { return table.ParseTime(s) }
func timePtr(s string) *time.Time              { return table.TimePtr(s) }
func s(v string) types.AttributeValue          { return table.S(v) }
func n(v int64) types.AttributeValue           { return table.N(v) }
func isCondFailed(err error) bool              { _, ok := table.ConditionFailed(err); return ok }
func cancelled(err error) table.Reasons        { return table.Cancelled(err) }
func condFailedAt(r table.Reasons, i int) bool { return r.FailedAt(i) }
func (st *Store) key(pk, sk string) table.Item { return table.Key(pk, sk) }

// Store keeps connectors and runs in the single table.
type Store struct {
	t *table.Table
	// db, table and now are t's, under the names the dispatcher's side (due.go) uses; db stays the SDK's client
	// until due.go moves to shared/table, so it may call anything the SDK has.
	db    *dynamodb.Client
	table string
	now   func() time.Time
	// history is how long finished runs are kept (WithRunHistory).
	history time.Duration
	// guard is the dispatch guard (WithDispatchGuard; 0: DispatchGuard).
	guard time.Duration
}

// Option tunes a Store.
type Option func(*Store)

// WithClock sets the store's clock (tests).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// NewStore returns a Store on the table name.
func NewStore(db *dynamodb.Client, name string, opts ...Option) *Store {
	st := &Store{db: db, table: name, now: time.Now}
	for _, o := range opts {
		o(st)
	}
	st.t = table.New(db, name, table.WithClock(st.now))
	return st
}

type summaryItem struct {
	ID         string    `dynamodbav:"id"`
	Status     RunStatus `dynamodbav:"status"`
	CreatedAt  string    `dynamodbav:"createdAt"`
	FinishedAt string    `dynamodbav:"finishedAt,omitempty"`
}

type connectorItem struct {
	PK        string       `dynamodbav:"pk"`
	SK        string       `dynamodbav:"sk"`
	Type      string       `dynamodbav:"type"`
	V         int64        `dynamodbav:"v"`
	ID        string       `dynamodbav:"id"`
	ConnID    string       `dynamodbav:"connId"`
	Name      string       `dynamodbav:"name"`
	SiteID    string       `dynamodbav:"siteId"`
	JQL       string       `dynamodbav:"jql"`
	Schedule  Schedule     `dynamodbav:"schedule"`
	Enabled   bool         `dynamodbav:"enabled"`
	Include   Include      `dynamodbav:"include"`
	Formats   []string     `dynamodbav:"formats"`
	Census    int          `dynamodbav:"censusIntervalHours,omitempty"`
	CreatedAt string       `dynamodbav:"createdAt"`
	UpdatedAt string       `dynamodbav:"updatedAt"`
	NextRunAt string       `dynamodbav:"nextRunAt,omitempty"`
	GSI1PK    string       `dynamodbav:"gsi1pk,omitempty"`
	GSI1SK    string       `dynamodbav:"gsi1sk,omitempty"`
	ActiveRun string       `dynamodbav:"activeRun,omitempty"`
	LastRun   *summaryItem `dynamodbav:"lastRun,omitempty"`
}

func (it *connectorItem) connector() *Connector {
	c := &Connector{
		Spec: Spec{Name: it.Name, SiteID: it.SiteID, JQL: it.JQL, Schedule: it.Schedule, Enabled: it.Enabled,
			Include: it.Include, Formats: it.Formats, CensusIntervalHours: it.Census},
		ID: it.ID, ConnectionID: it.ConnID, CreatedAt: parseTime(it.CreatedAt), UpdatedAt: parseTime(it.UpdatedAt),
		NextRunAt: timePtr(it.NextRunAt), ActiveRunID: it.ActiveRun, Version: it.V,
	}
	if c.Formats == nil {
		c.Formats = []string{}
	}
	if c.Include.Attachments.MediaTypes == nil {
		c.Include.Attachments.MediaTypes = []string{}
	}
	if c.Include.People == "" {
		c.Include.People = PeopleDisplayName // stored before the option existed
	}
	if c.CensusIntervalHours == 0 {
		c.CensusIntervalHours = DefaultCensusIntervalHours // stored before the option existed
	}
	if it.LastRun != nil {
		c.LastRun = &RunSummary{ID: it.LastRun.ID, Status: it.LastRun.Status, CreatedAt: parseTime(it.LastRun.CreatedAt),
			FinishedAt: timePtr(it.LastRun.FinishedAt)}
	}
	return c
}

// dueKey is the "due" index sort key: the dispatcher reads DUE items up to now.
func dueKey(next time.Time, connID, id string) string {
	return next.UTC().Format(time.RFC3339) + "#" + connID + "#" + id
}

// Create stores a new connector. next is its first run (ignored when disabled). It fails with ErrTooMany when the
// connection has MaxConnectors, and ErrNotActive when the connection is gone or disconnected.
func (st *Store) Create(ctx context.Context, connID string, spec Spec, next time.Time) (*Connector, error) {
	now := st.now().UTC()
	it := connectorItem{
		PK: connPK(connID), Type: ItemTypeConnector, V: 1, ID: NewID(now), ConnID: connID,
		Name: spec.Name, SiteID: spec.SiteID, JQL: spec.JQL, Schedule: spec.Schedule, Enabled: spec.Enabled,
		Include: spec.Include, Formats: spec.Formats, Census: spec.CensusIntervalHours, CreatedAt: fmtTime(now), UpdatedAt: fmtTime(now),
	}
	it.SK = connectorSK(it.ID)
	if spec.Enabled && !next.IsZero() {
		it.NextRunAt = fmtTime(next)
		it.GSI1PK, it.GSI1SK = table.DuePKOf(it.ID), dueKey(next, connID, it.ID)
	}
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return nil, fmt.Errorf("encode connector: %w", err)
	}
	_, err = st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: &st.table, Item: av, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
		{Update: &types.Update{
			TableName: &st.table, Key: st.key(connPK(connID), countSK),
			UpdateExpression:          aws.String("SET #type = :type, #n = if_not_exists(#n, :zero) + :one, v = if_not_exists(v, :zero) + :one"),
			ConditionExpression:       aws.String("attribute_not_exists(#n) OR #n < :max"),
			ExpressionAttributeNames:  map[string]string{"#type": "type", "#n": "n"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":type": s(ItemTypeCount), ":zero": n(0), ":one": n(1), ":max": n(MaxConnectors)},
		}},
		st.connectionActiveItem(connID),
	}})
	if err != nil {
		r := cancelled(err)
		switch {
		case condFailedAt(r, 1):
			return nil, ErrTooMany
		case condFailedAt(r, 2):
			return nil, ErrNotActive
		}
		return nil, fmt.Errorf("create connector: %w", err)
	}
	return it.connector(), nil
}

// connectionActiveItem fails a transaction unless the connection exists and is not disconnected (a disconnect or
// the erasure's fence), so nothing new is written under a connection that is being torn down.
func (st *Store) connectionActiveItem(connID string) types.TransactWriteItem {
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName: &st.table, Key: st.key(connPK(connID), connections.MetaSK),
		ConditionExpression:       aws.String("attribute_exists(pk) AND #st <> :disc"),
		ExpressionAttributeNames:  map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":disc": s(string(connections.StatusDisconnected))},
	}}
}

func (st *Store) getItem(ctx context.Context, connID, id string) (*connectorItem, error) {
	var it connectorItem
	found, err := st.t.Get(ctx, connPK(connID), connectorSK(id), &it)
	if err != nil {
		return nil, fmt.Errorf("get connector: %w", err)
	}
	if !found {
		return nil, ErrNotFound
	}
	return &it, nil
}

// Get returns connector id of connection connID, or ErrNotFound (also for another connection's connector).
func (st *Store) Get(ctx context.Context, connID, id string) (*Connector, error) {
	it, err := st.getItem(ctx, connID, id)
	if err != nil {
		return nil, err
	}
	return it.connector(), nil
}

// page queries one page of items under the connection whose sort key starts with prefix.
func (st *Store) page(ctx context.Context, connID, list, prefix string, limit int, cur string, newestFirst bool) ([]map[string]types.AttributeValue, string, error) {
	after, err := decodeCursor(connID, list, prefix, cur)
	if err != nil {
		return nil, "", err
	}
	in := &dynamodb.QueryInput{
		TableName:                 &st.table,
		KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :prefix)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": s(connPK(connID)), ":prefix": s(prefix)},
		// One extra item tells whether there is a next page, so the last page never carries a cursor.
		Limit:            aws.Int32(int32(min(max(limit, 1), 1000) + 1)), //nolint:gosec // bounded to 1..1001
		ScanIndexForward: aws.Bool(!newestFirst),
		ConsistentRead:   aws.Bool(true),
	}
	if after != "" {
		in.ExclusiveStartKey = st.key(connPK(connID), after)
	}
	out, err := st.db.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("query %s: %w", list, err)
	}
	items := out.Items
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = encodeCursor(connID, list, items[limit-1]["sk"].(*types.AttributeValueMemberS).Value)
	}
	return items, next, nil
}

// List returns a page of the connection's connectors, oldest first, and the cursor of the next page ("" at the
// end). An invalid cursor gives ErrInvalidCursor.
func (st *Store) List(ctx context.Context, connID string, limit int, cur string) ([]Connector, string, error) {
	items, next, err := st.page(ctx, connID, connectorsList, table.PrefixConnector, limit, cur, false)
	if err != nil {
		return nil, "", err
	}
	out := make([]Connector, 0, len(items))
	for _, av := range items {
		var it connectorItem
		if err := attributevalue.UnmarshalMap(av, &it); err != nil {
			return nil, "", fmt.Errorf("decode connector: %w", err)
		}
		out = append(out, *it.connector())
	}
	return out, next, nil
}

// Update replaces the connector's configuration when its version is still version (ErrStale otherwise, ErrNotFound
// when it does not exist). next is its next run (ignored when disabled).
func (st *Store) Update(ctx context.Context, connID, id string, spec Spec, version int64, next time.Time) (*Connector, error) {
	now := st.now().UTC()
	incl, err := attributevalue.Marshal(spec.Include)
	if err != nil {
		return nil, fmt.Errorf("encode connector: %w", err)
	}
	sched, err := attributevalue.Marshal(spec.Schedule)
	if err != nil {
		return nil, fmt.Errorf("encode connector: %w", err)
	}
	formats, err := attributevalue.Marshal(spec.Formats)
	if err != nil {
		return nil, fmt.Errorf("encode connector: %w", err)
	}
	vals := map[string]types.AttributeValue{
		":name": s(spec.Name), ":site": s(spec.SiteID), ":jql": s(spec.JQL), ":sched": sched,
		":enabled": table.Bool(spec.Enabled), ":incl": incl, ":formats": formats,
		":now": s(fmtTime(now)), ":one": n(1), ":v": n(version), ":census": n(int64(spec.CensusInterval() / time.Hour)),
	}
	expr := "SET #name = :name, siteId = :site, jql = :jql, #schedule = :sched, enabled = :enabled, #include = :incl, " +
		"formats = :formats, censusIntervalHours = :census, updatedAt = :now, v = v + :one"
	if spec.Enabled && !next.IsZero() {
		expr += ", nextRunAt = :next, gsi1pk = :due, gsi1sk = :duekey"
		vals[":next"], vals[":due"], vals[":duekey"] = s(fmtTime(next)), s(table.DuePKOf(id)), s(dueKey(next, connID, id))
	} else {
		expr += " REMOVE nextRunAt, gsi1pk, gsi1sk"
	}
	out, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &st.table, Key: st.key(connPK(connID), connectorSK(id)),
		UpdateExpression:                    aws.String(expr),
		ConditionExpression:                 aws.String("attribute_exists(pk) AND v = :v"),
		ExpressionAttributeNames:            map[string]string{"#name": "name", "#schedule": "schedule", "#include": "include"},
		ExpressionAttributeValues:           vals,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		if old, failed := table.ConditionFailed(err); failed {
			if old == nil {
				return nil, ErrNotFound
			}
			return nil, ErrStale
		}
		return nil, fmt.Errorf("update connector: %w", err)
	}
	var it connectorItem
	if err := attributevalue.UnmarshalMap(out.Attributes, &it); err != nil {
		return nil, fmt.Errorf("decode connector: %w", err)
	}
	return it.connector(), nil
}

// Delete removes a connector (when version is 0 or still its version), cancels its active run in the same
// transaction, and then removes its run history.
func (st *Store) Delete(ctx context.Context, connID, id string, version int64) error {
	for attempt := 0; attempt < 3; attempt++ {
		it, err := st.getItem(ctx, connID, id)
		if err != nil {
			return err
		}
		if version != 0 && it.V != version {
			return ErrStale
		}
		cond := "attribute_exists(pk) AND v = :v AND attribute_not_exists(activeRun)"
		vals := map[string]types.AttributeValue{":v": n(it.V)}
		if it.ActiveRun != "" {
			cond = "attribute_exists(pk) AND v = :v AND activeRun = :run"
			vals[":run"] = s(it.ActiveRun)
		}
		items := []types.TransactWriteItem{
			{Delete: &types.Delete{TableName: &st.table, Key: st.key(connPK(connID), connectorSK(id)),
				ConditionExpression: aws.String(cond), ExpressionAttributeValues: vals}},
			{Update: &types.Update{TableName: &st.table, Key: st.key(connPK(connID), countSK),
				UpdateExpression:          aws.String("SET #n = #n - :one, v = v + :one"),
				ConditionExpression:       aws.String("#n > :zero"),
				ExpressionAttributeNames:  map[string]string{"#n": "n"},
				ExpressionAttributeValues: map[string]types.AttributeValue{":one": n(1), ":zero": n(0)}}},
		}
		if it.ActiveRun != "" {
			items = append(items, st.cancelRunItem(connID, id, it.ActiveRun, "connector_deleted"))
		}
		_, err = st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			return st.deleteRuns(ctx, connID, id)
		}
		if r := cancelled(err); condFailedAt(r, 0) || condFailedAt(r, 2) {
			continue // changed under us (a run started or finished, or an edit): read again
		}
		return fmt.Errorf("delete connector: %w", err)
	}
	return ErrStale
}

func (st *Store) deleteRuns(ctx context.Context, connID, connectorID string) error {
	return st.deletePrefix(ctx, connID, runPrefix(connectorID))
}

// deletePrefix deletes every item under the connection whose sort key starts with prefix.
func (st *Store) deletePrefix(ctx context.Context, connID, prefix string) error {
	if err := st.t.DeletePrefix(ctx, connPK(connID), prefix); err != nil {
		return fmt.Errorf("delete %s items: %w", prefix, err)
	}
	return nil
}

// MarkDisconnected sets the connection's status to disconnected, the first step of a disconnect: from then on
// every transaction that creates a connector, a run or an API key checks the status and fails, so requests racing
// the disconnect cannot leave anything behind. A connection that no longer exists is left alone (a retried
// disconnect). The connections package owns the item; this lives here until it offers the update itself.
func (st *Store) MarkDisconnected(ctx context.Context, connID string) error {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &st.table, Key: st.key(connPK(connID), connections.MetaSK),
		UpdateExpression:          aws.String("SET #st = :disc, statusReason = :why, updatedAt = :now ADD v :one"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames:  map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":disc": s(string(connections.StatusDisconnected)), ":why": s("user_disconnected"), ":now": s(fmtTime(st.now())), ":one": n(1)},
	})
	if err != nil && !isCondFailed(err) {
		return fmt.Errorf("mark connection disconnected: %w", err)
	}
	return nil
}

// DeleteAll removes every connector of the connection, their runs and the connector count (disconnect, purge).
// Call it after MarkDisconnected and DisableAll, so nothing starts meanwhile. It is idempotent.
func (st *Store) DeleteAll(ctx context.Context, connID string) error {
	for _, prefix := range []string{table.PrefixRun, table.PrefixConnector} {
		if err := st.deletePrefix(ctx, connID, prefix); err != nil {
			return err
		}
	}
	if _, err := st.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &st.table, Key: st.key(connPK(connID), countSK)}); err != nil {
		return fmt.Errorf("delete connector count: %w", err)
	}
	return nil
}

// DisableAll disables every connector of the connection and cancels their active runs (disconnect): nothing of
// the connection runs again until a user enables it.
func (st *Store) DisableAll(ctx context.Context, connID, reason string) error {
	return st.eachConnector(ctx, connID, func(c *Connector) error {
		if err := st.disable(ctx, connID, c.ID, reason); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	})
}

// CancelActiveRuns cancels every queued or running run of the connection with reason (a rejected grant: the
// work cannot go on until the user re-authorises). Connectors keep their configuration and schedule.
func (st *Store) CancelActiveRuns(ctx context.Context, connID, reason string) error {
	return st.eachConnector(ctx, connID, func(c *Connector) error {
		if c.ActiveRunID == "" {
			return nil
		}
		if _, err := st.CancelRun(ctx, connID, c.ID, c.ActiveRunID, reason); err != nil &&
			!errors.Is(err, ErrNotFound) && !errors.Is(err, ErrRunFinished) {
			return fmt.Errorf("cancel run %s: %w", c.ActiveRunID, err)
		}
		return nil
	})
}

// eachConnector calls fn for every connector of the connection, page by page.
func (st *Store) eachConnector(ctx context.Context, connID string, fn func(*Connector) error) error {
	cur := ""
	for {
		page, next, err := st.List(ctx, connID, 100, cur)
		if err != nil {
			return err
		}
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		cur = next
	}
}

func (st *Store) disable(ctx context.Context, connID, id, reason string) error {
	for attempt := 0; attempt < 5; attempt++ {
		it, err := st.getItem(ctx, connID, id)
		if err != nil {
			return err
		}
		now := fmtTime(st.now())
		vals := map[string]types.AttributeValue{":f": table.Bool(false), ":one": n(1), ":now": s(now)}
		upd := &types.Update{TableName: &st.table, Key: st.key(connPK(connID), connectorSK(id)),
			UpdateExpression:          aws.String("SET enabled = :f, updatedAt = :now, v = v + :one REMOVE nextRunAt, gsi1pk, gsi1sk"),
			ConditionExpression:       aws.String("attribute_exists(pk) AND attribute_not_exists(activeRun)"),
			ExpressionAttributeValues: vals,
		}
		items := []types.TransactWriteItem{{Update: upd}}
		if it.ActiveRun != "" {
			// The run's own cancel item releases activeRun; this one only disables.
			upd.ConditionExpression = aws.String("attribute_exists(pk) AND activeRun = :run")
			vals[":run"] = s(it.ActiveRun)
			items = []types.TransactWriteItem{st.cancelRunItem(connID, id, it.ActiveRun, reason), {Update: &types.Update{
				TableName: &st.table, Key: st.key(connPK(connID), connectorSK(id)),
				UpdateExpression: aws.String("SET enabled = :f, updatedAt = :now, v = v + :one, lastRun.#st = :cancelled, lastRun.finishedAt = :now " +
					"REMOVE nextRunAt, gsi1pk, gsi1sk, activeRun"),
				ConditionExpression:       aws.String("attribute_exists(pk) AND activeRun = :run"),
				ExpressionAttributeNames:  map[string]string{"#st": "status"},
				ExpressionAttributeValues: map[string]types.AttributeValue{":f": vals[":f"], ":one": n(1), ":now": s(now), ":run": s(it.ActiveRun), ":cancelled": s(string(RunCancelled))},
			}}}
		}
		_, err = st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			return nil
		}
		if cancelled(err) != nil {
			continue
		}
		return fmt.Errorf("disable connector: %w", err)
	}
	return fmt.Errorf("disable connector %s: kept changing", id)
}
