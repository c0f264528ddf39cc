package activeusers

import (
	"fmt"
	"strconv"
	"time"
)

// WindowLabel formats a window the way dashboards write it, for a metric
// label: "90s", "5m", "1h", "24h", "7d". Whole days from two days up are
// written in days; 24h stays "24h", as it is usually called. A window that is
// not a whole number of seconds falls back to time.Duration's form.
func WindowLabel(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= 2*day && d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	case d >= time.Hour && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d >= time.Minute && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d > 0 && d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// CheckWindows returns an error naming the first window an exporter of t
// should refuse: none at all, one not positive or not a whole number of
// seconds (the tracker's resolution), one longer than the retention (it would
// silently count as the retention), or two with the same label.
func (t *Tracker) CheckWindows(windows ...time.Duration) error {
	if t == nil {
		return fmt.Errorf("activeusers: nil *Tracker")
	}
	if len(windows) == 0 {
		return fmt.Errorf("activeusers: no windows to count")
	}
	seen := map[string]bool{}
	for _, w := range windows {
		switch {
		case w <= 0:
			return fmt.Errorf("activeusers: window %v is not positive", w)
		case w%time.Second != 0:
			return fmt.Errorf("activeusers: window %v is not a whole number of seconds", w)
		case w > t.Retention():
			return fmt.Errorf("activeusers: window %v is longer than the tracker's retention of %v", w, t.Retention())
		case seen[WindowLabel(w)]:
			return fmt.Errorf("activeusers: window %v is given twice", w)
		}
		seen[WindowLabel(w)] = true
	}
	return nil
}
