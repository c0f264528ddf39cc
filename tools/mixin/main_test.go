package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// committed is where the mixin's files are, from this package's folder.
const committed = "../../mixin"

// TestCommittedMixinIsGenerated: mixin/ holds exactly what go run
// ./tools/mixin writes with its defaults, so that nobody edits the output by
// hand and loses it at the next generation.
func TestCommittedMixinIsGenerated(t *testing.T) {
	files, err := generate(defaults())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(committed, name))
		if err != nil {
			t.Fatalf("%v (run go run ./tools/mixin from the repository's root)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("mixin/%s differs from what go run ./tools/mixin writes: run it", name)
		}
	}
}

func defaults() config {
	return config{Metric: "active_users", Dimensions: []string{"plan", "platform"}, IncompleteFor: 5 * 60e9, Drop: 0.2, MaxOffset: 2}
}

// promtool returns the path of promtool: in CI (CI=true) its absence fails
// the test, since .ci/run installs it.
func promtool(t *testing.T) string {
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found: .ci/run should have installed it")
		}
		t.Skip("promtool not found (apt-get install -y prometheus)")
	}
	return p
}

// TestRulesPassPromtool: promtool checks the rules and runs their unit
// tests — every recording rule, and every alert firing and not firing —
// for the committed mixin, for one with another metric name and a single
// dimension, and for one with no dimension.
func TestRulesPassPromtool(t *testing.T) {
	pt := promtool(t)
	other := defaults()
	other.Metric, other.Dimensions = "gateway_active_users", []string{"region"}
	none := defaults()
	none.Dimensions = nil
	for name, dir := range map[string]string{"committed": committed, "other": writeTemp(t, other), "none": writeTemp(t, none)} {
		for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules_test.yaml"}} {
			cmd := exec.Command(pt, args...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: promtool %v: %v\n%s", name, args, err, out)
			}
		}
	}
}

func writeTemp(t *testing.T, c config) string {
	dir := t.TempDir()
	if err := write(c, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBadConfigIsRefused: a metric or dimension that is not a label name,
// and a share out of range.
func TestBadConfigIsRefused(t *testing.T) {
	for _, c := range []config{
		{Metric: "active-users", Drop: 0.2},
		{Metric: "m", Dimensions: []string{"window"}, Drop: 0.2},
		{Metric: "m", Dimensions: []string{"a b"}, Drop: 0.2},
		{Metric: "m", Drop: 1.5},
	} {
		if c.check() == nil {
			t.Errorf("%+v was accepted", c)
		}
	}
}
