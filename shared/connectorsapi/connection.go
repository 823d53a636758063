package connectorsapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"jiraexport/shared/apikeys"
	"jiraexport/shared/connections"
	"jiraexport/shared/oauthstate"
	"jiraexport/shared/problem"
)

type siteOut struct {
	ID     string   `json:"id"`
	URL    string   `json:"url"`
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

type tokenOut struct {
	ExpiresAt time.Time `json:"expiresAt"`
	Scope     string    `json:"scope"`
}

type grantOut struct {
	StartedAt        time.Time `json:"startedAt"`
	ExpiresAt        time.Time `json:"expiresAt"`
	ExpiresInSeconds int64     `json:"expiresInSeconds"`
}

type connectionOut struct {
	ID                      string    `json:"id"`
	Status                  string    `json:"status"`
	StatusReason            *string   `json:"statusReason"`
	ReauthorizationRequired bool      `json:"reauthorizationRequired"`
	Sites                   []siteOut `json:"sites"`
	CreatedAt               time.Time `json:"createdAt"`
	Token                   *tokenOut `json:"token"`
	Grant                   *grantOut `json:"grant"`
}

func (a *api) getConnection(w http.ResponseWriter, r *http.Request) error {
	conn := from(r.Context()).conn
	out := connectionOut{ID: conn.ID, Status: string(conn.Status), CreatedAt: conn.CreatedAt, Sites: []siteOut{},
		ReauthorizationRequired: conn.Status == connections.StatusReauthRequired}
	if conn.StatusReason != "" {
		out.StatusReason = &conn.StatusReason
	}
	for _, s := range conn.Sites {
		scopes := s.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		out.Sites = append(out.Sites, siteOut{ID: s.CloudID, URL: s.URL, Name: s.Name, Scopes: scopes})
	}
	started := conn.GrantStartedAt
	info, err := a.Tokens.Info(r.Context(), conn.ID)
	switch {
	case err == nil:
		out.Token = &tokenOut{ExpiresAt: info.Expiry.UTC(), Scope: info.Scope}
		if !info.FamilyStartedAt.IsZero() {
			started = info.FamilyStartedAt
		}
	case a.Tokens.ReauthRequired(err):
		out.ReauthorizationRequired = true
	default:
		// No token record (or it cannot be read): report the connection without token details rather than fail.
		a.Log.WarnContext(r.Context(), "token metadata unavailable", "connectionId", conn.ID, "error", err)
		out.ReauthorizationRequired = true
	}
	if !started.IsZero() && !out.ReauthorizationRequired {
		exp := started.Add(GrantLifetime).UTC()
		out.Grant = &grantOut{StartedAt: started.UTC(), ExpiresAt: exp, ExpiresInSeconds: max(0, int64(exp.Sub(a.Now()).Seconds()))}
	}
	return writeJSON(w, http.StatusOK, out)
}

type reauthOut struct {
	AuthorizeURL string    `json:"authorizeUrl"`
	ExpiresAt    time.Time `json:"expiresAt"`
}

func (a *api) reauthorize(w http.ResponseWriter, r *http.Request) error {
	conn := from(r.Context()).conn
	now := a.Now()
	ticket, err := a.Reauth.CreateReauth(r.Context(), conn.ID)
	if err != nil {
		return problem.Wrap(err)
	}
	u := oauthstate.ReauthURL(a.baseURL(r), ticket)
	return writeJSON(w, http.StatusCreated, reauthOut{AuthorizeURL: u, ExpiresAt: now.Add(oauthstate.TTL).UTC()})
}

type keyOut struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Hint      string     `json:"hint"`
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt"`
	Current   bool       `json:"current"`
}

type newKeyOut struct {
	keyOut
	Key string `json:"key"`
}

func keyView(k *apikeys.Key, current string) keyOut {
	return keyOut{ID: k.ID, Name: k.Name, Hint: k.Hint, CreatedAt: k.CreatedAt.UTC(), RevokedAt: k.RevokedAt, Current: k.ID == current}
}

