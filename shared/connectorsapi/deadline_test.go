package connectorsapi_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"jiraexport/shared/apikeys"
	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/connectorsapi"
)

// Fakes set only what a test needs; a method left unset panics through the nil embedded interface.
type fakeKeys struct {
	connectorsapi.Keys
	authenticate func(ctx context.Context, plaintext string) (*apikeys.Key, error)
}

func (f fakeKeys) Authenticate(ctx context.Context, plaintext string) (*apikeys.Key, error) {
	return f.authenticate(ctx, plaintext)
}

type fakeConnections struct {
	connectorsapi.Connections
	get func(ctx context.Context, id string) (*connections.Connection, error)
}

func (f fakeConnections) Get(ctx context.Context, id string) (*connections.Connection, error) {
	return f.get(ctx, id)
}

type fakeStore struct {
	connectorsapi.Store
	list func(ctx context.Context, connID string, limit int, cursor string) ([]connectors.Connector, string, error)
}

func (f fakeStore) List(ctx context.Context, connID string, limit int, cursor string) ([]connectors.Connector, string, error) {
	return f.list(ctx, connID, limit, cursor)
}

// stall blocks like a call that never answers: until ctx ends, or (without a request deadline) gives up after a
// while so the test fails instead of hanging.
func stall(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(3 * time.Second):
		return errors.New("stalled call gave up")
	}
}

// TestRequestDeadline: a request whose dependencies do not answer gets a 504 problem within RequestTimeout,
// before API Gateway's own timeout would cut it off without one.
func TestRequestDeadline(t *testing.T) {
	t.Parallel()
	key := "jxk_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	okKeys := fakeKeys{authenticate: func(context.Context, string) (*apikeys.Key, error) {
		return &apikeys.Key{ID: "k", ConnectionID: "c"}, nil
	}}
	okConns := fakeConnections{get: func(context.Context, string) (*connections.Connection, error) {
		return &connections.Connection{ID: "c", Status: connections.StatusActive}, nil
	}}
	tests := []struct {
		name  string
		path  string
		keys  connectorsapi.Keys
		store connectorsapi.Store
	}{
		{"authentication stalls", "/v1/connection", fakeKeys{authenticate: func(ctx context.Context, _ string) (*apikeys.Key, error) {
			return nil, stall(ctx)
		}}, nil},
		{"store stalls", "/v1/connectors", okKeys, fakeStore{list: func(ctx context.Context, _ string, _ int, _ string) ([]connectors.Connector, string, error) {
			return nil, "", stall(ctx)
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := connectorsapi.New(connectorsapi.Config{Keys: tt.keys, Connections: okConns, Store: tt.store,
				RequestTimeout: 100 * time.Millisecond})
			rec := httptest.NewRecorder()
			r := httptest.NewRequest("GET", tt.path, nil)
			r.Header.Set("Authorization", "Bearer "+key)
			start := time.Now()
			h.ServeHTTP(rec, r)
			got := resp{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
			checkResponse(t, "GET", tt.path, got)
			if got.status != 504 || got.str(t, "type") != "https://jiraexport.dev/problems/timeout" {
				t.Errorf("GET %s (%s) = %d %s, want a 504 timeout problem", tt.path, tt.name, got.status, got.body)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("GET %s (%s) answered after %v, want about the 100ms deadline", tt.path, tt.name, d)
			}
		})
	}
}
