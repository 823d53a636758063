package connectorsapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"jiraexport/shared/apikeys"
	"jiraexport/shared/connections"
	"jiraexport/shared/erasure"
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
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
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

// disconnectOut is DELETE /v1/connection's answer: the erasure report (kinds and counts only).
type disconnectOut struct {
	Status           string           `json:"status"`
	Erasure          string           `json:"erasure"`
	Deleted          map[string]int64 `json:"deleted"`
	FoundBehindFence map[string]int64 `json:"foundBehindFence"`
	RunsCancelled    int64            `json:"runsCancelled"`
	FinishAfter      *time.Time       `json:"finishAfter"`
}

// disconnect erases the connection through the erasure core: it is fenced first (marked disconnected, so
// requests racing this one can no longer add anything, and its runs cancelled), then its tokens, connectors,
// runs, checkpoints, OAuth states and every exported object version and upload are deleted, and the API keys and
// the connection go last. A disconnected connection's key still reaches this route, so an erasure that could not
// finish within the request (a large export, or an export that was running and may still write until its
// invocation ends: finishAfter) is finished by calling it again with the same key; the answer is then 202.
func (a *api) disconnect(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := from(ctx).conn.ID
	rep, err := a.Eraser.Erase(ctx, erasure.Request{ConnectionID: id})
	if err != nil {
		return problem.Wrap(err)
	}
	out := disconnectOut{Status: "disconnected", Erasure: "done", Deleted: rep.Deleted, FoundBehindFence: rep.FoundBehindFence,
		RunsCancelled: rep.RunsCancelled, FinishAfter: rep.FinishAfter}
	status := http.StatusOK
	if !rep.Complete {
		out.Erasure, status = "in_progress", http.StatusAccepted
		retry := 1
		if rep.FinishAfter != nil {
			retry = max(retry, int(time.Until(*rep.FinishAfter).Seconds())+1)
		}
		w.Header().Set("Retry-After", strconv.Itoa(retry))
	}
	a.Log.InfoContext(ctx, "connection erasure", "connectionId", id, "complete", rep.Complete, "deleted", rep.Total(),
		"foundBehindFence", len(rep.FoundBehindFence), "runsCancelled", rep.RunsCancelled)
	return writeJSON(w, status, out)
}
