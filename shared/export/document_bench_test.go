package export

import (
	"bytes"
	"encoding/json"

	gojson "github.com/goccy/go-json"
	"testing"

	"jiraexport/infra/atlassiansim"
	"jiraexport/shared/jira"
	"jiraexport/shared/mirror"
	"jiraexport/shared/scrub"
)

// BenchmarkDocumentPipeline is the export's CPU per issue without the network: one search page of the export
// benchmark's site (every field, changelog expanded, 100 issues) is decoded as the Jira client decodes it, each issue
// parsed, and its scrubbed document built and encoded. Runs without the AWS stack.
func BenchmarkDocumentPipeline(b *testing.B) {
	rs := newRangeSim(b, atlassiansim.Config{Seed: 1313, Sites: 1, ProjectsPerSite: 1, IssuesPerProject: 400, Users: 6,
		MaxComments: 30, AttachmentShare: 0.1, ManyCommentsShare: 0.05, LongChangelogShare: -1, ManyWorklogsShare: -1,
	})
	req := jira.SearchRequest{JQL: rs.base + " ORDER BY id ASC", Fields: []string{"*all", "-lastViewed", "-worklog"},
		Expand: "changelog", MaxResults: jira.SearchMaxFull}
	page, err := rs.cl.Search(b.Context(), rs.cloud, req)
	if err != nil || len(page.Issues) == 0 {
		b.Fatalf("Search() = %v, %v", page, err)
	}
	fs, err := rs.cl.Fields(b.Context(), rs.cloud)
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(page) // the page as Jira sent it, less names and schema (not requested)
	if err != nil {
		b.Fatal(err)
	}
	meta := fieldsFromJira(fs)
	opts := scrub.Options{UserFields: userFields(meta)}
	site := mirror.Site{CloudID: rs.cloud, URL: "https://bench.atlassian.net"}
	var out int64
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var p jira.SearchPage
		if err := gojson.NewDecoder(bytes.NewReader(body)).Decode(&p); err != nil { // as the Jira client decodes
			b.Fatal(err)
		}
		for _, raw := range p.Issues {
			is, err := parseIssue(raw)
			if err != nil {
				b.Fatal(err)
			}
			_, doc, err := buildDocument(docInput{issue: is, site: site, meta: meta, scrub: opts,
				comments: is.embedded("comment", "comments"), changelog: is.Changelog})
			if err != nil {
				b.Fatal(err)
			}
			out += int64(len(doc))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*int64(len(page.Issues)))/1e6, "ms/issue")
	b.ReportMetric(float64(out)/float64(b.N)/float64(len(page.Issues)), "doc-B/issue")
}
