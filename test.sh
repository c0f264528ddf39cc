#!/usr/bin/env bash
# Runs the tests of every module in go.work under the race detector.
# Extra arguments go to go test (e.g. ./test.sh -short, ./test.sh -run Snapshot).
set -euo pipefail
cd "$(dirname "$0")"
go test -race -count=1 "$@" $(go list -m -f '{{.Dir}}/...')
