package connectorsapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"jiraexport/shared/connections"
	"jiraexport/shared/connectors"
	"jiraexport/shared/jira"
	"jiraexport/shared/problem"
	"jiraexport/shared/schedule"
)

// storeProblem maps the store's errors to problems.
func storeProblem(err error, what string) error {
	switch {
	case errors.Is(err, connectors.ErrNotFound):
		return problem.New(problem.NotFound, "no such %s", what)
	case errors.Is(err, connectors.ErrStale):
		return problem.New(problem.PreconditionFailed, "the connector changed since you read it; GET it again and retry with its new ETag")
	case errors.Is(err, connectors.ErrActiveRun):
		return problem.New(problem.Conflict, "the connector already has an active (queued, running or paused) run; wait for it or cancel it")
	case errors.Is(err, connectors.ErrTooMany):
		return problem.New(problem.Conflict, "a connection has at most %d connectors", connectors.MaxConnectors)
	case errors.Is(err, connectors.ErrNotActive):
		return problem.New(problem.Conflict, "the connection is not active")
	case errors.Is(err, connectors.ErrRunFinished):
		return problem.New(problem.Conflict, "the run has already finished")
	case errors.Is(err, connectors.ErrInvalidCursor):
		return problem.Fields("invalid query parameter", problem.FieldError{Field: "cursor", Reason: "is not a cursor from this list"})
	}
	return problem.Wrap(err)
}

var errReauth = problem.New(problem.ReauthRequired,
	"Atlassian no longer accepts this connection's authorisation: POST /v1/connection/reauthorize and open the returned link")

// jiraProblem maps a failed Jira call to a problem.
func (a *api) jiraProblem(ctx context.Context, err error) error {
	var rl *jira.RateLimitError
	switch {
	case a.Tokens.ReauthRequired(err):
		return errReauth
	case errors.As(err, &rl):
		secs := int(rl.RetryAfter.Seconds())
		if !rl.Reset.IsZero() {
			secs = max(secs, int(time.Until(rl.Reset).Seconds()))
		}
		return &problem.Error{Code: problem.RateLimited, RetryAfter: max(secs, 1), Cause: err,
			Detail: "Jira's rate limit for this app is exhausted; retry after the time in Retry-After"}
	case errors.Is(err, jira.ErrUnauthorized):
		return &problem.Error{Code: problem.ReauthRequired, Cause: err,
			Detail: "Atlassian refused this connection's access to the site (missing scope or site access removed): POST /v1/connection/reauthorize and consent again"}
	case errors.Is(err, context.DeadlineExceeded):
		return &problem.Error{Code: problem.Unavailable, Cause: err, Detail: "Jira did not answer in time; retry later"}
	}
	return &problem.Error{Code: problem.Unavailable, Cause: err, Detail: "Jira did not answer as expected; retry later"}
}

func requireActive(conn *connections.Connection) error {
	if conn.Status != connections.StatusActive {
		return errReauth
	}
	return nil
}

func pathConnectorID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !connectors.ValidID(id) {
		return "", problem.Fields("malformed id", problem.FieldError{Field: "id", Reason: "is not a connector id"})
	}
	return id, nil
}

// validate checks spec fully. checkJira is false when neither the site nor the JQL changed (an edit of the name
// must work even while the connection awaits re-authorisation, and costs no Jira points).
func (a *api) validate(ctx context.Context, conn *connections.Connection, spec *connectors.Spec, checkJira bool) (*schedule.Schedule, error) {
	spec.Normalize()
	sched, errs := spec.Validate()
	if spec.SiteID != "" && len(spec.SiteID) <= 64 && !hasSite(conn, spec.SiteID) {
		errs = append(errs, problem.FieldError{Field: "siteId", Reason: "is not a site of this connection (GET /v1/connection lists them)"})
	}
	if len(errs) > 0 {
		return nil, problem.Fields("the connector is invalid", errs...)
	}
	if !checkJira {
		return sched, nil
	}
	if err := requireActive(conn); err != nil {
		return nil, err
	}
	res, err := a.jiraOf(conn.ID, a.Tokens.TokenSource(ctx, conn.ID)).ParseJQL(ctx, spec.SiteID, spec.JQL)
	if err != nil {
		return nil, a.jiraProblem(ctx, err)
	}
	q := res[0]
	for _, msg := range q.Errors {
		errs = append(errs, problem.FieldError{Field: "jql", Reason: msg})
	}
	if len(errs) == 0 && !q.Bounded() {
		errs = append(errs, problem.FieldError{Field: "jql",
			Reason: "is unbounded: Jira refuses to search without a restriction; add one, e.g. project = KEY"})
	}
	if len(errs) > 0 {
		return nil, problem.Fields("Jira does not accept the JQL on this site", errs...)
	}
	return sched, nil
}

