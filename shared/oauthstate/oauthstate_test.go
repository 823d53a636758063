package oauthstate_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"jiraexport/infra/stacktest"
	"jiraexport/shared/oauthstate"
	"jiraexport/shared/table"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newStore(t *testing.T) (*oauthstate.Store, *clock, *stacktest.Env) {
	t.Helper()
	env := stacktest.New(t)
	c := &clock{t: time.Now()}
	return oauthstate.NewStore(env.Clients.DynamoDB, env.Table, table.WithClock(c.Now)), c, env
}

func TestConsume(t *testing.T) {
	t.Parallel()
	s, clk, _ := newStore(t)
	ctx := context.Background()
	otherNonce := strings.Repeat("A", 43)

	tests := []struct {
		name    string
		prepare func(state, nonce string) (useState, useNonce string)
		want    error
	}{
		{"valid", func(st, n string) (string, string) { return st, n }, nil},
		{"no cookie", func(st, n string) (string, string) { return st, "" }, oauthstate.ErrNoSession},
		{"foreign cookie", func(st, n string) (string, string) { return st, otherNonce }, oauthstate.ErrForeign},
		{"malformed cookie", func(st, n string) (string, string) { return st, "x" }, oauthstate.ErrForeign},
		{"unknown state", func(st, n string) (string, string) { return strings.Repeat("B", 43), n }, oauthstate.ErrUnknown},
		{"malformed state", func(st, n string) (string, string) { return "short", n }, oauthstate.ErrUnknown},
		{"replayed", func(st, n string) (string, string) {
			if _, err := s.Consume(ctx, st, n); err != nil {
				t.Fatalf("first Consume = %v, want nil", err)
			}
			return st, n
		}, oauthstate.ErrUsed},
		{"replayed from another browser", func(st, n string) (string, string) {
			if _, err := s.Consume(ctx, st, n); err != nil {
				t.Fatalf("first Consume = %v, want nil", err)
			}
			return st, otherNonce
		}, oauthstate.ErrForeign},
		{"expired", func(st, n string) (string, string) {
			clk.Advance(oauthstate.TTL + time.Second)
			return st, n
		}, oauthstate.ErrExpired},
		{"expired, another browser", func(st, n string) (string, string) {
			clk.Advance(oauthstate.TTL + time.Second)
			return st, otherNonce
		}, oauthstate.ErrForeign},
	}
	for _, tt := range tests {
		// Sequential: "expired" moves the shared clock.
		t.Run(tt.name, func(t *testing.T) {
			state, nonce, err := s.Begin(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			st, n := tt.prepare(state, nonce)
			f, err := s.Consume(ctx, st, n)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Consume(%s) = %v, want %v", tt.name, err, tt.want)
			}
			if err == nil && f.ConnectionID != "" {
				t.Errorf("Consume(%s).ConnectionID = %q, want empty", tt.name, f.ConnectionID)
			}
		})
	}
}

