package main

import (
	"strings"
	"testing"
)

// stream is what `go test -json` writes for two packages: parallel tests whose skip reasons come before their
// "--- SKIP" lines, a subtest skip, a pass, and (when failing) a failed test and a package that fails in
// TestMain.
func stream(failing bool) string {
	lines := []string{
		`{"Action":"start","Package":"p/a"}`,
		`{"Action":"run","Package":"p/a","Test":"TestStore"}`,
		`{"Action":"output","Package":"p/a","Test":"TestStore","Output":"=== RUN   TestStore\n"}`,
		`{"Action":"output","Package":"p/a","Test":"TestStore","Output":"=== PAUSE TestStore\n"}`,
		`{"Action":"run","Package":"p/a","Test":"TestOther"}`,
		`{"Action":"output","Package":"p/a","Test":"TestOther","Output":"    other_test.go:9: -short: needs DynamoDB Local and moto\n"}`,
		`{"Action":"output","Package":"p/a","Test":"TestStore","Output":"    store_test.go:21: -short: needs DynamoDB Local and moto\n"}`,
		`{"Action":"output","Package":"p/a","Test":"TestPure","Output":"=== RUN   TestPure\n"}`,
		`{"Action":"pass","Package":"p/a","Test":"TestPure","Elapsed":0}`,
		`{"Action":"output","Package":"p/a","Test":"TestStore","Output":"--- SKIP: TestStore (0.00s)\n"}`,
		`{"Action":"skip","Package":"p/a","Test":"TestStore","Elapsed":0}`,
		`{"Action":"output","Package":"p/a","Test":"TestOther","Output":"--- SKIP: TestOther (0.00s)\n"}`,
		`{"Action":"skip","Package":"p/a","Test":"TestOther","Elapsed":0}`,
		`{"Action":"output","Package":"p/a","Test":"TestTable/case","Output":"    t_test.go:4: -short: wall clock\n"}`,
		`{"Action":"skip","Package":"p/a","Test":"TestTable/case","Elapsed":0}`,
		`{"Action":"pass","Package":"p/a","Test":"TestTable","Elapsed":0}`,
		`{"Action":"skip","Package":"p/a","Test":"TestBare","Elapsed":0}`,
		`{"Action":"output","Package":"p/a","Output":"PASS\n"}`,
		`{"Action":"pass","Package":"p/a","Elapsed":0.25}`,
		`{"Action":"skip","Package":"p/empty"}`,
	}
	if failing {
		lines = append(lines,
			`{"Action":"run","Package":"p/b","Test":"TestParse"}`,
			`{"Action":"output","Package":"p/b","Test":"TestParse","Output":"    parse_test.go:30: Parse(\"x\") = 1, want 2\n"}`,
			`{"Action":"output","Package":"p/b","Test":"TestParse","Output":"--- FAIL: TestParse (0.00s)\n"}`,
			`{"Action":"fail","Package":"p/b","Test":"TestParse","Elapsed":0}`,
			`{"Action":"output","Package":"p/b","Output":"FAIL: operations never exercised\n"}`,
			`{"Action":"output","Package":"p/b","Output":"FAIL\tp/b\t0.100s\n"}`,
			`{"Action":"fail","Package":"p/b","Elapsed":0.1}`,
			`not JSON: go: cannot find main module`,
		)
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestReport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       string
		wantCode int
		want     []string
		never    []string
	}{
		{"all pass", stream(false), 0, []string{
			"SKIP  p/a: -short: needs DynamoDB Local and moto\n      TestStore, TestOther\n",
			"SKIP  p/a: -short: wall clock\n      TestTable/case\n",
			"SKIP  p/a: (no reason given)\n      TestBare\n",
			"ok    p/a  0.25s\n",
			"2 passed, 4 skipped, 0 failed",
		}, []string{"FAILURES", "p/empty", "store_test.go", "=== RUN"}},
		{"a test and a package fail", stream(true), 1, []string{
			"FAIL  p/b\n",
			"FAILURES\nnot JSON: go: cannot find main module\n",
			"--- p/b TestParse\n    parse_test.go:30: Parse(\"x\") = 1, want 2\n",
			"--- p/b\n    FAIL: operations never exercised\n",
			"2 passed, 4 skipped, 2 failed",
		}, []string{"--- FAIL: TestParse", "FAIL\tp/b"}},
		{"a build failure", `{"ImportPath":"p/c [p/c.test]","Action":"build-output","Output":"c.go:3:1: syntax error\n"}` + "\n" +
			`{"ImportPath":"p/c [p/c.test]","Action":"build-fail"}` + "\n" +
			`{"Action":"fail","Package":"p/c","Elapsed":0,"FailedBuild":"p/c [p/c.test]"}` + "\n", 1, []string{
			"FAIL  p/c  (build failed: p/c [p/c.test])",
			"c.go:3:1: syntax error",
		}, nil},
		{"nothing at all", "", 0, []string{"0 passed, 0 skipped, 0 failed"}, []string{"FAILURES"}},
	}
	for _, tt := range tests {
		var out strings.Builder
		code := run(strings.NewReader(tt.in), &out)
		if code != tt.wantCode {
			t.Errorf("%s: exit code %d, want %d", tt.name, code, tt.wantCode)
		}
		for _, s := range tt.want {
			if !strings.Contains(out.String(), s) {
				t.Errorf("%s: report lacks %q:\n%s", tt.name, s, out.String())
			}
		}
		for _, s := range tt.never {
			if strings.Contains(out.String(), s) {
				t.Errorf("%s: report has %q:\n%s", tt.name, s, out.String())
			}
		}
	}
}