func hasSite(conn *connections.Connection, cloudID string) bool {
	for _, s := range conn.Sites {
		if s.CloudID == cloudID {
			return true
		}
	}
	return false
}

func (a *api) next(sched *schedule.Schedule, spec connectors.Spec) time.Time {
	if !spec.Enabled || sched == nil {
		return time.Time{}
	}
	return sched.Next(a.Now())
}

func writeConnector(w http.ResponseWriter, status int, c *connectors.Connector) error {
	w.Header().Set("ETag", c.ETag())
	if status == http.StatusCreated {
		w.Header().Set("Location", "/v1/connectors/"+c.ID)
	}
	return writeJSON(w, status, connectorView(c))
}

func (a *api) createConnector(w http.ResponseWriter, r *http.Request) error {
	conn := from(r.Context()).conn
	var in connectorIn
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if missing := missingFields(&in); len(missing) > 0 {
		return problem.Fields("the connector is missing required fields", missing...)
	}
	spec := in.newSpec()
	sched, err := a.validate(r.Context(), conn, &spec, true)
	if err != nil {
		return err
	}
	c, err := a.Store.Create(r.Context(), conn.ID, spec, a.next(sched, spec))
	if err != nil {
		return storeProblem(err, "connection")
	}
	return writeConnector(w, http.StatusCreated, c)
}

// missingFields lists the required fields a create or replace body lacks. The schedule is optional (without one
// the connector runs only when started through the API), but a schedule given needs its expression.
func missingFields(in *connectorIn) []problem.FieldError {
	var missing []problem.FieldError
	for field, present := range map[string]bool{"name": in.Name != nil, "siteId": in.SiteID != nil, "jql": in.JQL != nil,
		"schedule.expression": in.Schedule == nil || in.Schedule.Expression != nil} {
		if !present {
			missing = append(missing, problem.FieldError{Field: field, Reason: "is required"})
		}
	}
	sortFields(missing)
	return missing
}

func sortFields(fs []problem.FieldError) {
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && fs[j].Field < fs[j-1].Field; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
}

func (a *api) listConnectors(w http.ResponseWriter, r *http.Request) error {
	limit, cur, err := pageParams(r)
	if err != nil {
		return err
	}
	cs, next, err := a.Store.List(r.Context(), from(r.Context()).conn.ID, limit, cur)
	if err != nil {
		return storeProblem(err, "connector")
	}
	out := make([]connectorOut, 0, len(cs))
	for i := range cs {
		out = append(out, connectorView(&cs[i]))
	}
	return writeJSON(w, http.StatusOK, newPage(out, next))
}

func (a *api) loadConnector(r *http.Request) (*connectors.Connector, error) {
	id, err := pathConnectorID(r)
	if err != nil {
		return nil, err
	}
	c, err := a.Store.Get(r.Context(), from(r.Context()).conn.ID, id)
	if err != nil {
		return nil, storeProblem(err, "connector")
	}
	return c, nil
}

