package markdown_test

import (
	"testing"

	"jiraexport/shared/markdown"
)

// BenchmarkFromADF converts the whole golden corpus (every ADF node and mark) once per iteration.
func BenchmarkFromADF(b *testing.B) {
	docs := mustGlob(b, "testdata/adf/*.json")
	var raws [][]byte
	size := 0
	for _, p := range docs {
		r := mustRead(b, p)
		raws = append(raws, r)
		size += len(r)
	}
	opts := testOptions()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range raws {
			if _, err := markdown.FromADF(r, opts); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkRenderIssue renders the README's example issue (front matter, description, comments, history).
func BenchmarkRenderIssue(b *testing.B) {
	is := sampleIssue()
	opts := markdown.IssueOptions{ADF: exportOptions(), History: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := markdown.RenderIssue(is, opts); err != nil {
			b.Fatal(err)
		}
	}
}
