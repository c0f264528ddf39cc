package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// panelWant is what a dashboard panel's queries must return against the
// demo: at least min series, each with every label of labels, and values
// within [lo, hi].
type panelWant struct {
	labels []string
	min    int
	lo, hi float64
}

// dashboardWants is, by panel title, what each of mixin/dashboard.json's
// panels must show for two demo gateways on one Redis, with plans and
// platforms, windows up to 30d.
var dashboardWants = map[string]panelWant{
	"Active users by window":                {[]string{"window"}, 5, 1, 1e9},
	"Active users now":                      {[]string{"window"}, 5, 1, 1e9},
	"Stickiness":                            {nil, 1, 0.01, 1},
	"Active users by plan ($window)":        {[]string{"plan"}, 3, 0, 1e9},
	"Top plan values ($window)":             {[]string{"plan"}, 3, 0, 1e9},
	"Share of each plan ($window)":          {[]string{"plan"}, 3, 0, 1},
	"Stickiness by plan (DAU/WAU)":          {[]string{"plan"}, 3, 0, 1},
	"Active users by platform ($window)":    {[]string{"platform"}, 3, 0, 1e9},
	"Top platform values ($window)":         {[]string{"platform"}, 3, 0, 1e9},
	"Share of each platform ($window)":      {[]string{"platform"}, 3, 0, 1},
	"Stickiness by platform (DAU/WAU)":      {[]string{"platform"}, 3, 0, 1},
	"Values folded into the overflow value": {[]string{"dimension"}, 2, 0, 0},
	"Redis reachable":                       {nil, 1, 1, 1},
	"Figure complete":                       {nil, 1, 1, 1},
	"Instances by state":                    {[]string{"state"}, 2, 2, 2},
	"Clock offset from Redis":               {[]string{"instance"}, 2, -1, 1},
}

// TestDashboardPanelsShowTheDemo: a real Prometheus scrapes two demo
// gateways on one real Redis, counting by plan and platform with windows up
// to 30 days; every query of every panel of the committed dashboard, with
// its variables set as Grafana would (all jobs, the 24h window), returns the
// series its panel draws, with the labels its legend names and values in
// range. Each panel's title and queries are logged.
func TestDashboardPanelsShowTheDemo(t *testing.T) {
	prom := need(t, "prometheus")
	b, err := os.ReadFile("../../mixin/dashboard.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Type, Title string
			Targets     []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(b, &dash))

	sock := startRedis(t)
	flags := []string{"-redis", "unix://" + sock, "-push-every", "200ms", "-retention", "30d", "-windows", "5m,1h,24h,7d,30d"}
	a, g := startGateway(t, flags...), startGateway(t, flags...)
	driveSegments(t, a, 0, 60)
	driveSegments(t, g, 30, 90)
	promAddr, promLog := runPrometheus(t, prom, a, g)

	vars := strings.NewReplacer(`$job`, `.*`, `$window`, `24h`, `$__rate_interval`, `1m`)
	var problems []string
	check := func() bool {
		problems = problems[:0]
		seen := map[string]bool{}
		for _, p := range dash.Panels {
			if p.Type == "row" {
				continue
			}
			seen[p.Title] = true
			want, ok := dashboardWants[p.Title]
			if !ok {
				problems = append(problems, fmt.Sprintf("panel %q: the test does not know it", p.Title))
				continue
			}
			for _, target := range p.Targets {
				series, err := queryAll(promAddr, vars.Replace(target.Expr))
				if err != nil {
					problems = append(problems, fmt.Sprintf("%q: %s: %v", p.Title, target.Expr, err))
					continue
				}
				if len(series) < want.min {
					problems = append(problems, fmt.Sprintf("%q: %s: %d series, want %d", p.Title, target.Expr, len(series), want.min))
				}
				for _, s := range series {
					for _, l := range want.labels {
						if s.labels[l] == "" {
							problems = append(problems, fmt.Sprintf("%q: %s: a series without %s: %v", p.Title, target.Expr, l, s.labels))
						}
					}
					if s.value < want.lo || s.value > want.hi {
						problems = append(problems, fmt.Sprintf("%q: %s: %v = %v, want %v to %v", p.Title, target.Expr, s.labels, s.value, want.lo, want.hi))
					}
				}
			}
		}
		for title := range dashboardWants {
			if !seen[title] {
				problems = append(problems, fmt.Sprintf("panel %q is not in the dashboard", title))
			}
		}
		return len(problems) == 0
	}
	ok := false
	for deadline := time.Now().Add(90 * time.Second); !ok && time.Now().Before(deadline); {
		if ok = check(); !ok {
			time.Sleep(500 * time.Millisecond)
		}
	}
	require.True(t, ok, "panels without their series:\n%s\nPrometheus's log:\n%s", strings.Join(problems, "\n"), promLog())
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			if p.Type != "row" {
				t.Logf("%-40s %s", p.Title, target.Expr)
			}
		}
	}
}

type series struct {
	labels map[string]string
	value  float64
}

// queryAll runs an instant query and returns every series of its result.
func queryAll(promAddr, q string) ([]series, error) {
	resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status, Error string
		Data          struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s", r.Error)
	}
	var out []series
	for _, res := range r.Data.Result {
		s, _ := res.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, series{res.Metric, v})
	}
	slices.SortFunc(out, func(a, b series) int { return strings.Compare(fmt.Sprint(a.labels), fmt.Sprint(b.labels)) })
	return out, nil
}
