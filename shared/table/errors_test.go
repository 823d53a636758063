package table_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/infra/stacktest"
	"jiraexport/shared/table"
)

func newTable(t *testing.T) *table.Table {
	t.Helper()
	env := stacktest.New(t)
	return table.New(env.Clients.DynamoDB, env.Table)
}

func put(t *testing.T, tb *table.Table, item table.Item) {
	t.Helper()
	if _, err := tb.DB().PutItem(context.Background(), &dynamodb.PutItemInput{TableName: tb.TableName(), Item: item}); err != nil {
		t.Fatal(err)
	}
}

// Real conditional writes: the classification must see through DynamoDB Local's actual errors, wrapped as
// stores wrap them.
func TestConditionFailed(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	ctx := context.Background()
	pk, sk := table.ConnPK("c1"), table.SKMeta
	put(t, tb, table.Item{"pk": table.S(pk), "sk": table.S(sk), "v": table.N(3)})

	for _, tc := range []struct {
		name     string
		key      table.Item
		allOld   bool
		failed   bool
		wantOldV int64
	}{
		{"existing item, old asked for", table.Key(pk, sk), true, true, 3},
		{"existing item, old not asked for", table.Key(pk, sk), false, true, 0},
		{"missing item", table.Key(pk, "NOPE"), true, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &dynamodb.UpdateItemInput{
				TableName: tb.TableName(), Key: tc.key,
				UpdateExpression:          aws.String("SET v = :nv"),
				ConditionExpression:       aws.String("attribute_exists(pk) AND v = :v"),
				ExpressionAttributeValues: table.Item{":v": table.N(2), ":nv": table.N(4)},
			}
			if tc.allOld {
				in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
			}
			_, err := tb.DB().UpdateItem(ctx, in)
			err = fmt.Errorf("store: %w", err)
			old, ok := table.ConditionFailed(err)
			if ok != tc.failed {
				t.Fatalf("ConditionFailed = %v for %v", ok, err)
			}
			if got := table.IntOf(old["v"]); got != tc.wantOldV {
				t.Errorf("old v = %d, want %d", got, tc.wantOldV)
			}
			if (old == nil) != (tc.wantOldV == 0) {
				t.Errorf("old item %v", old)
			}
			if c := table.Classify(err); !errors.Is(c, table.ErrConditionFailed) || errors.Is(c, table.ErrConflict) {
				t.Errorf("Classify(%v) = %v", err, c)
			}
			if table.Cancelled(err) != nil {
				t.Error("a single write is no cancelled transaction")
			}
		})
	}
	if _, ok := table.ConditionFailed(errors.New("other")); ok {
		t.Error("any error taken for a failed condition")
	}
	if c := table.Classify(errors.New("other")); errors.Is(c, table.ErrConditionFailed) || errors.Is(c, table.ErrConflict) {
		t.Error("any error classified")
	}
	if table.Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
}

