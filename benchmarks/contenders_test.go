package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every contender that can count must count the same: a benchmark of a wrong
// tracker proves nothing.
func TestContendersCount(t *testing.T) {
	for _, c := range append(contenders(), withShards(4)) {
		t.Run(c.Name, func(t *testing.T) {
			tr := c.New()
			defer tr.Close()
			for i := range 1000 {
				tr.Seen(uid(i % 700))
			}
			got := tr.Counts(time.Minute, time.Hour)
			if c.Name == "floor" {
				assert.Nil(t, got)
				return
			}
			assert.Equal(t, []int{700, 700}, got)
		})
	}
}

func TestMeasurementsAreInRange(t *testing.T) {
	c := contenders()[0]
	h := MeasureHeap(c, 50_000)
	assert.Greater(t, h.BytesPerUser, 10.0, "a table of 12-byte slots")
	assert.Less(t, h.BytesPerUser, 40.0)
	l := MeasureLatency(c, 10_000, 5, 20*time.Millisecond, 100*time.Millisecond)
	assert.Equal(t, 500, l.Calls)
	assert.Positive(t, l.P50)
	assert.LessOrEqual(t, l.P99, l.P999)
}

// TestNewUsersAlternateOrderByRun: the contenders' new users are measured
// in their order in odd runs and in reverse in even ones, each once a run,
// and the order given is left as it was.
func TestNewUsersAlternateOrderByRun(t *testing.T) {
	cs := contenders()[:3]
	names := func(cs []Contender) (n []string) {
		for _, c := range cs {
			n = append(n, c.Name)
		}
		return n
	}
	in := names(cs)
	assert.Equal(t, in, names(newUsersOrder(cs, 1)))
	assert.Equal(t, []string{in[2], in[1], in[0]}, names(newUsersOrder(cs, 2)))
	assert.Equal(t, in, names(newUsersOrder(cs, 3)))
	assert.Equal(t, in, names(cs), "the contenders' own order changed")
}

// TestProgramRunsEndToEnd runs the program end to end at a tiny size, once as a table and
// once as JSON with a benchstat file.
func TestProgramRunsEndToEnd(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("runs benchmarks: ./test.sh and .ci/run run it without -race")
	}
	charts := t.TempDir()
	args := []string{"-runs", "1", "-benchtime", "10ms", "-users", "20000,40000", "-latency-users", "20000", "-latency-time", "100ms",
		"-tail-users", "20000", "-tail-grow", "40000", "-tail-calls", "40000", "-new-users", "20000",
		"-goroutines", "1,16", "-shard-sweep", "4,16", "-contenders", "activeusers,mutexmap,xsync"}
	o, err := parseFlags(append(args, "-charts", charts))
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, run(o, &out))
	for _, want := range []string{"Seen, returning users, 16 goroutines a core", "Counts, 20k users", "heap per user, 40k users",
		"p99.9", "vs mutexmap", "activeusers", "xsync", "Seen, returning users, 4 shards", "best shard count",
		"Seen closed loop, 20k returning users, p99.99", "Seen closed loop, growing to 40k new users, max"} {
		assert.Contains(t, out.String(), want)
	}
	for _, f := range chartFiles {
		b, err := os.ReadFile(filepath.Join(charts, f))
		require.NoError(t, err, f)
		assert.Contains(t, string(b), "<svg", f)
		assert.Contains(t, string(b), "cores", "%s names the machine", f)
	}

	bench := t.TempDir() + "/out.bench"
	o, err = parseFlags(append(args, "-json", "-bench-out", bench, "-contenders", "activeusers"))
	o.charts = ""
	require.NoError(t, err)
	out.Reset()
	require.NoError(t, run(o, &out))
	var doc struct {
		Machine string
		Results []Result
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &doc))
	assert.Contains(t, doc.Machine, "cores")
	assert.NotEmpty(t, doc.Results)
	for _, r := range doc.Results {
		assert.Len(t, r.Runs, 1, r.Metric)
	}
	b, err := os.ReadFile(bench)
	require.NoError(t, err)
	assert.Contains(t, string(b), "BenchmarkSeen/returning/procs=", "benchstat-compatible lines")

	// -replot draws the same charts again from the saved JSON, measuring nothing.
	saved := filepath.Join(t.TempDir(), "run.json")
	require.NoError(t, os.WriteFile(saved, out.Bytes(), 0o644))
	again := t.TempDir()
	require.NoError(t, replot(saved, again))
	for _, f := range []string{"seen-goroutines.svg", "heap-users.svg", "counts-users.svg"} {
		b, err := os.ReadFile(filepath.Join(again, f))
		require.NoError(t, err, f)
		assert.Contains(t, string(b), doc.Machine, "%s names the machine of the saved run", f)
	}
	require.NoError(t, os.WriteFile(saved, []byte(`{"Machine":"x"}`), 0o644))
	assert.ErrorContains(t, replot(saved, again), "no results")
}

var chartFiles = []string{"seen-goroutines.svg", "seen-shards.svg", "heap-users.svg", "counts-users.svg", "seen-latency.svg", "seen-tail.svg"}

func TestBadFlagsAreRejected(t *testing.T) {
	for _, bad := range [][]string{{"-users", "10,x"}, {"-users", "0"}, {"-procs", "-1"}, {"-runs", "-2"}, {"-new-users", "-5"}} {
		_, err := parseFlags(bad)
		assert.Error(t, err, strings.Join(bad, " "))
	}
	o, err := parseFlags([]string{"-quick"})
	require.NoError(t, err)
	assert.Equal(t, []int{100_000}, o.sizes)
	assert.Equal(t, 3, o.runs)
	assert.Empty(t, o.charts, "no charts from a quick run")
	o, err = parseFlags(nil)
	require.NoError(t, err)
	assert.Empty(t, o.charts, "a full run rewrites no committed chart unless asked")
	assert.Equal(t, []int{1, 4, 16, 64}, o.parallel)
	_, err = parseFlags([]string{"-h"})
	assert.ErrorIs(t, err, flag.ErrHelp, "-h is a request for the usage, which main answers with exit 0")
}
