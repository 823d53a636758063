package connectors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/shared/connections"
	"jiraexport/shared/table"
)

// A run is worked on by one export invocation at a time: the lease holder. Async invokes are delivered at least
// once and dispatcher ticks overlap, so two invocations may try the same run; AcquireRun lets exactly one of them
// in, and every later write of the worker (SaveProgress, PauseRun, FinishRun) is conditional on still holding
// the lease, on the run still being active, and (for progress) on the connection still being active. A worker
// whose write fails with ErrLeaseLost, ErrRunFinished or ErrNotActive stops at once: someone took the run over,
// cancelled it, or is erasing the connection.

// Errors of the run lifecycle.
var (
	// ErrLeaseHeld: another worker holds an unexpired lease on the run.
	ErrLeaseHeld = errors.New("run is leased by another worker")
	// ErrLeaseLost: the caller no longer holds the run's lease (it expired and was taken over, or the run was
	// paused or released).
	ErrLeaseLost = errors.New("run lease lost")
	// ErrRunWaiting: the run is paused until a later time (ResumeAfter).
	ErrRunWaiting = errors.New("run may not resume yet")
)

func ms(t time.Time) types.AttributeValue { return table.Millis(t) }

func msPtr(v int64) *time.Time { return table.FromMillis(v) }

func (st *Store) runKey(ref RunRef) map[string]types.AttributeValue {
	return st.key(connPK(ref.ConnectionID), runSK(ref.ConnectorID, ref.RunID))
}

// connectionIsActiveItem fails a transaction unless the connection exists with status active: the fence a purge
// or a disconnect raises (status erasing/disconnected), and the stop a rejected grant raises (reauth_required).
func (st *Store) connectionIsActiveItem(connID string) types.TransactWriteItem {
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName: &st.table, Key: st.key(connPK(connID), connections.MetaSK),
		ConditionExpression:       aws.String("#st = :active"),
		ExpressionAttributeNames:  map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":active": s(string(connections.StatusActive))},
	}}
}

// AcquireRun takes the run's lease for owner until now+leaseFor and marks it running. It succeeds when the run
// is queued, paused (and its ResumeAfter has come), or running under an expired lease or owner's own lease (a
// retried invocation). It fails with ErrNotFound, ErrRunFinished, ErrLeaseHeld, ErrRunWaiting, or ErrNotActive
// when the connection is not active.
func (st *Store) AcquireRun(ctx context.Context, ref RunRef, owner string, leaseFor time.Duration) (*Run, error) {
	now := st.now().UTC()
	vals := map[string]types.AttributeValue{
		":queued": s(string(RunQueued)), ":running": s(string(RunRunning)), ":paused": s(string(RunPaused)),
		":owner": s(owner), ":nowms": ms(now), ":until": ms(now.Add(leaseFor)), ":now": s(fmtTime(now)),
		":one": n(1), ":zero": n(0),
	}
	_, err := st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName: &st.table, Key: st.runKey(ref),
			UpdateExpression: aws.String("SET #st = :running, leaseOwner = :owner, leaseUntil = :until, updatedAt = :now, " +
				"startedAt = if_not_exists(startedAt, :now), invocations = if_not_exists(invocations, :zero) + :one, v = v + :one " +
				"REMOVE resumeAfter, pauseReason"),
			ConditionExpression: aws.String("attribute_exists(pk) AND #st IN (:queued, :running, :paused) AND " +
				"(attribute_not_exists(leaseUntil) OR leaseUntil < :nowms OR leaseOwner = :owner) AND " +
				"(attribute_not_exists(resumeAfter) OR resumeAfter <= :nowms)"),
			ExpressionAttributeNames:            map[string]string{"#st": "status"},
			ExpressionAttributeValues:           vals,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
		st.connectionIsActiveItem(ref.ConnectionID),
	}})
	if err != nil {
		r := cancelled(err)
		switch {
		case condFailedAt(r, 0):
			it, derr := decodeRun(r[0].Item)
			switch {
			case derr != nil:
				return nil, derr
			case it == nil:
				return nil, ErrNotFound
			case !it.Status.Active():
				return nil, ErrRunFinished
			case it.ResumeAfter > now.UnixMilli():
				return nil, ErrRunWaiting
			default:
				return nil, ErrLeaseHeld
			}
		case condFailedAt(r, 1):
			return nil, ErrNotActive
		case conflicted(r):
			return nil, ErrLeaseHeld
		}
		return nil, fmt.Errorf("acquire run: %w", err)
	}
	return st.GetRun(ctx, ref.ConnectionID, ref.ConnectorID, ref.RunID)
}

