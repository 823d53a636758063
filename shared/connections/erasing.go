package connections

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

// Sparse "due" index partitions the connection item joins (the index's other partitions are the dispatcher's).
const (
	// RevokedGSIPK lists connections whose grant was rejected (reauth_required), sorted by when: a grant that
	// stays revoked RevokedGrantDays is erased automatically (shared/erasure.ExpiredRevoked).
	RevokedGSIPK = "REVOKED"
	// ErasingGSIPK lists connections whose erasure began and has not finished, sorted by when it may finish
	// (shared/erasure.Pending), so an interrupted erasure is always found again.
	ErasingGSIPK = "ERASING"
)

// ReasonErasing is the status reason of a connection being erased. Erasure fences a connection with the
// disconnected status rather than a status of its own because every guard (connector, run and key
// transactions, the API's authentication, re-authorisation, the OAuth callback) already refuses a disconnected
// connection; the reason tells the two apart.
const ReasonErasing = "erasing"

// IndexKey is the sort key of the connection in one of the partitions above: fixed-width UTC seconds, so the
// index sorts by time, then the id, so keys are unique.
func IndexKey(t time.Time, id string) string { return t.UTC().Format(time.RFC3339) + "#" + id }

// FenceOptions qualify MarkErasing.
type FenceOptions struct {
	// RevokedBefore, when set, fences only a connection still listed as revoked since before that time: the
	// automatic erasure of a grant left revoked must not erase a connection its user re-authorised meanwhile.
	RevokedBefore time.Time
}

// ErrNotRevoked is returned by MarkErasing with RevokedBefore when the connection is no longer (or not long
// enough) revoked.
var ErrNotRevoked = errors.New("connection is not revoked long enough")

// MarkErasing fences the connection for erasure: status disconnected with reason erasing, erasingSince set once,
// and listed under ErasingGSIPK so an interrupted erasure is found again. It returns the finishAfter an earlier
// fence stored with SetFinishAfter (zero when none), or ErrNotFound when there is no connection.
func (s *Store) MarkErasing(ctx context.Context, id string, o FenceOptions) (finishAfter time.Time, err error) {
	now := s.t.Now()
	cond := "attribute_exists(pk)"
	vals := table.Item{
		":disc": table.S(string(StatusDisconnected)),
		":why":  table.S(ReasonErasing),
		":now":  table.S(table.FormatTime(now)),
		":gpk":  table.S(ErasingGSIPK),
		":gsk":  table.S(IndexKey(now, id)),
		":one":  table.N(1),
	}
	if !o.RevokedBefore.IsZero() {
		// An erasure already under way (a resumed one) goes on.
		cond += " AND (#st = :rr AND gsi1pk = :revoked AND gsi1sk < :before OR statusReason = :why)"
		vals[":rr"] = table.S(string(StatusReauthRequired))
		vals[":revoked"] = table.S(RevokedGSIPK)
		vals[":before"] = table.S(o.RevokedBefore.UTC().Format(time.RFC3339))
	}
	out, err := s.t.DB().UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: s.t.TableName(),
		Key:       key(id),
		UpdateExpression: aws.String("SET #st = :disc, statusReason = :why, updatedAt = :now, " +
			"erasingSince = if_not_exists(erasingSince, :now), gsi1pk = :gpk, gsi1sk = if_not_exists(finishKey, :gsk) ADD v :one"),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            map[string]string{"#st": "status"},
		ExpressionAttributeValues:           vals,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		if old, failed := table.ConditionFailed(err); failed {
			if old == nil {
				return time.Time{}, fmt.Errorf("fence connection %s: %w", id, ErrNotFound)
			}
			return time.Time{}, fmt.Errorf("fence connection %s: %w", id, ErrNotRevoked)
		}
		return time.Time{}, fmt.Errorf("fence connection %s: %w", id, err)
	}
	if v, ok := out.Attributes["finishAfter"].(*types.AttributeValueMemberS); ok {
		return table.ParseTime(v.Value), nil
	}
	return time.Time{}, nil
}

// SetFinishAfter records, once, the time before which a fenced connection's erasure must not finish (writers that
// were running at the fence may still write until then), and re-sorts it in the ErasingGSIPK partition. It returns
// the stored time: the first one recorded wins.
func (s *Store) SetFinishAfter(ctx context.Context, id string, t time.Time) (time.Time, error) {
	out, err := s.t.DB().UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: s.t.TableName(),
		Key:       key(id),
		UpdateExpression: aws.String("SET finishAfter = if_not_exists(finishAfter, :t), " +
			"finishKey = if_not_exists(finishKey, :k), gsi1sk = if_not_exists(finishKey, :k)"),
		ConditionExpression: aws.String("attribute_exists(pk) AND statusReason = :why"),
		ExpressionAttributeValues: table.Item{
			":t":   table.S(table.FormatTime(t)),
			":k":   table.S(IndexKey(t, id)),
			":why": table.S(ReasonErasing),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		if _, failed := table.ConditionFailed(err); failed {
			return time.Time{}, fmt.Errorf("set erasure time of connection %s: %w", id, ErrNotFound)
		}
		return time.Time{}, fmt.Errorf("set erasure time of connection %s: %w", id, err)
	}
	v, _ := out.Attributes["finishAfter"].(*types.AttributeValueMemberS)
	if v == nil {
		return t, nil
	}
	return table.ParseTime(v.Value), nil
}
