// Command testreport turns the JSON stream of `go test -json` into the report of the short test tier: which
// tests were skipped and why (grouped by package and reason), each package's result, the output of whatever
// failed, and the counts. It exits 1 when a test, a package or a build failed.
//
//	go test -short -count=1 -json ./... | go run ./infra/cmd/testreport
//
// go test -v cannot say this by itself: a parallel test's skip reason is printed long before its "--- SKIP"
// line, among other tests' output.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
)

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

// event is one line of `go test -json` (cmd/test2json's TestEvent, plus the build events of go build -json).
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	Elapsed     float64
	ImportPath  string
	FailedBuild string
}

type key struct{ pkg, test string }

type report struct {
	output   map[key][]string
	results  map[string]string // package -> its result line
	skipped  []key
	failed   []key
	build    []string // compiler output of failed builds
	stray    []string // lines that are not JSON (e.g. a go command error)
	passes   int
	failures bool
}

func run(in io.Reader, out io.Writer) int {
	r := &report{output: map[key][]string{}, results: map[string]string{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		r.add(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		r.stray = append(r.stray, "testreport: reading the stream: "+err.Error())
		r.failures = true
	}
	if err := r.write(out); err != nil {
		return 1
	}
	if r.failures {
		return 1
	}
	return 0
}

func (r *report) add(line []byte) {
	var e event
	if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
		if s := strings.TrimSpace(string(line)); s != "" {
			r.stray = append(r.stray, s)
		}
		return
	}
	k := key{e.Package, e.Test}
	switch e.Action {
	case "output":
		r.output[k] = append(r.output[k], strings.TrimRight(e.Output, "\n"))
	case "build-output":
		r.build = append(r.build, strings.TrimRight(e.Output, "\n"))
	case "build-fail":
		r.failures = true
	case "pass":
		if e.Test == "" {
			r.results[e.Package] = fmt.Sprintf("ok    %s  %.2fs", e.Package, e.Elapsed)
		} else {
			r.passes++
		}
	case "skip":
		if e.Test != "" {
			r.skipped = append(r.skipped, k)
		}
	case "fail":
		r.failures = true
		if e.Test == "" {
			r.results[e.Package] = "FAIL  " + e.Package
			if e.FailedBuild != "" {
				r.results[e.Package] += "  (build failed: " + e.FailedBuild + ")"
			}
		}
		r.failed = append(r.failed, k)
	}
}

// bookkeeping is go test's own framing of a test's output, not what the test said.
var bookkeeping = regexp.MustCompile(`^\s*(=== (RUN|PAUSE|CONT|NAME)|--- (PASS|SKIP|FAIL): |PASS$|FAIL$|FAIL\s|ok\s)`)

// said is what a test printed itself, without go test's framing.
func (r *report) said(k key) []string {
	var out []string
	for _, l := range r.output[k] {
		if l = strings.TrimSpace(l); l != "" && !bookkeeping.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// location is the "file_test.go:12: " prefix of a t.Skip message; without it equal reasons group together.
var location = regexp.MustCompile(`^[\w.-]+\.go:\d+: `)

func (r *report) write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	// A bufio.Writer keeps its first write error and Flush returns it: the writes below are checked there.
	printf := func(format string, a ...any) { _, _ = fmt.Fprintf(bw, format, a...) }
	type group struct {
		pkg, reason string
		tests       []string
	}
	var groups []*group
	byReason := map[[2]string]*group{}
	for _, k := range r.skipped {
		reason := "(no reason given)"
		if said := r.said(k); len(said) > 0 {
			reason = location.ReplaceAllString(said[len(said)-1], "")
		}
		g := byReason[[2]string{k.pkg, reason}]
		if g == nil {
			g = &group{pkg: k.pkg, reason: reason}
			byReason[[2]string{k.pkg, reason}] = g
			groups = append(groups, g)
		}
		g.tests = append(g.tests, k.test)
	}
	slices.SortStableFunc(groups, func(a, b *group) int { return strings.Compare(a.pkg, b.pkg) })
	for _, g := range groups {
		printf("SKIP  %s: %s\n      %s\n", g.pkg, g.reason, strings.Join(g.tests, ", "))
	}

	pkgs := make([]string, 0, len(r.results))
	for p := range r.results {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	printf("\n")
	for _, p := range pkgs {
		printf("%s\n", r.results[p])
	}

	if len(r.failed) > 0 || len(r.build) > 0 || len(r.stray) > 0 {
		printf("\nFAILURES\n")
		for _, l := range append(r.stray, r.build...) {
			printf("%s\n", l)
		}
		for _, k := range r.failed {
			name := k.pkg
			if k.test != "" {
				name += " " + k.test
			}
			printf("--- %s\n", name)
			for _, l := range r.said(k) {
				printf("    %s\n", l)
			}
		}
	}
	printf("\n%d passed, %d skipped, %d failed", r.passes, len(r.skipped), len(r.failed))
	if len(r.skipped) > 0 {
		printf(" (`make test` runs the skipped ones against the local stack)")
	}
	printf("\n")
	return bw.Flush()
}