func decodeRun(item map[string]types.AttributeValue) (*runItem, error) {
	if item == nil {
		return nil, nil
	}
	var it runItem
	if err := attributevalue.UnmarshalMap(item, &it); err != nil {
		return nil, fmt.Errorf("decode run: %w", err)
	}
	return &it, nil
}

func conflicted(r table.Reasons) bool { return r.Conflicted() }

// leasedUpdate builds the conditional update of a run the caller holds the lease on.
func (st *Store) leasedUpdate(ref RunRef, owner, set string, vals map[string]types.AttributeValue, p Progress) (types.TransactWriteItem, error) {
	counters, err := attributevalue.Marshal(p.Counters)
	if err != nil {
		return types.TransactWriteItem{}, fmt.Errorf("encode run: %w", err)
	}
	errs := p.Errors
	if len(errs) > MaxRunErrors {
		errs = errs[:MaxRunErrors]
	}
	if errs == nil {
		errs = []RunError{}
	}
	errsAV, err := attributevalue.Marshal(errs)
	if err != nil {
		return types.TransactWriteItem{}, fmt.Errorf("encode run: %w", err)
	}
	now := st.now().UTC()
	vals[":errors"], vals[":now"], vals[":one"] = errsAV, s(fmtTime(now)), n(1)
	vals[":owner"], vals[":running"] = s(owner), s(string(RunRunning))
	expr := "SET #errors = :errors, updatedAt = :now, v = v + :one"
	if !p.KeepCounters {
		expr += ", counters = :counters"
		vals[":counters"] = counters
	}
	if p.Phase != "" {
		expr += ", phase = :phase"
		vals[":phase"] = s(p.Phase)
	}
	return types.TransactWriteItem{Update: &types.Update{
		TableName: &st.table, Key: st.runKey(ref),
		UpdateExpression:                    aws.String(expr + ", " + set),
		ConditionExpression:                 aws.String("attribute_exists(pk) AND #st = :running AND leaseOwner = :owner"),
		ExpressionAttributeNames:            map[string]string{"#st": "status", "#errors": "errors"},
		ExpressionAttributeValues:           vals,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}}, nil
}

// leasedWrite runs a leased update with extra items in one transaction and maps its failure: the run item first
// (ErrNotFound, ErrRunFinished, ErrLeaseLost), then the connection check when present (ErrNotActive), then the
// caller's extra items (an error wrapping ErrExtraFailed with the extra item's index).
func (st *Store) leasedWrite(ctx context.Context, items []types.TransactWriteItem, connCheck bool, nExtra int) error {
	_, err := st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if err == nil {
		return nil
	}
	r := cancelled(err)
	if condFailedAt(r, 0) {
		it, derr := decodeRun(r[0].Item)
		switch {
		case derr != nil:
			return derr
		case it == nil:
			return ErrNotFound
		case !it.Status.Active():
			return ErrRunFinished
		default:
			return ErrLeaseLost
		}
	}
	first := 1
	if connCheck {
		if condFailedAt(r, 1) {
			return ErrNotActive
		}
		first = 2
	}
	for i := 0; i < nExtra; i++ {
		if condFailedAt(r, first+i) {
			return &ExtraFailedError{Index: i}
		}
	}
	if conflicted(r) {
		// Someone wrote the run at the same moment (a cancel): the caller's next write tells which.
		return fmt.Errorf("run write conflicted: %w", ErrLeaseLost)
	}
	return fmt.Errorf("write run: %w", err)
}

