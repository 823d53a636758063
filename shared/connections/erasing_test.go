package connections_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/infra/stacktest"
	"jiraexport/shared/connections"
	"jiraexport/shared/table"
)

// index returns the connection item's index attributes (gsi1pk, gsi1sk).
func index(t *testing.T, env *stacktest.Env, id string) (string, string) {
	t.Helper()
	out, err := env.Clients.DynamoDB.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: &env.Table, ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: connections.PK(id)}, "sk": &types.AttributeValueMemberS{Value: connections.MetaSK}}})
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := out.Item["gsi1pk"].(*types.AttributeValueMemberS)
	sk, _ := out.Item["gsi1sk"].(*types.AttributeValueMemberS)
	if pk == nil || sk == nil {
		return "", ""
	}
	return pk.Value, sk.Value
}

// TestRevokedIndex: a rejected grant lists the connection under REVOKED since its first flag; re-authorisation
// removes it; the erasure fence moves it to ERASING and keeps its first finishAfter.
func TestRevokedIndex(t *testing.T) {
	t.Parallel()
	env := stacktest.New(t)
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	s := connections.NewStore(env.Clients.DynamoDB, env.Table, table.WithClock(func() time.Time { return now }))
	ctx := context.Background()
	c := &connections.Connection{AccountFingerprint: "fp-of-the-owner"}
	if err := s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	if pk, _ := index(t, env, c.ID); pk != "" {
		t.Fatalf("a new connection is indexed under %q", pk)
	}
	if err := s.MarkGrantReauthRequired(ctx, c.ID, "invalid_grant", time.Time{}); err != nil {
		t.Fatal(err)
	}
	first := connections.IndexKey(now, c.ID)
	now = now.Add(time.Hour)
	if err := s.MarkGrantReauthRequired(ctx, c.ID, "invalid_grant", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if pk, sk := index(t, env, c.ID); pk != connections.RevokedGSIPK || sk != first {
		t.Errorf("revoked index = %q %q, want %q %q (the first flag)", pk, sk, connections.RevokedGSIPK, first)
	}
	if _, err := s.MarkErasing(ctx, c.ID, connections.FenceOptions{RevokedBefore: now.Add(-2 * time.Hour)}); !errors.Is(err, connections.ErrNotRevoked) {
		t.Errorf("automatic fence of a grant revoked an hour ago, with a 2-hour limit = %v, want ErrNotRevoked", err)
	}
	if _, err := s.Reauthorize(ctx, c.ID, nil, now, "fp-of-the-owner"); err != nil {
		t.Fatal(err)
	}
	if pk, _ := index(t, env, c.ID); pk != "" {
		t.Errorf("re-authorised connection still indexed under %q", pk)
	}
	if _, err := s.MarkErasing(ctx, c.ID, connections.FenceOptions{RevokedBefore: now.Add(time.Hour)}); !errors.Is(err, connections.ErrNotRevoked) {
		t.Errorf("automatic fence of a re-authorised connection = %v, want ErrNotRevoked", err)
	}

	fa, err := s.MarkErasing(ctx, c.ID, connections.FenceOptions{})
	if err != nil || !fa.IsZero() {
		t.Fatalf("first fence = %v, %v; want no finishAfter yet", fa, err)
	}
	want := now.Add(15 * time.Minute)
	if got, err := s.SetFinishAfter(ctx, c.ID, want); err != nil || !got.Equal(want) {
		t.Fatalf("SetFinishAfter = %v, %v", got, err)
	}
	if got, _ := s.SetFinishAfter(ctx, c.ID, want.Add(time.Hour)); !got.Equal(want) {
		t.Errorf("second SetFinishAfter = %v, want the first %v", got, want)
	}
	if fa, err := s.MarkErasing(ctx, c.ID, connections.FenceOptions{}); err != nil || !fa.Equal(want) {
		t.Errorf("resumed fence = %v, %v; want %v", fa, err, want)
	}
	if pk, sk := index(t, env, c.ID); pk != connections.ErasingGSIPK || sk != connections.IndexKey(want, c.ID) {
		t.Errorf("erasing index = %q %q", pk, sk)
	}
	got, err := s.Get(ctx, c.ID)
	if err != nil || got.Status != connections.StatusDisconnected || got.StatusReason != connections.ReasonErasing {
		t.Errorf("fenced connection = %+v, %v", got, err)
	}
	if _, err := s.Reauthorize(ctx, c.ID, nil, now, "fp-of-the-owner"); !errors.Is(err, connections.ErrDisconnected) {
		t.Errorf("Reauthorize during erasure = %v, want ErrDisconnected", err)
	}
	if _, err := s.MarkErasing(ctx, "missing", connections.FenceOptions{}); !errors.Is(err, connections.ErrNotFound) {
		t.Errorf("MarkErasing(missing) = %v, want ErrNotFound", err)
	}
}
