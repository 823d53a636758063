package connectors

import (
	"context"
	"fmt"
	"jiraexport/shared/table"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

type runItem struct {
	PK           string     `dynamodbav:"pk"`
	SK           string     `dynamodbav:"sk"`
	Type         string     `dynamodbav:"type"`
	V            int64      `dynamodbav:"v"`
	ID           string     `dynamodbav:"id"`
	ConnectorID  string     `dynamodbav:"connectorId"`
	ConnID       string     `dynamodbav:"connId"`
	Status       RunStatus  `dynamodbav:"status"`
	Phase        string     `dynamodbav:"phase"`
	Trigger      string     `dynamodbav:"trigger"`
	Counters     Counters   `dynamodbav:"counters"`
	Errors       []RunError `dynamodbav:"errors"`
	CreatedAt    string     `dynamodbav:"createdAt"`
	UpdatedAt    string     `dynamodbav:"updatedAt"`
	StartedAt    string     `dynamodbav:"startedAt,omitempty"`
	FinishedAt   string     `dynamodbav:"finishedAt,omitempty"`
	CancelReason string     `dynamodbav:"cancelReason,omitempty"`
	LeaseOwner   string     `dynamodbav:"leaseOwner,omitempty"`
	LeaseUntil   int64      `dynamodbav:"leaseUntil,omitempty"`  // epoch ms, so conditions compare numbers
	ResumeAfter  int64      `dynamodbav:"resumeAfter,omitempty"` // epoch ms
	PauseReason  string     `dynamodbav:"pauseReason,omitempty"`
	Invocations  int64      `dynamodbav:"invocations,omitempty"`
	DispatchedAt int64      `dynamodbav:"dispatchedAt,omitempty"` // epoch ms
	Allowance    int64      `dynamodbav:"allowance,omitempty"`
	// AllowanceBase is counters.pointsSpent when the allowance was granted.
	AllowanceBase int64  `dynamodbav:"allowanceBase,omitempty"`
	GSI1PK        string `dynamodbav:"gsi1pk,omitempty"`
	GSI1SK        string `dynamodbav:"gsi1sk,omitempty"`
}

func (it *runItem) run() *Run {
	r := &Run{
		ID: it.ID, ConnectorID: it.ConnectorID, ConnectionID: it.ConnID, Status: it.Status, Phase: it.Phase,
		Trigger: it.Trigger, Counters: it.Counters, Errors: it.Errors, CreatedAt: parseTime(it.CreatedAt),
		UpdatedAt: parseTime(it.UpdatedAt), StartedAt: timePtr(it.StartedAt), FinishedAt: timePtr(it.FinishedAt),
		CancelReason: it.CancelReason, LeaseOwner: it.LeaseOwner, LeaseUntil: msPtr(it.LeaseUntil),
		ResumeAfter: msPtr(it.ResumeAfter), PauseReason: it.PauseReason, Invocations: it.Invocations,
		DispatchedAt: msPtr(it.DispatchedAt), Allowance: it.Allowance, AllowanceBase: it.AllowanceBase,
	}
	if r.Errors == nil {
		r.Errors = []RunError{}
	}
	return r
}

// RunOption sets up a run StartRun creates.
type RunOption func(*runItem)

// WithAllowance gives the run's first invocation a points allowance, as the dispatcher's admission gives every
// invocation it starts: spent, the run checkpoints and pauses (reason budget) and the dispatcher resumes it through
// admission. Zero or less sets none.
func WithAllowance(points int64) RunOption {
	return func(it *runItem) {
		if points > 0 {
			it.Allowance, it.AllowanceBase = points, 0 // a new run has spent nothing
		}
	}
}

// StartRun queues a run of the connector. Exactly one of concurrent starts succeeds: the others get ErrActiveRun,
// because the connector's activeRun attribute is claimed in the same transaction that writes the run. It fails
// with ErrNotActive when the connection is gone or disconnected. The run counts as handed to an export
// invocation now (the caller invokes the export right after; the dispatcher takes over after DispatchGuard if
// that invocation is lost).
func (st *Store) StartRun(ctx context.Context, connID, connectorID, trigger string, opts ...RunOption) (*Run, error) {
	now := st.now().UTC()
	it := runItem{
		PK: connPK(connID), Type: ItemTypeRun, V: 1, ID: NewID(now), ConnectorID: connectorID, ConnID: connID,
		Status: RunQueued, Phase: "queued", Trigger: trigger, Errors: []RunError{}, CreatedAt: fmtTime(now), UpdatedAt: fmtTime(now),
		DispatchedAt: now.UnixMilli(),
	}
	for _, o := range opts {
		o(&it)
	}
	it.SK = runSK(connectorID, it.ID)
	it.GSI1PK, it.GSI1SK = table.ActivePKOf(connectorID), fmtTime(now)+"#"+connID+"#"+it.ID
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return nil, fmt.Errorf("encode run: %w", err)
	}
	summary, err := attributevalue.Marshal(summaryItem{ID: it.ID, Status: RunQueued, CreatedAt: it.CreatedAt})
	if err != nil {
		return nil, fmt.Errorf("encode run: %w", err)
	}
	_, err = st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName: &st.table, Key: st.key(connPK(connID), connectorSK(connectorID)),
			UpdateExpression:                    aws.String("SET activeRun = :run, lastRun = :summary, v = v + :one"),
			ConditionExpression:                 aws.String("attribute_exists(pk) AND attribute_not_exists(activeRun)"),
			ExpressionAttributeValues:           map[string]types.AttributeValue{":run": s(it.ID), ":summary": summary, ":one": n(1)},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
		{Put: &types.Put{TableName: &st.table, Item: av, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
		st.connectionActiveItem(connID),
	}})
	if err != nil {
		r := cancelled(err)
		if condFailedAt(r, 2) {
			return nil, ErrNotActive
		}
		if condFailedAt(r, 0) {
			if r[0].Item == nil {
				return nil, ErrNotFound
			}
			return nil, ErrActiveRun
		}
		// Two transactions on the same connector at once: DynamoDB cancels one with TransactionConflict.
		for _, c := range r {
			if aws.ToString(c.Code) == "TransactionConflict" {
				return nil, ErrActiveRun
			}
		}
		return nil, fmt.Errorf("start run: %w", err)
	}
	return it.run(), nil
}

