package connectorsapi

import (
	"context"
	"net/http"

	"jiraexport/shared/connectors"
	"jiraexport/shared/problem"
)

func pathRunID(r *http.Request) (string, error) {
	id := r.PathValue("runId")
	if !connectors.ValidID(id) {
		return "", problem.Fields("malformed id", problem.FieldError{Field: "runId", Reason: "is not a run id"})
	}
	return id, nil
}

// startRun queues a run and invokes its export at once, with a starter allowance, so it begins within seconds.
// The invoke is asynchronous (Lambda queues the event); if it fails the run stays queued and the dispatcher invokes
// it after connectors.DispatchGuard, so the answer is 201 either way: the run exists and will run. A connection
// that has spent its starter allowance this hour already is not invoked at once: its run waits, like a failed
// invoke, for the dispatcher's admission.
func (a *api) startRun(w http.ResponseWriter, r *http.Request) error {
	c, err := a.loadConnector(r)
	if err != nil {
		return err
	}
	conn := from(r.Context()).conn
	if err := requireActive(conn); err != nil {
		return err
	}
	invoke := a.Exports != nil && a.starter(r.Context(), conn.ID)
	var opts []connectors.RunOption
	if invoke {
		// The first invocation's allowance, as admission would give: what the allocator has not seen cannot spend
		// more than a starter's share of the app's quota before it pauses and queues for admission like any run.
		opts = append(opts, connectors.WithAllowance(a.RunAllowance))
	}
	run, err := a.Store.StartRun(r.Context(), conn.ID, c.ID, connectors.TriggerManual, opts...)
	if err != nil {
		return storeProblem(err, "connector")
	}
	if invoke {
		ref := connectors.RunRef{ConnectionID: conn.ID, ConnectorID: c.ID, RunID: run.ID}
		if err := a.Exports.Invoke(r.Context(), ref); err != nil {
			a.Log.ErrorContext(r.Context(), "invoke export failed; the dispatcher will start the run", "connectorId", c.ID,
				"runId", run.ID, "error", err)
		}
	}
	w.Header().Set("Location", "/v1/connectors/"+c.ID+"/runs/"+run.ID)
	return writeJSON(w, http.StatusCreated, runView(run))
}

// starter reports whether a run the connection starts now may begin at once on a starter allowance: none is
// configured (RunAllowance < 0: no limit), or the connection has spent less than one this hour. A ledger that
// cannot be read leaves the run to admission.
func (a *api) starter(ctx context.Context, connID string) bool {
	if a.RunAllowance < 0 || a.Usage == nil {
		return true
	}
	u, err := a.Usage.Usage(ctx, a.Now(), connID)
	if err != nil {
		a.Log.ErrorContext(ctx, "read points ledger failed; the run waits for the dispatcher", "error", err)
		return false
	}
	return u.ByConnection[connID] < a.RunAllowance
}

func (a *api) listRuns(w http.ResponseWriter, r *http.Request) error {
	c, err := a.loadConnector(r)
	if err != nil {
		return err
	}
	limit, cur, err := pageParams(r)
	if err != nil {
		return err
	}
	runs, next, err := a.Store.ListRuns(r.Context(), from(r.Context()).conn.ID, c.ID, limit, cur)
	if err != nil {
		return storeProblem(err, "run")
	}
	out := make([]runOut, 0, len(runs))
	for i := range runs {
		out = append(out, runView(&runs[i]))
	}
	return writeJSON(w, http.StatusOK, newPage(out, next))
}

func (a *api) runIDs(r *http.Request) (string, string, error) {
	id, err := pathConnectorID(r)
	if err != nil {
		return "", "", err
	}
	runID, err := pathRunID(r)
	if err != nil {
		return "", "", err
	}
	return id, runID, nil
}

func (a *api) getRun(w http.ResponseWriter, r *http.Request) error {
	id, runID, err := a.runIDs(r)
	if err != nil {
		return err
	}
	run, err := a.Store.GetRun(r.Context(), from(r.Context()).conn.ID, id, runID)
	if err != nil {
		return storeProblem(err, "run")
	}
	return writeJSON(w, http.StatusOK, runView(run))
}

func (a *api) cancelRun(w http.ResponseWriter, r *http.Request) error {
	id, runID, err := a.runIDs(r)
	if err != nil {
		return err
	}
	run, err := a.Store.CancelRun(r.Context(), from(r.Context()).conn.ID, id, runID, "user")
	if err != nil {
		return storeProblem(err, "run")
	}
	return writeJSON(w, http.StatusOK, runView(run))
}