// A real TransactWriteItems cancelled by the condition of its second item: the reasons name that item and carry
// its old image.
func TestCancelled(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	ctx := context.Background()
	pk := table.ConnPK("c1")
	put(t, tb, table.Item{"pk": table.S(pk), "sk": table.S(table.SKConnectors), "n": table.N(20)})

	items := []types.TransactWriteItem{
		{Put: &types.Put{TableName: tb.TableName(), Item: table.Key(pk, table.ConnectorSK("x1")),
			ConditionExpression: aws.String("attribute_not_exists(pk)")}},
		{Update: &types.Update{TableName: tb.TableName(), Key: table.Key(pk, table.SKConnectors),
			UpdateExpression:                    aws.String("SET #n = #n + :one"),
			ConditionExpression:                 aws.String("#n < :max"),
			ExpressionAttributeNames:            map[string]string{"#n": "n"},
			ExpressionAttributeValues:           table.Item{":one": table.N(1), ":max": table.N(20)},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld}},
	}
	_, err := tb.DB().TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	err = fmt.Errorf("create connector: %w", err)
	r := table.Cancelled(err)
	if r == nil {
		t.Fatalf("not a cancellation: %v", err)
	}
	if r.FailedAt(0) || !r.FailedAt(1) || r.FailedAt(2) || r.FailedAt(-1) || !r.Failed() || r.Conflicted() {
		t.Errorf("reasons %q %q", r.Code(0), r.Code(1))
	}
	if got := table.IntOf(r.Old(1)["n"]); got != 20 {
		t.Errorf("old n = %d", got)
	}
	if r.Old(5) != nil {
		t.Error("old image of an item the transaction does not have")
	}
	if !errors.Is(table.Classify(err), table.ErrConditionFailed) {
		t.Error("cancelled by a condition: not ErrConditionFailed")
	}
	if _, ok := table.ConditionFailed(err); ok {
		t.Error("a cancelled transaction is no failed single write")
	}

	// Nothing of the transaction was written.
	var got struct{ N int64 }
	if ok, err := tb.Get(ctx, pk, table.ConnectorSK("x1"), &got); err != nil || ok {
		t.Fatalf("cancelled put written: %v %v", ok, err)
	}

	// Once the condition holds, the same transaction goes through.
	put(t, tb, table.Item{"pk": table.S(pk), "sk": table.S(table.SKConnectors), "n": table.N(3)})
	if _, err := tb.DB().TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items}); err != nil {
		t.Fatal(err)
	}
	if ok, err := tb.Get(ctx, pk, table.SKConnectors, &got); err != nil || !ok || got.N != 4 {
		t.Fatalf("count after transaction: %+v %v %v", got, ok, err)
	}
}

// A conflict is what DynamoDB reports when concurrent transactions touch one item; DynamoDB Local does not
// produce it on demand, so the error is the SDK's own type built as the service sends it.
func TestConflictClassified(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("issue: %w", &types.TransactionCanceledException{CancellationReasons: []types.CancellationReason{
		{Code: aws.String("None")}, {Code: aws.String(table.CodeConflict)},
	}})
	r := table.Cancelled(err)
	if !r.Conflicted() || r.Failed() || r.Code(0) != "None" {
		t.Fatalf("reasons %v", r)
	}
	c := table.Classify(err)
	if !errors.Is(c, table.ErrConflict) || errors.Is(c, table.ErrConditionFailed) {
		t.Errorf("Classify = %v", c)
	}
	var tc *types.TransactionCanceledException
	if !errors.As(c, &tc) {
		t.Error("the SDK's error must stay reachable")
	}
	if r := table.Cancelled(&types.TransactionCanceledException{}); r == nil || r.Failed() {
		t.Error("a cancellation without reasons is still a cancellation")
	}
}

func TestBatchAndPrefix(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	ctx := context.Background()
	pk := table.ConnPK("c1")
	var keys []table.Item
	for i := range 130 { // more than one BatchGetItem (100) and many BatchWriteItem (25)
		sk := table.IdxSK("x1", fmt.Sprint(10000+i))
		put(t, tb, table.Item{"pk": table.S(pk), "sk": table.S(sk), "updated": table.N(int64(i))})
		keys = append(keys, table.Key(pk, sk))
	}
	put(t, tb, table.Item{"pk": table.S(pk), "sk": table.S(table.SyncSK("x1"))})

	seen := map[string]bool{}
	err := tb.BatchGet(ctx, append(keys, table.Key(pk, "IDX#x1#missing")), "sk", func(items []table.Item) error {
		for _, it := range items {
			seen[table.StringOf(it["sk"])] = true
			if _, ok := it["updated"]; ok {
				t.Error("projection ignored")
			}
		}
		return nil
	})
	if err != nil || len(seen) != 130 {
		t.Fatalf("batch get: %d items, %v", len(seen), err)
	}

	if err := tb.DeletePrefix(ctx, pk, table.IdxPrefix("x1")); err != nil {
		t.Fatal(err)
	}
	for prefix, want := range map[string]int{table.PrefixIdx: 0, table.PrefixSync: 1} {
		n := 0
		if err := tb.EachPage(ctx, tb.PrefixQuery(pk, prefix), func(items []table.Item) error {
			n += len(items)
			return nil
		}); err != nil || n != want {
			t.Errorf("after DeletePrefix: %d items under %s, want %d (%v)", n, prefix, want, err)
		}
	}
}
