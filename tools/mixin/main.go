// Command mixin writes activeusers' monitoring mixin: a Grafana dashboard,
// Prometheus recording and alerting rules, and the rules' unit tests, for
// the series auprom exports. The files in mixin/ are its output for the
// demo's series; run it with your metric's name and dimensions for yours:
//
//	go run ./tools/mixin                                       # mixin/ as committed
//	go run ./tools/mixin -metric gateway_active_users -dimensions plan,region -out my-mixin
//
// Check the rules with promtool check rules and promtool test rules (the
// tests in tools/mixin run both against the committed files).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// config is what the mixin is generated for.
type config struct {
	Metric     string   // the gauge auprom exports: active_users, or with a namespace gateway_active_users
	Dimensions []string // the tracker's dimensions (WithDimensions), each a label
	// IncompleteFor is how long a cluster's figure may stay incomplete before
	// the alert fires: a few push intervals and the registry's settling.
	IncompleteFor time.Duration
	// Drop is the share of the 24h figure that, lost within an hour, fires
	// the alert for a gauge reset (a restart without a snapshot).
	Drop float64
	// MaxOffset is the clock offset, in seconds, past which instances are
	// told their clocks disagree with Redis's.
	MaxOffset float64
}

func main() {
	var c config
	var dims, out string
	flag.StringVar(&c.Metric, "metric", "active_users", "the gauge's name, with its namespace (auprom.WithNamespace)")
	flag.StringVar(&dims, "dimensions", "plan,platform", "comma-separated dimensions the tracker counts by (\"\": none)")
	flag.DurationVar(&c.IncompleteFor, "incomplete-for", 5*time.Minute, "how long a cluster figure may be incomplete before alerting")
	flag.Float64Var(&c.Drop, "drop", 0.2, "the share of the 24h figure lost within an hour that alerts")
	flag.Float64Var(&c.MaxOffset, "max-offset", 2, "the clock offset from Redis's, in seconds, past which to alert")
	flag.StringVar(&out, "out", "mixin", "the folder to write dashboard.json, rules.yaml and rules_test.yaml into")
	flag.Parse()
	if dims != "" {
		c.Dimensions = strings.Split(dims, ",")
	}
	if err := c.check(); err != nil {
		fmt.Fprintln(os.Stderr, "mixin:", err)
		os.Exit(2)
	}
	if err := write(c, out); err != nil {
		fmt.Fprintln(os.Stderr, "mixin:", err)
		os.Exit(1)
	}
}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func (c config) check() error {
	if !labelName.MatchString(c.Metric) {
		return fmt.Errorf("-metric %q is not a metric name", c.Metric)
	}
	for _, d := range c.Dimensions {
		if !labelName.MatchString(d) || d == "window" {
			return fmt.Errorf("-dimensions: %q is not a dimension's label", d)
		}
	}
	if c.Drop <= 0 || c.Drop >= 1 {
		return fmt.Errorf("-drop %v: a share between 0 and 1", c.Drop)
	}
	return nil
}

// write writes the three files into dir.
func write(c config, dir string) error {
	files, err := generate(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// generate returns the files' contents by name.
func generate(c config) (map[string][]byte, error) {
	dash, err := json.MarshalIndent(dashboard(c), "", "  ")
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{"dashboard.json": append(dash, '\n')}
	for name, tmpl := range map[string]string{"rules.yaml": rulesTemplate, "rules_test.yaml": rulesTestTemplate} {
		var b bytes.Buffer
		t := template.Must(template.New(name).Delims("[[", "]]").Funcs(template.FuncMap{
			"overall": c.overall, "seconds": func(d time.Duration) string { return fmt.Sprint(int(d.Seconds())) },
			"minutes": func(d time.Duration) int { return int(d.Minutes()) },
			"pct":     func(f float64) string { return fmt.Sprint(int(f*100 + 0.5)) },
		}).Parse(tmpl))
		if err := t.Execute(&b, c); err != nil {
			return nil, err
		}
		files[name] = b.Bytes()
	}
	return files, nil
}

// overall is the matchers that select the overall series: every dimension's
// label empty (absent). extra matchers go first.
func (c config) overall(extra ...string) string {
	m := extra
	for _, d := range c.Dimensions {
		m = append(m, d+`=""`)
	}
	return strings.Join(m, ",")
}
