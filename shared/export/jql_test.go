package export

import "testing"

func TestSplitOrderBy(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"project = ENG", "project = ENG"},
		{"project = ENG ORDER BY created DESC", "project = ENG"},
		{"project = ENG order   by key", "project = ENG"},
		{`summary ~ "order by" AND project = A`, `summary ~ "order by" AND project = A`},
		{`labels = reorder ORDER BY id`, `labels = reorder`},
		{`(text ~ 'x) order by') ORDER BY rank`, `(text ~ 'x) order by')`},
		{`project = "ORDER" and ordered = 1`, `project = "ORDER" and ordered = 1`},
	}
	for _, tt := range tests {
		if got := splitOrderBy(tt.in); got != tt.want {
			t.Errorf("splitOrderBy(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got, want := searchJQL("project = A", 1700000000000, 10042), "(project = A) AND updated >= 1700000000000 AND id > 10042 ORDER BY id ASC"; got != want {
		t.Errorf("searchJQL() = %q, want %q", got, want)
	}
}
