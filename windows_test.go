package activeusers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestWindowLabel(t *testing.T) {
	for d, want := range map[time.Duration]string{
		90 * time.Second:        "90s",
		5 * time.Minute:         "5m",
		90 * time.Minute:        "90m",
		time.Hour:               "1h",
		24 * time.Hour:          "24h",
		36 * time.Hour:          "36h",
		48 * time.Hour:          "2d",
		7 * 24 * time.Hour:      "7d",
		1500 * time.Millisecond: "1.5s",
	} {
		assert.Equal(t, want, WindowLabel(d), "%v", d)
	}
}

func TestCheckWindowsNamesEachMistake(t *testing.T) {
	tr := New(WithRetention(48*time.Hour), WithClock(time.Now))
	assert.NoError(t, tr.CheckWindows(time.Hour, 24*time.Hour, 48*time.Hour))
	for _, c := range []struct {
		ws   []time.Duration
		want string
	}{
		{nil, "no windows"},
		{[]time.Duration{0}, "window 0s is not positive"},
		{[]time.Duration{-time.Hour}, "window -1h0m0s is not positive"},
		{[]time.Duration{1500 * time.Millisecond}, "not a whole number of seconds"},
		{[]time.Duration{72 * time.Hour}, "longer than the tracker's retention of 48h0m0s"},
		{[]time.Duration{time.Hour, 60 * time.Minute}, "window 1h0m0s is given twice"},
	} {
		assert.ErrorContains(t, tr.CheckWindows(c.ws...), c.want)
	}
	var nilTracker *Tracker
	assert.ErrorContains(t, nilTracker.CheckWindows(time.Hour), "nil *Tracker")
}
