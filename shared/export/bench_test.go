package export_test

import (
	"testing"
	"time"

	"jiraexport/infra/atlassiansim"
	"jiraexport/shared/connectors"
)

// BenchmarkExport measures a full export of a site and a following incremental run with nothing changed:
// wall time, issues per second, Jira requests and points per issue (points counted by the simulator, by
// Atlassian's rule). Run: go test -run '^$' -bench BenchmarkExport -benchtime 3x ./shared/export/
func BenchmarkExport(b *testing.B) {
	cfg := atlassiansim.Config{Seed: 13, Sites: 1, ProjectsPerSite: 2, IssuesPerProject: 250, MaxComments: 30, MaxChangelog: 50}
	w := newWorld(b, worldOpts{sim: cfg, jql: func(s atlassiansim.Site) string {
		return "project in (" + s.Projects[0].Key + ", " + s.Projects[1].Key + ")"
	}})
	eng := w.engine(nil)
	issues := float64(2 * cfg.IssuesPerProject)
	var fullTime, incTime time.Duration
	var fullPoints, fullReqs, incPoints, incReqs int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// A new connector each time, so every iteration is a first (full) run.
		c, err := w.store.Create(b.Context(), w.connID, w.connector.Spec, time.Now().Add(24*time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		w.connector = c
		w.sim.ResetCounters()
		b.StartTimer()
		start := time.Now()
		if r, _ := w.runToEnd(eng, w.startRun(), 10*time.Minute); r.Status != connectors.RunSucceeded {
			b.Fatalf("full run = %s %v", r.Status, r.Errors)
		}
		fullTime += time.Since(start)
		cs := w.sim.Counters()
		fullPoints += cs.PointsTotal
		for k, n := range cs.Requests {
			if k != atlassiansim.KeyToken {
				fullReqs += n
			}
		}
		w.sim.ResetCounters()
		start = time.Now()
		if r, _ := w.runToEnd(eng, w.startRun(), 10*time.Minute); r.Status != connectors.RunSucceeded {
			b.Fatalf("incremental run = %s %v", r.Status, r.Errors)
		}
		incTime += time.Since(start)
		cs = w.sim.Counters()
		incPoints += cs.PointsTotal
		for k, n := range cs.Requests {
			if k != atlassiansim.KeyToken {
				incReqs += n
			}
		}
	}
	n := float64(b.N)
	b.ReportMetric(issues*n/fullTime.Seconds(), "full-issues/s")
	b.ReportMetric(float64(fullPoints)/n/issues, "full-points/issue")
	b.ReportMetric(float64(fullReqs)/n/issues, "full-requests/issue")
	b.ReportMetric(float64(incPoints)/n/issues, "nochange-points/issue")
	b.ReportMetric(float64(incReqs)/n, "nochange-requests/run")
	b.ReportMetric(float64(incTime.Milliseconds())/n, "nochange-ms/run")
}
