package table_test

import (
	"testing"

	"jiraexport/shared/table"
)

// FuzzParseKeys: a parser accepts exactly what its builder makes, so a key it accepts is rebuilt to the same
// string, and what it returns never holds the separator that would make two keys ambiguous.
func FuzzParseKeys(f *testing.F) {
	for _, seed := range []string{"RUN#x1#r1", "CKPT#a#b", "IDX#c#10001", "CONN#abc", "CONNECTOR#x", "POINTS#2026031006", "IDX#a#b#c", "RUN##", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range []struct {
			parse func(string) (string, string, bool)
			build func(string, string) string
		}{{table.ParseRunSK, table.RunSK}, {table.ParseCkptSK, table.CkptSK}, {table.ParseIdxSK, table.IdxSK}} {
			if a, b, ok := p.parse(s); ok && p.build(a, b) != s {
				t.Fatalf("%q parsed to %q, %q, which build %q", s, a, b, p.build(a, b))
			}
		}
		for _, p := range []struct {
			parse func(string) (string, bool)
			build func(string) string
		}{{table.ParseConnPK, table.ConnPK}, {table.ParseConnectorSK, table.ConnectorSK}} {
			if id, ok := p.parse(s); ok && p.build(id) != s {
				t.Fatalf("%q parsed to %q, which builds %q", s, id, p.build(id))
			}
		}
		if h, ok := table.ParsePointsSK(s); ok && table.PointsSK(h) != s {
			t.Fatalf("%q parsed to %v, which builds %q", s, h, table.PointsSK(h))
		}
	})
}
