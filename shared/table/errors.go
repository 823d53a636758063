package table

import (
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Cancellation reason codes of TransactWriteItems (DynamoDB API reference, TransactionCanceledException).
const (
	CodeConditionFailed = "ConditionalCheckFailed"
	CodeConflict        = "TransactionConflict"
)

// Sentinels Classify wraps DynamoDB's own errors in, for callers that only need to know the kind.
var (
	// ErrConditionFailed: a conditional write's condition, or one of a transaction's, did not hold.
	ErrConditionFailed = errors.New("dynamodb: condition check failed")
	// ErrConflict: a transaction was cancelled because another transaction or write touched one of its items at
	// the same time; retrying it (with a short backoff) is safe.
	ErrConflict = errors.New("dynamodb: transaction conflict")
)

// ConditionFailed reports whether err is a failed conditional write (PutItem, UpdateItem, DeleteItem), and
// returns the item as it was when the request asked for it with ReturnValuesOnConditionCheckFailure ALL_OLD (nil
// when there was no item, or when it was not asked for).
func ConditionFailed(err error) (old Item, ok bool) {
	var cf *types.ConditionalCheckFailedException
	if !errors.As(err, &cf) {
		return nil, false
	}
	return cf.Item, true
}

// Reasons are the per-item cancellation reasons of a cancelled transaction, in the order of its items.
type Reasons []types.CancellationReason

// Cancelled returns the cancellation reasons when err is a cancelled TransactWriteItems, nil otherwise.
func Cancelled(err error) Reasons {
	var tc *types.TransactionCanceledException
	if !errors.As(err, &tc) {
		return nil
	}
	if tc.CancellationReasons == nil {
		return Reasons{}
	}
	return Reasons(tc.CancellationReasons)
}

// Code is the reason code of item i ("" when there is none; "None" when that item was fine).
func (r Reasons) Code(i int) string {
	if i < 0 || i >= len(r) {
		return ""
	}
	return aws.ToString(r[i].Code)
}

// FailedAt reports whether item i's condition failed.
func (r Reasons) FailedAt(i int) bool { return r.Code(i) == CodeConditionFailed }

// Old is item i as it was, when its condition failed and the item asked for ReturnValuesOnConditionCheckFailure.
func (r Reasons) Old(i int) Item {
	if i < 0 || i >= len(r) {
		return nil
	}
	return r[i].Item
}

// Failed reports whether any item's condition failed.
func (r Reasons) Failed() bool { return r.has(CodeConditionFailed) }

// Conflicted reports whether a concurrent write cancelled the transaction.
func (r Reasons) Conflicted() bool { return r.has(CodeConflict) }

func (r Reasons) has(code string) bool {
	for i := range r {
		if r.Code(i) == code {
			return true
		}
	}
	return false
}

// classified keeps DynamoDB's error and adds the sentinel it means.
type classified struct {
	err  error
	kind error
}

func (c *classified) Error() string   { return c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.err, c.kind} }

// Classify returns err such that errors.Is(err, ErrConditionFailed) holds for a failed conditional write or a
// transaction cancelled by a failed condition, and errors.Is(err, ErrConflict) for a transaction cancelled by a
// conflict (a failed condition wins when both happened: retrying cannot help). The SDK's error stays reachable
// through errors.As. Other errors, and nil, come back as they are.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := ConditionFailed(err); ok {
		return &classified{err: err, kind: ErrConditionFailed}
	}
	r := Cancelled(err)
	switch {
	case r.Failed():
		return &classified{err: err, kind: ErrConditionFailed}
	case r.Conflicted():
		return &classified{err: err, kind: ErrConflict}
	}
	return err
}
