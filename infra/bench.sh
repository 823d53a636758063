#!/usr/bin/env bash
# Runs every Go benchmark against the local stack (`make bench` starts it) and writes BENCHMARKS.md with the
# command, the machine and the raw `go test -bench` output (benchstat-compatible).
set -euo pipefail
cd "$(dirname "$0")/.."
count="${BENCHCOUNT:-1}"
# -p 1: one package's benchmarks at a time. go test otherwise runs as many package binaries at once as there are
# cores, and a benchmark sharing the host with another package's measures both.
cmd="go test -p 1 -run '^\$' -bench . -benchmem -benchtime=${BENCHTIME:-2s} -count=$count -timeout ${BENCHTIMEOUT:-60m} ./..."
out=$(mktemp)
# The export benchmark (functions/export BenchmarkExportSite) writes its figures, floor arithmetic and targets as
# a Markdown section here; it is put after the raw block.
export EXPORT_BENCH_MD
EXPORT_BENCH_MD=$(mktemp)
trap 'rm -f "$out" "$EXPORT_BENCH_MD"' EXIT
eval "$cmd" | tee "$out"
{
  echo "# Benchmarks"
  echo
  echo "Produced by \`make bench\` (that is: \`localstack run -- $cmd\`) on $(date -u +%Y-%m-%d),"
  echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3-)."
  echo "Figures are per operation; B/op and allocs/op are Go heap figures. Re-run \`make bench\` to refresh this file."
  echo
  echo '```'
  # One header block, then each package's benchmark lines (benchstat reads this as it is).
  grep -m1 -E '^goos' "$out" || true
  grep -m1 -E '^goarch' "$out" || true
  grep -m1 -E '^cpu' "$out" || true
  awk '/^pkg:/ {pkg=$0; next} /^Benchmark/ {if (pkg != "") {print pkg; pkg=""} print} /^FAIL/ {print}' "$out"
  echo '```'
  if [ -s "$EXPORT_BENCH_MD" ]; then
    echo
    cat "$EXPORT_BENCH_MD"
  fi
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