func (a *api) listKeys(w http.ResponseWriter, r *http.Request) error {
	p := from(r.Context())
	keys, err := a.Keys.List(r.Context(), p.conn.ID)
	if err != nil {
		return problem.Wrap(err)
	}
	out := make([]keyOut, 0, len(keys))
	for i := range keys {
		out = append(out, keyView(&keys[i], p.keyID))
	}
	return writeJSON(w, http.StatusOK, newPage(out, ""))
}

type keyIn struct {
	Name *string `json:"name"`
}

func (a *api) createKey(w http.ResponseWriter, r *http.Request) error {
	p := from(r.Context())
	var in keyIn
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	name := ""
	if in.Name != nil {
		name = strings.TrimSpace(*in.Name)
	}
	switch {
	case name == "":
		return problem.Fields("the key needs a name", problem.FieldError{Field: "name", Reason: "is required"})
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxKeyNameLen || strings.IndexFunc(name, unicode.IsControl) >= 0:
		return problem.Fields("invalid key name", problem.FieldError{Field: "name",
			Reason: fmt.Sprintf("must be at most %d characters without control characters", MaxKeyNameLen)})
	}
	// The limit is enforced by Issue's transaction: a count read here would race concurrent creates.
	plain, k, err := a.Keys.Issue(r.Context(), p.conn.ID, name)
	switch {
	case errors.Is(err, apikeys.ErrTooMany):
		return problem.New(problem.Conflict, "a connection has at most %d active keys; revoke one first", MaxKeys)
	case errors.Is(err, apikeys.ErrNoConnection):
		return problem.New(problem.Conflict, "the connection is not active")
	case err != nil:
		return problem.Wrap(err)
	}
	w.Header().Set("Location", "/v1/connection/keys/"+k.ID)
	return writeJSON(w, http.StatusCreated, newKeyOut{keyOut: keyView(k, p.keyID), Key: plain})
}

func validKeyID(s string) bool {
	if len(s) != 26 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

func (a *api) revokeKey(w http.ResponseWriter, r *http.Request) error {
	p := from(r.Context())
	id := r.PathValue("keyId")
	if !validKeyID(id) {
		return problem.Fields("malformed id", problem.FieldError{Field: "keyId", Reason: "is not a key id"})
	}
	if err := a.Keys.Revoke(r.Context(), p.conn.ID, id); err != nil {
		if errors.Is(err, apikeys.ErrNotFound) {
			return problem.New(problem.NotFound, "no such key")
		}
		return problem.Wrap(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// disconnect stops everything and leaves nothing of the connection in the table. The connection is marked
// disconnected first, so requests racing this one can no longer create connectors, runs or keys; then connectors
// are disabled and their active runs cancelled (so no worker starts anything new), the tokens are deleted (so
// nothing can call Jira), and the connectors, runs, keys and the connection item are deleted. Every step is
// idempotent, and a disconnected connection's key still reaches this route, so a failed disconnect can be retried
// with the same key until the keys are gone; they go last for that reason. Erasing exported data is the purge
// core's job (Purger).
func (a *api) disconnect(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := from(ctx).conn.ID
	if err := a.Store.MarkDisconnected(ctx, id); err != nil {
		return problem.Wrap(err)
	}
	if err := a.Store.DisableAll(ctx, id, "disconnected"); err != nil {
		return problem.Wrap(err)
	}
	if err := a.Tokens.Delete(ctx, id); err != nil {
		return problem.Wrap(err)
	}
	erasure := "pending"
	if a.Purger != nil {
		if err := a.Purger.PurgeConnection(ctx, id); err != nil {
			a.Log.ErrorContext(ctx, "purge after disconnect failed; an admin purge will erase the data", "connectionId", id, "error", err)
		} else {
			erasure = "done"
		}
	}
	if err := a.Store.DeleteAll(ctx, id); err != nil {
		return problem.Wrap(err)
	}
	if err := a.Keys.DeleteAll(ctx, id); err != nil {
		return problem.Wrap(err)
	}
	if err := a.Connections.Delete(ctx, id); err != nil {
		return problem.Wrap(err)
	}
	a.Log.InfoContext(ctx, "connection disconnected", "connectionId", id, "erasure", erasure)
	return writeJSON(w, http.StatusOK, map[string]string{"status": "disconnected", "erasure": erasure})
}
