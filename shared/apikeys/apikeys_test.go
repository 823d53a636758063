package apikeys_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/infra/stacktest"
	"jiraexport/shared/apikeys"
	"jiraexport/shared/connections"
	"jiraexport/shared/table"
)

type fixture struct {
	env   *stacktest.Env
	keys  *apikeys.Store
	conns *connections.Store
	now   time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := stacktest.New(t)
	f := &fixture{env: env, now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	var mu sync.Mutex // concurrent issues read the clock together
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		f.now = f.now.Add(time.Second)
		return f.now
	}
	f.keys = apikeys.NewStore(env.Clients.DynamoDB, env.Table, table.WithClock(clock))
	f.conns = connections.NewStore(env.Clients.DynamoDB, env.Table)
	return f
}

func (f *fixture) connection(t *testing.T) string {
	t.Helper()
	c := &connections.Connection{}
	if err := f.conns.Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func TestIssueAuthenticate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	connID := f.connection(t)

	key, k, err := f.keys.Issue(ctx, connID, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "jxk_") || len(key) != apikeys.KeyLen || !apikeys.WellFormed(key) {
		t.Fatalf("Issue = %q, want jxk_ + 43 base64url chars", key)
	}
	if k.Hint != key[len(key)-4:] || k.ConnectionID != connID || k.Name != "ci" {
		t.Errorf("Issue key = %+v, want hint %q, connection %q, name ci", k, key[len(key)-4:], connID)
	}

	got, err := f.keys.Authenticate(ctx, key)
	if err != nil || got.ID != k.ID || got.ConnectionID != connID {
		t.Fatalf("Authenticate(issued) = %+v, %v, want key %s of %s", got, err, k.ID, connID)
	}

	flip := []byte(key)
	flip[10] ^= 1
	tests := []struct{ name, key string }{
		{"empty", ""},
		{"no prefix", strings.TrimPrefix(key, "jxk_")},
		{"other prefix", "jxx_" + key[4:]},
		{"one char changed", string(flip)},
		{"too long", key + "A"},
		{"truncated", key[:len(key)-1]},
		{"bad alphabet", key[:len(key)-1] + "="},
	}
	for _, tt := range tests {
		if _, err := f.keys.Authenticate(ctx, tt.key); !errors.Is(err, apikeys.ErrInvalid) {
			t.Errorf("Authenticate(%s) = %v, want ErrInvalid", tt.name, err)
		}
	}

	if _, _, err := f.keys.Issue(ctx, "no-such-connection", "x"); !errors.Is(err, apikeys.ErrNoConnection) {
		t.Errorf("Issue(unknown connection) = %v, want ErrNoConnection", err)
	}
}

func TestSeveralKeysRevokeAndDeleteAll(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	connID, other := f.connection(t), f.connection(t)

	var plain []string
	var ids []string
	for _, name := range []string{"a", "b", "c"} {
		p, k, err := f.keys.Issue(ctx, connID, name)
		if err != nil {
			t.Fatal(err)
		}
		plain, ids = append(plain, p), append(ids, k.ID)
	}
	otherKey, _, err := f.keys.Issue(ctx, other, "other")
	if err != nil {
		t.Fatal(err)
	}

	list, err := f.keys.List(ctx, connID)
	if err != nil || len(list) != 3 || list[0].Name != "a" || list[2].Name != "c" {
		t.Fatalf("List = %+v, %v, want a, b, c in creation order", list, err)
	}

	if err := f.keys.Revoke(ctx, connID, ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := f.keys.Revoke(ctx, connID, ids[1]); err != nil {
		t.Errorf("Revoke(again) = %v, want nil", err)
	}
	if err := f.keys.Revoke(ctx, connID, "nope"); !errors.Is(err, apikeys.ErrNotFound) {
		t.Errorf("Revoke(unknown) = %v, want ErrNotFound", err)
	}
	// A connection cannot revoke another's key.
	if err := f.keys.Revoke(ctx, other, ids[0]); !errors.Is(err, apikeys.ErrNotFound) {
		t.Errorf("Revoke(other connection's key) = %v, want ErrNotFound", err)
	}
	for i, p := range plain {
		_, err := f.keys.Authenticate(ctx, p)
		if wantValid := i != 1; (err == nil) != wantValid {
			t.Errorf("Authenticate(key %d) = %v, want valid %v", i, err, wantValid)
		}
	}
	list, _ = f.keys.List(ctx, connID)
	for _, k := range list {
		if (k.RevokedAt != nil) != (k.ID == ids[1]) {
			t.Errorf("List: key %s RevokedAt = %v", k.Name, k.RevokedAt)
		}
	}

	if err := f.keys.DeleteAll(ctx, connID); err != nil {
		t.Fatal(err)
	}
	if err := f.keys.DeleteAll(ctx, connID); err != nil {
		t.Errorf("DeleteAll(again) = %v, want nil", err)
	}
	if list, _ := f.keys.List(ctx, connID); len(list) != 0 {
		t.Errorf("List after DeleteAll = %d keys, want 0", len(list))
	}
	if _, err := f.keys.Authenticate(ctx, plain[0]); !errors.Is(err, apikeys.ErrInvalid) {
		t.Errorf("Authenticate after DeleteAll = %v, want ErrInvalid", err)
	}
	if _, err := f.keys.Authenticate(ctx, otherKey); err != nil {
		t.Errorf("other connection's key after DeleteAll = %v, want valid", err)
	}

	// Nothing of the deleted keys remains anywhere; only hashes of the survivor are stored.
	out, err := f.env.Clients.DynamoDB.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(f.env.Table)})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(otherKey))
	var apikeyItems int
	for _, it := range out.Items {
		pk := it["pk"].(*types.AttributeValueMemberS).Value
		for _, av := range it {
			if s, ok := av.(*types.AttributeValueMemberS); ok && strings.Contains(s.Value, "jxk_") {
				t.Errorf("item %s stores a plaintext key", pk)
			}
		}
		if strings.HasPrefix(pk, "APIKEY#") {
			apikeyItems++
			if pk != "APIKEY#"+hex.EncodeToString(sum[:]) {
				t.Errorf("hash item %s left behind", pk)
			}
		}
	}
	if apikeyItems != 1 {
		t.Errorf("hash items = %d, want 1 (the other connection's)", apikeyItems)
	}
}

func TestIssueItemsWithConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	c := &connections.Connection{ID: connections.NewID()}
	plain, _, items, err := f.keys.IssueItems(c.ID, "first")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.conns.Create(ctx, c, items...); err != nil {
		t.Fatal(err)
	}
	if k, err := f.keys.Authenticate(ctx, plain); err != nil || k.ConnectionID != c.ID {
		t.Fatalf("Authenticate = %+v, %v, want the new connection's key", k, err)
	}
	// The same connection again: the whole transaction fails, so no second key appears.
	plain2, _, items2, err := f.keys.IssueItems(c.ID, "second")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.conns.Create(ctx, &connections.Connection{ID: c.ID}, items2...); !errors.Is(err, connections.ErrExists) {
		t.Fatalf("Create(duplicate) = %v, want ErrExists", err)
	}
	if _, err := f.keys.Authenticate(ctx, plain2); !errors.Is(err, apikeys.ErrInvalid) {
		t.Errorf("key of the failed transaction authenticates: %v, want ErrInvalid", err)
	}
	if list, _ := f.keys.List(ctx, c.ID); len(list) != 1 {
		t.Errorf("keys = %d, want 1", len(list))
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	env := stacktest.New(b)
	s := apikeys.NewStore(env.Clients.DynamoDB, env.Table)
	conns := connections.NewStore(env.Clients.DynamoDB, env.Table)
	c := &connections.Connection{}
	if err := conns.Create(context.Background(), c); err != nil {
		b.Fatal(err)
	}
	key, _, err := s.Issue(context.Background(), c.ID, "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Authenticate(context.Background(), key); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIssueLimitConcurrent issues more keys than allowed at once: exactly MaxActive succeed, the rest are
// ErrTooMany, and a revoke frees one slot.
func TestIssueLimitConcurrent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	connID := f.connection(t)
	const tries = apikeys.MaxActive + 6
	errs := make(chan error, tries)
	ids := make(chan string, tries)
	for range tries {
		go func() {
			_, k, err := f.keys.Issue(ctx, connID, "k")
			if err == nil {
				ids <- k.ID
			}
			errs <- err
		}()
	}
	var ok, tooMany int
	for range tries {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, apikeys.ErrTooMany):
			tooMany++
		default:
			t.Errorf("Issue = %v, want nil or ErrTooMany", err)
		}
	}
	if ok != apikeys.MaxActive || tooMany != tries-apikeys.MaxActive {
		t.Fatalf("concurrent Issue: %d issued, %d ErrTooMany; want %d and %d", ok, tooMany, apikeys.MaxActive, tries-apikeys.MaxActive)
	}
	if list, err := f.keys.List(ctx, connID); err != nil || len(list) != apikeys.MaxActive {
		t.Errorf("List = %d keys, %v; want %d", len(list), err, apikeys.MaxActive)
	}
	id := <-ids
	for range 2 { // revoking twice releases one slot, not two
		if err := f.keys.Revoke(ctx, connID, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := f.keys.Issue(ctx, connID, "after revoke"); err != nil {
		t.Errorf("Issue after a revoke = %v, want nil", err)
	}
	if _, _, err := f.keys.Issue(ctx, connID, "one too many"); !errors.Is(err, apikeys.ErrTooMany) {
		t.Errorf("Issue over the limit = %v, want ErrTooMany", err)
	}
}

func TestIssueDisconnectedConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	connID := f.connection(t)
	_, err := f.env.Clients.DynamoDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(f.env.Table),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: connections.PK(connID)},
			"sk": &types.AttributeValueMemberS{Value: connections.MetaSK},
		},
		UpdateExpression:          aws.String("SET #st = :d"),
		ExpressionAttributeNames:  map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":d": &types.AttributeValueMemberS{Value: string(connections.StatusDisconnected)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.keys.Issue(ctx, connID, "late"); !errors.Is(err, apikeys.ErrNoConnection) {
		t.Errorf("Issue(disconnected connection) = %v, want ErrNoConnection", err)
	}
}
