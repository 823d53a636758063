#!/usr/bin/env bash
# The pure test tier (`make test-short`): go test -short over the tree, needing no emulator (no Java, no moto, no
# Lambda emulator). Tests that need one skip themselves with the reason; infra/cmd/testreport lists every skip
# with its reason, each package's result and the output of whatever failed. Extra arguments go to go test
# (e.g. -race).
set -uo pipefail

GO=${GO:-go}
start=$SECONDS
"$GO" build -o "${TMPDIR:-/tmp}/jiraexport-testreport.$$" ./infra/cmd/testreport || exit 1
trap 'rm -f "${TMPDIR:-/tmp}/jiraexport-testreport.$$"' EXIT
"$GO" test -short -count=1 -json "$@" ./... 2>&1 | "${TMPDIR:-/tmp}/jiraexport-testreport.$$"
rc=$?
echo "make test-short: $((SECONDS - start))s"
exit "$rc"