func (a *api) getConnector(w http.ResponseWriter, r *http.Request) error {
	c, err := a.loadConnector(r)
	if err != nil {
		return err
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == c.ETag() {
		w.Header().Set("ETag", c.ETag())
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	return writeConnector(w, http.StatusOK, c)
}

// ifMatch checks the required If-Match header against cur and returns the version a conditional write must
// still find: 428 when absent, 412 when it names another version. "*" matches any existing connector (RFC 9110
// 13.1.1), so it yields cur's version: the write then still fails rather than overwrite a change made since.
func ifMatch(r *http.Request, cur *connectors.Connector) (int64, error) {
	v := r.Header.Get("If-Match")
	if v == "" {
		return 0, problem.New(problem.PreconditionRequired, "send If-Match with the connector's ETag (from GET)")
	}
	if strings.TrimSpace(v) == "*" {
		return cur.Version, nil
	}
	version, ok := connectors.ParseETag(v)
	if !ok || version != cur.Version {
		return 0, storeProblem(connectors.ErrStale, "connector")
	}
	return version, nil
}

func (a *api) replaceConnector(w http.ResponseWriter, r *http.Request) error {
	return a.updateConnector(w, r, false)
}

func (a *api) patchConnector(w http.ResponseWriter, r *http.Request) error {
	return a.updateConnector(w, r, true)
}

func (a *api) updateConnector(w http.ResponseWriter, r *http.Request, merge bool) error {
	conn := from(r.Context()).conn
	// The order of checks is fixed so each problem has one answer: id, existence, precondition, body, rules.
	cur, err := a.loadConnector(r)
	if err != nil {
		return err
	}
	version, err := ifMatch(r, cur)
	if err != nil {
		return err
	}
	var in connectorIn
	mediaTypes := []string{"application/json"}
	if merge {
		mediaTypes = append(mediaTypes, "application/merge-patch+json")
	}
	body, err := readJSON(w, r, mediaTypes...)
	if err != nil {
		return err
	}
	if err := decodeBytes(body, &in); err != nil {
		return err
	}
	var spec connectors.Spec
	if merge {
		// "schedule": null removes the schedule (RFC 7396); no other field can be removed.
		var errs []problem.FieldError
		removeSchedule := false
		for _, f := range nullFields(body) {
			if f == "schedule" {
				removeSchedule = true
				continue
			}
			errs = append(errs, problem.FieldError{Field: f, Reason: "must not be null: a connector field cannot be removed; send its new value"})
		}
		if len(errs) > 0 {
			return problem.Fields("the patch sets fields to null", errs...)
		}
		spec = cur.Spec
		spec.Include.Attachments.MediaTypes = append([]string{}, cur.Spec.Include.Attachments.MediaTypes...)
		in.apply(&spec)
		if removeSchedule {
			spec.Schedule = connectors.Schedule{}
		}
	} else {
		if missing := missingFields(&in); len(missing) > 0 {
			return problem.Fields("PUT replaces the whole connector; required fields are missing", missing...)
		}
		spec = in.newSpec()
	}
	normalized := spec
	normalized.Normalize()
	checkJira := normalized.SiteID != cur.Spec.SiteID || normalized.JQL != cur.Spec.JQL
	sched, err := a.validate(r.Context(), conn, &spec, checkJira)
	if err != nil {
		return err
	}
	next := a.next(sched, spec)
	// Only a change of schedule, time zone or enabling moves the next run: recomputing it on every edit would
	// let a rename postpone a rate schedule indefinitely.
	if spec.Enabled && cur.Spec.Enabled && spec.Schedule == cur.Spec.Schedule && cur.NextRunAt != nil {
		next = *cur.NextRunAt
	}
	c, err := a.Store.Update(r.Context(), conn.ID, cur.ID, spec, version, next)
	if err != nil {
		return storeProblem(err, "connector")
	}
	return writeConnector(w, http.StatusOK, c)
}

func (a *api) deleteConnector(w http.ResponseWriter, r *http.Request) error {
	c, err := a.loadConnector(r)
	if err != nil {
		return err
	}
	var version int64 // 0: no precondition
	if r.Header.Get("If-Match") != "" {
		if version, err = ifMatch(r, c); err != nil {
			return err
		}
	}
	if err := a.Store.Delete(r.Context(), from(r.Context()).conn.ID, c.ID, version); err != nil {
		return storeProblem(err, "connector")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type previewOut struct {
	ConnectorID      string    `json:"connectorId"`
	SiteID           string    `json:"siteId"`
	JQL              string    `json:"jql"`
	ApproximateCount int64     `json:"approximateCount"`
	CountedAt        time.Time `json:"countedAt"`
}

func (a *api) preview(w http.ResponseWriter, r *http.Request) error {
	c, err := a.loadConnector(r)
	if err != nil {
		return err
	}
	conn := from(r.Context()).conn
	if err := requireActive(conn); err != nil {
		return err
	}
	if !hasSite(conn, c.Spec.SiteID) {
		return problem.New(problem.Conflict, "the connector's site is no longer part of this connection; update its siteId")
	}
	n, err := a.jiraOf(conn.ID, a.Tokens.TokenSource(r.Context(), conn.ID)).ApproximateCount(r.Context(), c.Spec.SiteID, c.Spec.JQL)
	if err != nil {
		var se *jira.StatusError
		if errors.As(err, &se) && se.Status == http.StatusBadRequest {
			return problem.New(problem.Conflict, "Jira no longer accepts the connector's JQL on this site: %s", fmt.Sprint(se.Messages))
		}
		return a.jiraProblem(r.Context(), err)
	}
	return writeJSON(w, http.StatusOK, previewOut{ConnectorID: c.ID, SiteID: c.Spec.SiteID, JQL: c.Spec.JQL,
		ApproximateCount: n, CountedAt: a.Now().UTC()})
}
