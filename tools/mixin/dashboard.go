package main

import (
	"fmt"
	"strings"
)

// Panel is one panel's title and queries, as the dashboard holds them and
// as the end-to-end test reads them back.
type target struct {
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat,omitempty"`
	RefID        string `json:"refId"`
	Instant      bool   `json:"instant,omitempty"`
}

// dashboard returns the Grafana dashboard (JSON model, schema 39): the
// active users per window, by each dimension's values (their share, the
// top ones, their stickiness, those folded into the overflow value), the
// stickiness of the whole, and the cluster's health. Its variables are the
// data source, the job (all by default) and the window the per-value panels
// show.
func dashboard(c config) map[string]any {
	m := c.Metric
	job := `job=~"$job"`
	sel := func(extra ...string) string {
		return m + "{" + strings.Join(append([]string{job}, extra...), ",") + "}"
	}
	overall := func(extra ...string) string { return m + "{" + c.overall(append([]string{job}, extra...)...) + "}" }

	var panels []map[string]any
	x, y, id := 0, 0, 0
	row := func(title string) {
		if x > 0 {
			x, y = 0, y+8
		}
		id++
		panels = append(panels, map[string]any{"id": id, "type": "row", "title": title, "collapsed": false,
			"gridPos": map[string]int{"x": 0, "y": y, "w": 24, "h": 1}, "panels": []any{}})
		y++
	}
	add := func(kind, title, desc, unit string, w int, targets ...target) {
		if x+w > 24 {
			x, y = 0, y+8
		}
		for i := range targets {
			targets[i].RefID = string(rune('A' + i))
		}
		id++
		p := map[string]any{
			"id": id, "type": kind, "title": title, "description": desc,
			"datasource":  map[string]string{"type": "prometheus", "uid": "${datasource}"},
			"gridPos":     map[string]int{"x": x, "y": y, "w": w, "h": 8},
			"targets":     targets,
			"fieldConfig": map[string]any{"defaults": map[string]any{"unit": unit}, "overrides": []any{}},
		}
		switch kind {
		case "stat":
			p["options"] = map[string]any{"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}}, "colorMode": "value", "graphMode": "none"}
		case "bargauge":
			p["options"] = map[string]any{"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}}, "orientation": "horizontal", "displayMode": "basic"}
		case "timeseries":
			p["options"] = map[string]any{"legend": map[string]any{"displayMode": "table", "placement": "right", "calcs": []string{"lastNotNull"}}}
		}
		panels = append(panels, p)
		x += w
	}

	row("Active users")
	add("timeseries", "Active users by window",
		"Distinct accounts active within each window: the cluster's figure with auredis (every pod reports it), else one instance's. Never sum the windows: they are nested.",
		"short", 16, target{Expr: "max by (window) (" + overall() + ")", LegendFormat: "{{window}}"})
	add("stat", "Active users now", "The latest figure of each window.", "short", 8,
		target{Expr: "max by (window) (" + overall() + ")", LegendFormat: "{{window}}", Instant: true})
	add("timeseries", "Stickiness", "The share of a longer window's users active in a shorter one: DAU/WAU, DAU/MAU and WAU/MAU (the last two need a 30d window, and a 30-day retention).",
		"percentunit", 24,
		target{Expr: "max(" + overall(`window="24h"`) + ") / max(" + overall(`window="7d"`) + ")", LegendFormat: "DAU/WAU"},
		target{Expr: "max(" + overall(`window="24h"`) + ") / max(" + overall(`window="30d"`) + ")", LegendFormat: "DAU/MAU"},
		target{Expr: "max(" + overall(`window="7d"`) + ") / max(" + overall(`window="30d"`) + ")", LegendFormat: "WAU/MAU"})

	for _, d := range c.Dimensions {
		row("By " + d)
		values := func(window string) string {
			return "max by (" + d + ") (" + sel(`window="`+window+`"`, d+`!=""`) + ")"
		}
		add("timeseries", fmt.Sprintf("Active users by %s ($window)", d), fmt.Sprintf("Each %s's distinct accounts in the window chosen above. An account in two values counts in both.", d),
			"short", 12, target{Expr: values("$window"), LegendFormat: "{{" + d + "}}"})
		add("bargauge", fmt.Sprintf("Top %s values ($window)", d), "The ten values with the most active accounts.", "short", 12,
			target{Expr: "topk(10, " + values("$window") + ")", LegendFormat: "{{" + d + "}}", Instant: true})
		add("timeseries", fmt.Sprintf("Share of each %s ($window)", d), fmt.Sprintf("Each %s's accounts over all accounts active in the window.", d), "percentunit", 12,
			target{Expr: values("$window") + " / ignoring(" + d + ") group_left max(" + overall(`window="$window"`) + ")", LegendFormat: "{{" + d + "}}"})
		named := func(window string) string { // without the overflow value, whose ratio means nothing
			return "max by (" + d + ") (" + sel(`window="`+window+`"`, d+`!~"|__overflow__"`) + ")"
		}
		add("timeseries", fmt.Sprintf("Stickiness by %s (DAU/WAU)", d), fmt.Sprintf("Each %s's accounts active in the last day over those active in the last week.", d), "percentunit", 12,
			target{Expr: named("24h") + " / " + named("7d"), LegendFormat: "{{" + d + "}}"})
	}
	if len(c.Dimensions) > 0 {
		add("timeseries", "Values folded into the overflow value", "Recordings a second whose value went to __overflow__: beyond the tracker's bound of values (WithMaxValues), too long or not UTF-8. Raise the bound if this is not zero.",
			"ops", 24, target{Expr: "sum by (dimension) (rate(" + m + `_values_folded_total{` + job + `}[$__rate_interval]))`, LegendFormat: "{{dimension}}"})
	}

	row("Cluster (auredis)")
	add("stat", "Redis reachable", "1 while every pod reports the cluster's figure; 0 while one falls back to its own.", "bool", 6,
		target{Expr: "min(" + m + "_cluster_reachable{" + job + "})", Instant: true})
	add("stat", "Figure complete", "1 while the figure holds every live instance's latest push; 0 after a fault (Redis restarted, restored, failed over, lost a key, full) until it is repaired.", "bool", 6,
		target{Expr: "min(" + m + "_cluster_complete{" + job + "})", Instant: true})
	add("timeseries", "Instances by state", "Instances the cluster knows, and those whose latest push is whole in the figure.", "short", 12,
		target{Expr: "max by (state) (" + m + "_cluster_instances{" + job + "})", LegendFormat: "{{state}}"})
	add("timeseries", "Clock offset from Redis", "Each instance's clock against Redis's (the cluster's reference): windows are counted on Redis's clock.", "s", 24,
		target{Expr: "max by (instance) (" + m + "_cluster_clock_offset_seconds{" + job + "})", LegendFormat: "{{instance}}"})

	ds := map[string]string{"type": "prometheus", "uid": "${datasource}"}
	return map[string]any{
		"title":         "Active users",
		"uid":           "activeusers",
		"description":   "activeusers: distinct active accounts per window, by segment, and the cluster's health. Generated by go run ./tools/mixin.",
		"tags":          []string{"activeusers"},
		"schemaVersion": 39,
		"editable":      true,
		"time":          map[string]string{"from": "now-24h", "to": "now"},
		"refresh":       "30s",
		"templating": map[string]any{"list": []any{
			map[string]any{"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
			map[string]any{"name": "job", "label": "Job", "type": "query", "datasource": ds,
				"query":      map[string]string{"query": "label_values(" + m + ", job)", "refId": "job"},
				"definition": "label_values(" + m + ", job)", "refresh": 2, "includeAll": true, "multi": true, "allValue": ".*",
				"current": map[string]any{"text": "All", "value": "$__all"}},
			map[string]any{"name": "window", "label": "Window", "type": "query", "datasource": ds,
				"query":      map[string]string{"query": "label_values(" + m + ", window)", "refId": "window"},
				"definition": "label_values(" + m + ", window)", "refresh": 2,
				"current": map[string]any{"text": "24h", "value": "24h"}},
		}},
		"panels": panels,
	}
}