// GetRun returns one run of the connector, or ErrNotFound.
func (st *Store) GetRun(ctx context.Context, connID, connectorID, runID string) (*Run, error) {
	var it runItem
	found, err := st.t.Get(ctx, connPK(connID), runSK(connectorID, runID), &it)
	if err != nil {
		return nil, fmt.Errorf("get run: %w", err)
	}
	if !found {
		return nil, ErrNotFound
	}
	return it.run(), nil
}

// ListRuns returns a page of the connector's runs, newest first.
func (st *Store) ListRuns(ctx context.Context, connID, connectorID string, limit int, cur string) ([]Run, string, error) {
	items, next, err := st.page(ctx, connID, "runs:"+connectorID, runPrefix(connectorID), limit, cur, true)
	if err != nil {
		return nil, "", err
	}
	out := make([]Run, 0, len(items))
	for _, av := range items {
		var it runItem
		if err := attributevalue.UnmarshalMap(av, &it); err != nil {
			return nil, "", fmt.Errorf("decode run: %w", err)
		}
		out = append(out, *it.run())
	}
	return out, next, nil
}

// cancelRunItem marks an active run cancelled; it fails the transaction if the run is no longer active.
func (st *Store) cancelRunItem(connID, connectorID, runID, reason string) types.TransactWriteItem {
	now := fmtTime(st.now())
	return st.withRunTTL(types.TransactWriteItem{Update: &types.Update{
		TableName: &st.table, Key: st.key(connPK(connID), runSK(connectorID, runID)),
		UpdateExpression:                    aws.String("SET #st = :cancelled, finishedAt = :now, updatedAt = :now, cancelReason = :why, v = v + :one REMOVE gsi1pk, gsi1sk, leaseOwner, leaseUntil, resumeAfter"),
		ConditionExpression:                 aws.String("attribute_exists(pk) AND #st IN (:queued, :running, :paused)"),
		ExpressionAttributeNames:            map[string]string{"#st": "status"},
		ExpressionAttributeValues:           map[string]types.AttributeValue{":cancelled": s(string(RunCancelled)), ":now": s(now), ":why": s(reason), ":one": n(1), ":queued": s(string(RunQueued)), ":running": s(string(RunRunning)), ":paused": s(string(RunPaused))},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}})
}

