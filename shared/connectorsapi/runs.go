package connectorsapi

import (
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

// startRun queues a run and invokes its export at once, so it begins within seconds, with a starter allowance. The invoke is asynchronous
// (Lambda queues the event); if it fails the run stays queued and the dispatcher invokes it after
// connectors.DispatchGuard, so the answer is 201 either way: the run exists and will run.
func (a *api) startRun(w http.ResponseWriter, r *http.Request) error {
	c, err := a.loadConnector(r)
	if err != nil {
		return err
	}
	conn := from(r.Context()).conn
	if err := requireActive(conn); err != nil {
		return err
	}
	// The first invocation's allowance, as admission would give: what the allocator has not seen cannot spend
	// more than a starter's share of the app's quota before it pauses and queues for admission like any run.
	run, err := a.Store.StartRun(r.Context(), conn.ID, c.ID, connectors.TriggerManual, connectors.WithAllowance(a.RunAllowance))
	if err != nil {
		return storeProblem(err, "connector")
	}
	if a.Exports != nil {
		ref := connectors.RunRef{ConnectionID: conn.ID, ConnectorID: c.ID, RunID: run.ID}
		if err := a.Exports.Invoke(r.Context(), ref); err != nil {
			a.Log.ErrorContext(r.Context(), "invoke export failed; the dispatcher will start the run", "connectorId", c.ID,
				"runId", run.ID, "error", err)
		}
	}
	w.Header().Set("Location", "/v1/connectors/"+c.ID+"/runs/"+run.ID)
	return writeJSON(w, http.StatusCreated, runView(run))
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
