#!/usr/bin/env bash
# The README's test command. Runs:
#   1. internal/table's code beside its assembly: vet on both architectures
#      that have assembly, its tests with -tags purego, and the table and the
#      tracker on arm64 under qemu-user;
#   2. the tracker built without go:linkname (-tags activeusers_nolinkname),
#      and the tests the race detector cannot run, without it;
#   3. every module's tests under the race detector (go run ./tools/testrun),
#      which says which module runs as it goes and ends with every skipped
#      test and its reason.
# The end-to-end tests need redis-server, redis-cli, prometheus and
# promtool, and the arm64 run qemu-aarch64: run as root on Debian or Ubuntu,
# it installs what is missing (as .ci/run does); otherwise it says loudly
# what it could not run. About 6 minutes on a 2-core machine. Extra
# arguments go to go test (e.g. ./test.sh -short, ./test.sh -run Snapshot).
set -euo pipefail
cd "$(dirname "$0")"
start=$SECONDS
not_run=()

missing() {
  local m=()
  for b in redis-server redis-cli prometheus promtool qemu-aarch64; do
    command -v "$b" >/dev/null || m+=("$b")
  done
  echo "${m[@]:-}"
}
if [ -n "$(missing)" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing what the tests need but this machine lacks: $(missing)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq redis-server redis-tools prometheus qemu-user >/dev/null
  # Debian starts the packaged services on install; the tests start their own.
  systemctl stop prometheus redis-server >/dev/null 2>&1 || service prometheus stop >/dev/null 2>&1 || true
  service redis-server stop >/dev/null 2>&1 || true
fi

echo "== internal/table beside its assembly: vet (amd64, arm64, purego), tests -tags purego"
go vet ./internal/table
GOARCH=arm64 go vet ./internal/table
go vet -tags purego ./internal/table
go test -count=1 -tags purego "$@" ./internal/table .

if command -v qemu-aarch64 >/dev/null; then
  echo "== arm64 under qemu-user: the table's arm64 assembly and the tracker"
  # TestKilledMidSave starts its own binary again, which qemu-user cannot
  # without binfmt: it runs natively in the purego run above.
  GOARCH=arm64 go test -count=1 -exec qemu-aarch64 -skip '^TestKilledMidSave$' "$@" ./internal/table .
else
  not_run+=("the arm64 tests (./internal/table and the tracker under qemu-user): qemu-aarch64 not found (apt-get install -y qemu-user)")
fi

echo "== the tracker without go:linkname (-tags activeusers_nolinkname)"
go test -count=1 -tags activeusers_nolinkname "$@" .

echo "== the tests -race cannot run (they count allocations, or start processes or benchmarks)"
go test -count=1 -run 'TestFileServingAddsNoAllocation|TestKilledMidSave' "$@" .
go test -count=1 -run 'TestProgramRunsEndToEnd' "$@" ./benchmarks
go test -count=1 -run 'TestMiddlewareAddsNoAllocation' "$@" ./examples/routers

echo "== every module under the race detector (go run ./tools/testrun)"
status=0
go run ./tools/testrun "$@" || status=$?

echo "== test.sh took $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s"
if [ ${#not_run[@]} -gt 0 ]; then
  echo "!!! and test.sh itself could NOT run:"
  for n in "${not_run[@]}"; do echo "!!!   $n"; done
fi
exit "$status"