// releaseItem frees the connector's run slot held by runID and records the run's final status as its lastRun.
func (st *Store) releaseItem(connID, connectorID, runID string, status RunStatus) types.TransactWriteItem {
	now := fmtTime(st.now())
	return types.TransactWriteItem{Update: &types.Update{
		TableName: &st.table, Key: st.key(connPK(connID), connectorSK(connectorID)),
		UpdateExpression:          aws.String("SET lastRun.#st = :status, lastRun.finishedAt = :now, v = v + :one REMOVE activeRun"),
		ConditionExpression:       aws.String("activeRun = :run"),
		ExpressionAttributeNames:  map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":status": s(string(status)), ":now": s(now), ":one": n(1), ":run": s(runID)},
	}}
}

// CancelRun cancels an active run at once (the worker sees the status at its next checkpoint and stops: its
// conditional writes fail with ErrRunFinished). It
// returns ErrNotFound for an unknown run and ErrRunFinished for a run that already ended.
func (st *Store) CancelRun(ctx context.Context, connID, connectorID, runID, reason string) (*Run, error) {
	_, err := st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		st.cancelRunItem(connID, connectorID, runID, reason),
		st.releaseItem(connID, connectorID, runID, RunCancelled),
	}})
	if err != nil {
		r := cancelled(err)
		if condFailedAt(r, 0) {
			if r[0].Item == nil {
				return nil, ErrNotFound
			}
			return nil, ErrRunFinished
		}
		if condFailedAt(r, 1) {
			// The connector no longer names this run: the run is an orphan (its connector was deleted
			// concurrently); cancelling it alone is still right.
			if _, err := st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
				st.cancelRunItem(connID, connectorID, runID, reason)}}); err != nil {
				if condFailedAt(cancelled(err), 0) {
					return nil, ErrRunFinished
				}
				return nil, fmt.Errorf("cancel run: %w", err)
			}
		} else {
			return nil, fmt.Errorf("cancel run: %w", err)
		}
	}
	return st.GetRun(ctx, connID, connectorID, runID)
}

// UpdateProgress records a worker's progress on an active run (ErrRunFinished if it is no longer active, which is
// how a worker learns of a cancellation). A final Status also releases the connector's run slot.
func (st *Store) UpdateProgress(ctx context.Context, connID, connectorID, runID string, p Progress) (*Run, error) {
	now := st.now().UTC()
	counters, err := attributevalue.Marshal(p.Counters)
	if err != nil {
		return nil, fmt.Errorf("encode run: %w", err)
	}
	if len(p.Errors) > MaxRunErrors {
		p.Errors = p.Errors[:MaxRunErrors]
	}
	errs, err := attributevalue.Marshal(p.Errors)
	if err != nil {
		return nil, fmt.Errorf("encode run: %w", err)
	}
	if p.Errors == nil {
		errs = &types.AttributeValueMemberL{Value: []types.AttributeValue{}}
	}
	vals := map[string]types.AttributeValue{
		":counters": counters, ":errors": errs, ":now": s(fmtTime(now)), ":one": n(1),
		":queued": s(string(RunQueued)), ":running": s(string(RunRunning)), ":paused": s(string(RunPaused)),
	}
	expr := "SET counters = :counters, #errors = :errors, updatedAt = :now, v = v + :one"
	if p.Phase != "" {
		expr += ", phase = :phase"
		vals[":phase"] = s(p.Phase)
	}
	if p.Status != "" {
		expr += ", #st = :status"
		vals[":status"] = s(string(p.Status))
		if p.Status == RunRunning {
			expr += ", startedAt = if_not_exists(startedAt, :now)"
		}
		if !p.Status.Active() {
			expr += ", finishedAt = :now REMOVE gsi1pk, gsi1sk"
		}
	}
	items := []types.TransactWriteItem{{Update: &types.Update{
		TableName: &st.table, Key: st.key(connPK(connID), runSK(connectorID, runID)),
		UpdateExpression:                    aws.String(expr),
		ConditionExpression:                 aws.String("attribute_exists(pk) AND #st IN (:queued, :running, :paused)"),
		ExpressionAttributeNames:            map[string]string{"#st": "status", "#errors": "errors"},
		ExpressionAttributeValues:           vals,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}}}
	if p.Status != "" && !p.Status.Active() {
		items[0] = st.withRunTTL(items[0])
		items = append(items, st.releaseItem(connID, connectorID, runID, p.Status))
	}
	if _, err := st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items}); err != nil {
		r := cancelled(err)
		if condFailedAt(r, 0) {
			if r[0].Item == nil {
				return nil, ErrNotFound
			}
			return nil, ErrRunFinished
		}
		return nil, fmt.Errorf("update run: %w", err)
	}
	return st.GetRun(ctx, connID, connectorID, runID)
}
