#!/usr/bin/env bash
# Runs the tests of every module in go.work under the race detector.
# Extra arguments go to go test (e.g. ./test.sh -short, ./test.sh -run Snapshot).
set -euo pipefail
cd "$(dirname "$0")"
# internal/table's assembly: vet checks it against its Go declaration on
# both architectures that have it, and the purego build without it.
GOARCH=arm64 go vet ./internal/table
go vet -tags purego ./internal/table
go test -race -count=1 "$@" $(go list -m -f '{{.Dir}}/...')