// ExtraFailedError reports that the condition of the caller's extra transaction item Index failed.
type ExtraFailedError struct{ Index int }

func (e *ExtraFailedError) Error() string {
	return "run write: condition of extra item " + strconv.Itoa(e.Index) + " failed"
}

// SaveProgress is a worker's checkpoint: it records p, renews the lease until now+leaseFor and writes extra (the
// export's checkpoint item, index items) in the same transaction, so progress and checkpoint never disagree.
// TransactWriteItems takes 100 items: extra may hold at most 98. It fails with ErrLeaseLost, ErrRunFinished
// (cancelled), ErrNotFound (erased), or ErrNotActive (the connection is no longer active).
func (st *Store) SaveProgress(ctx context.Context, ref RunRef, owner string, leaseFor time.Duration, p Progress, extra ...types.TransactWriteItem) error {
	vals := map[string]types.AttributeValue{":until": ms(st.now().Add(leaseFor))}
	upd, err := st.leasedUpdate(ref, owner, "leaseUntil = :until", vals, p)
	if err != nil {
		return err
	}
	items := append([]types.TransactWriteItem{upd, st.connectionIsActiveItem(ref.ConnectionID)}, extra...)
	return st.leasedWrite(ctx, items, true, len(extra))
}

// PauseRun stops work on the run unfinished: status paused, lease released, resumable by the dispatcher at or
// after resumeAfter (zero: at once). extra items are written in the same transaction.
func (st *Store) PauseRun(ctx context.Context, ref RunRef, owner, reason string, resumeAfter time.Time, p Progress, extra ...types.TransactWriteItem) error {
	vals := map[string]types.AttributeValue{":paused": s(string(RunPaused)), ":why": s(reason)}
	set := "#st = :paused, pauseReason = :why REMOVE leaseOwner, leaseUntil"
	if !resumeAfter.IsZero() {
		vals[":resume"] = ms(resumeAfter)
		set = "#st = :paused, pauseReason = :why, resumeAfter = :resume REMOVE leaseOwner, leaseUntil"
	}
	upd, err := st.leasedUpdate(ref, owner, set, vals, p)
	if err != nil {
		return err
	}
	items := append([]types.TransactWriteItem{upd}, extra...)
	return st.leasedWrite(ctx, items, false, len(extra))
}

// FinishRun ends the run with a final status (succeeded, failed or cancelled), releases the connector's run slot
// and writes extra in the same transaction. It does not require the connection to be active: a run that fails
// because the grant was revoked still records why.
func (st *Store) FinishRun(ctx context.Context, ref RunRef, owner string, status RunStatus, p Progress, extra ...types.TransactWriteItem) error {
	if status.Active() {
		return fmt.Errorf("finish run: %q is not a final status", status)
	}
	vals := map[string]types.AttributeValue{":final": s(string(status))}
	upd, err := st.leasedUpdate(ref, owner, "#st = :final, finishedAt = :now REMOVE gsi1pk, gsi1sk, leaseOwner, leaseUntil, resumeAfter", vals, p)
	if err != nil {
		return err
	}
	// A run the export finishes is history like one the API finishes: it expires after the run history.
	upd = st.withRunTTL(upd)
	items := append([]types.TransactWriteItem{upd, st.releaseItem(ref.ConnectionID, ref.ConnectorID, ref.RunID, status)}, extra...)
	err = st.leasedWrite(ctx, items, false, len(extra)+1)
	var xf *ExtraFailedError
	if errors.As(err, &xf) {
		if xf.Index == 0 {
			// The connector no longer names this run (deleted concurrently): finishing the run alone is right.
			items = append(items[:1], items[2:]...)
			err = st.leasedWrite(ctx, items, false, len(extra))
		} else {
			err = &ExtraFailedError{Index: xf.Index - 1}
		}
	}
	return err
}