func TestForeignCookieDoesNotBurnState(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := context.Background()
	state, nonce, err := s.Begin(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Consume(ctx, state, strings.Repeat("C", 43)); !errors.Is(err, oauthstate.ErrForeign) {
		t.Fatalf("Consume(foreign) = %v, want ErrForeign", err)
	}
	if _, err := s.Consume(ctx, state, nonce); err != nil {
		t.Fatalf("Consume(own browser after foreign attempt) = %v, want nil", err)
	}
}

func TestStoresOnlyHashes(t *testing.T) {
	t.Parallel()
	s, _, env := newStore(t)
	ctx := context.Background()
	state, nonce, err := s.Begin(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	ticket, err := s.CreateReauth(ctx, "conn1")
	if err != nil {
		t.Fatal(err)
	}
	out, err := env.Clients.DynamoDB.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(env.Table)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 2 {
		t.Fatalf("items = %d, want 2", len(out.Items))
	}
	dump := dumpItems(out.Items)
	for name, secret := range map[string]string{"state": state, "nonce": nonce, "ticket": ticket} {
		if strings.Contains(dump, secret) {
			t.Errorf("table holds the plaintext %s", name)
		}
	}
	for _, it := range out.Items {
		if _, ok := it["ttl"]; !ok {
			t.Errorf("item %v has no ttl", it["pk"])
		}
	}
}

func TestReauthTicket(t *testing.T) {
	t.Parallel()
	s, clk, _ := newStore(t)
	ctx := context.Background()

	ticket, err := s.CreateReauth(ctx, "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	if u := oauthstate.ReauthURL("https://api.example.com/", ticket); u != "https://api.example.com/oauth/authorize?reauth="+ticket {
		t.Errorf("ReauthURL = %q", u)
	}
	// A ticket is not a state: it cannot complete a callback.
	if _, err := s.Consume(ctx, ticket, strings.Repeat("A", 43)); !errors.Is(err, oauthstate.ErrUnknown) {
		t.Errorf("Consume(ticket) = %v, want ErrUnknown", err)
	}
	// Looking spends nothing, however often (link previews, mail scanners).
	for range 3 {
		if id, err := s.PeekReauth(ctx, ticket); err != nil || id != "conn-1" {
			t.Fatalf("PeekReauth = %q, %v, want conn-1, nil", id, err)
		}
	}
	id, err := s.RedeemReauth(ctx, ticket)
	if err != nil || id != "conn-1" {
		t.Fatalf("RedeemReauth = %q, %v, want conn-1, nil", id, err)
	}
	if _, err := s.RedeemReauth(ctx, ticket); !errors.Is(err, oauthstate.ErrUsed) {
		t.Errorf("RedeemReauth(again) = %v, want ErrUsed", err)
	}
	if _, err := s.PeekReauth(ctx, ticket); !errors.Is(err, oauthstate.ErrUsed) {
		t.Errorf("PeekReauth(used) = %v, want ErrUsed", err)
	}
	state, nonce, err := s.Begin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.Consume(ctx, state, nonce)
	if err != nil || f.ConnectionID != "conn-1" {
		t.Fatalf("Consume(reauth state) = %+v, %v, want connection conn-1", f, err)
	}

	late, err := s.CreateReauth(ctx, "conn-2")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(oauthstate.TTL)
	if _, err := s.PeekReauth(ctx, late); !errors.Is(err, oauthstate.ErrExpired) {
		t.Errorf("PeekReauth(expired) = %v, want ErrExpired", err)
	}
	if _, err := s.RedeemReauth(ctx, late); !errors.Is(err, oauthstate.ErrExpired) {
		t.Errorf("RedeemReauth(expired) = %v, want ErrExpired", err)
	}
	if _, err := s.RedeemReauth(ctx, "not-a-ticket"); !errors.Is(err, oauthstate.ErrUnknown) {
		t.Errorf("RedeemReauth(malformed) = %v, want ErrUnknown", err)
	}
	for _, tk := range []string{"not-a-ticket", strings.Repeat("Q", 43), state} {
		if _, err := s.PeekReauth(ctx, tk); !errors.Is(err, oauthstate.ErrUnknown) {
			t.Errorf("PeekReauth(%q) = %v, want ErrUnknown", tk, err)
		}
	}
}

func TestSecretsAreDistinctAndWellFormed(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	seen := map[string]bool{}
	for range 20 {
		st, n, err := s.Begin(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{st, n} {
			if !oauthstate.WellFormed(v) || seen[v] {
				t.Fatalf("Begin returned %q: malformed or repeated", v)
			}
			seen[v] = true
		}
	}
}

// dumpItems renders items as JSON, binary attributes included, for substring scans.
func dumpItems(items []map[string]types.AttributeValue) string {
	var b strings.Builder
	for _, it := range items {
		var m map[string]any
		if err := attributevalue.UnmarshalMap(it, &m); err != nil {
			panic(err)
		}
		j, _ := json.Marshal(m)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}
