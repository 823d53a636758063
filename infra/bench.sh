#!/usr/bin/env bash
# Runs every Go benchmark against the local stack (`make bench` starts it) and writes BENCHMARKS.md with the
# command, the machine and the raw `go test -bench` output (benchstat-compatible).
set -euo pipefail
cd "$(dirname "$0")/.."
count="${BENCHCOUNT:-1}"
cmd="go test -run '^\$' -bench . -benchmem -benchtime=${BENCHTIME:-2s} -count=$count ./..."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
eval "$cmd" | tee "$out"
{
  echo "# Benchmarks"
  echo
  echo "Produced by \`make bench\` (that is: \`localstack run -- $cmd\`) on $(date -u +%Y-%m-%d),"
  echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3-)."
  echo "Figures are per operation; B/op and allocs/op are Go heap figures. Re-run \`make bench\` to refresh this file."
  echo
  echo '```'
  grep -E '^(goos|goarch|pkg|cpu|Benchmark|ok|PASS|FAIL)' "$out" | grep -v '^ok' || true
  echo '```'
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
