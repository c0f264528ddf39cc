package main

import (
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
)

// A go test -json stream: a package with a pass, a skip with its reason, a
// subtest skipped, a failure; a package without tests; one that failed to
// build (its output is not JSON).
const stream = `{"Action":"start","Package":"example.com/a"}
{"Action":"run","Package":"example.com/a","Test":"TestPass"}
{"Action":"output","Package":"example.com/a","Test":"TestPass","Output":"=== RUN   TestPass\n"}
{"Action":"pass","Package":"example.com/a","Test":"TestPass","Elapsed":0.01}
{"Action":"run","Package":"example.com/a","Test":"TestRedis"}
{"Action":"output","Package":"example.com/a","Test":"TestRedis","Output":"=== RUN   TestRedis\n"}
{"Action":"output","Package":"example.com/a","Test":"TestRedis","Output":"    a_test.go:12: redis-server not found (apt-get install -y redis-server)\n"}
{"Action":"output","Package":"example.com/a","Test":"TestRedis","Output":"--- SKIP: TestRedis (0.00s)\n"}
{"Action":"skip","Package":"example.com/a","Test":"TestRedis","Elapsed":0}
{"Action":"output","Package":"example.com/a","Test":"TestSub/arm","Output":"=== RUN   TestSub/arm\n"}
{"Action":"output","Package":"example.com/a","Test":"TestSub/arm","Output":"        a_test.go:30: not on this platform\n"}
{"Action":"output","Package":"example.com/a","Test":"TestSub/arm","Output":"    --- SKIP: TestSub/arm (0.00s)\n"}
{"Action":"skip","Package":"example.com/a","Test":"TestSub/arm","Elapsed":0}
{"Action":"output","Package":"example.com/a","Test":"TestBad","Output":"    a_test.go:40: got 1, want 2\n"}
{"Action":"fail","Package":"example.com/a","Test":"TestBad","Elapsed":0}
{"Action":"fail","Package":"example.com/a","Elapsed":1.5}
{"Action":"output","Package":"example.com/empty","Output":"?   \texample.com/empty\t[no test files]\n"}
{"Action":"skip","Package":"example.com/empty","Elapsed":0}
{"Action":"pass","Package":"example.com/b","Elapsed":2.25}
# example.com/c
c.go:3:1: syntax error
`

func TestReportFindsSkipsAndFailures(t *testing.T) {
	var out strings.Builder
	skips, failed := report(strings.NewReader(stream), &out)
	want := []skip{
		{"example.com/a", "TestRedis", "a_test.go:12: redis-server not found (apt-get install -y redis-server)"},
		{"example.com/a", "TestSub/arm", "a_test.go:30: not on this platform"},
	}
	if len(skips) != len(want) {
		t.Fatalf("skips %v, want %v", skips, want)
	}
	for i := range want {
		if skips[i] != want[i] {
			t.Errorf("skip %d: %+v, want %+v", i, skips[i], want[i])
		}
	}
	if len(failed) != 1 || failed[0] != "example.com/a" {
		t.Errorf("failed %v, want [example.com/a]", failed)
	}
	for _, line := range []string{
		"--- FAIL: example.com/a TestBad\n    a_test.go:40: got 1, want 2\n",
		"   FAIL example.com/a (1.5s)\n",
		"   ok   example.com/b (2.2s)\n",
		"c.go:3:1: syntax error\n",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the report lacks %q:\n%s", line, out.String())
		}
	}
	if strings.Contains(out.String(), "example.com/empty") {
		t.Errorf("a package without tests is reported:\n%s", out.String())
	}
}

func TestArgsPassToGoTest(t *testing.T) {
	strict, race, rest, err := parseArgs([]string{"-run", "Snapshot", "-strict", "-short", "-race=false", "-count=2"})
	if err != nil || !strict || race || !slices.Equal(rest, []string{"-run", "Snapshot", "-short", "-count=2"}) {
		t.Errorf("got strict %v, race %v, rest %q, %v; want true, false, every other argument in order", strict, race, rest, err)
	}
	strict, race, rest, err = parseArgs(nil)
	if err != nil || strict || !race || len(rest) != 0 {
		t.Errorf("no arguments: strict %v, race %v, rest %q, %v; want -race alone", strict, race, rest, err)
	}
	if _, _, _, err := parseArgs([]string{"--race=maybe"}); err == nil || !strings.Contains(err.Error(), "want true or false") {
		t.Errorf("--race=maybe: %v", err)
	}
	if _, _, _, err := parseArgs([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}
