package main

import (
	"errors"
	"math"
	"strconv"
	"time"
)

// timeFormats is what parseTime accepts, for error messages.
const timeFormats = "RFC 3339 (2006-01-02T15:04:05Z07:00, as slog, Envoy and Traefik write), " +
	"the common log format's 02/Jan/2006:15:04:05 -0700, or Unix seconds, milliseconds, " +
	"microseconds or nanoseconds (as zap and Caddy write)"

var errTime = errors.New("a time in none of " + timeFormats)

// parseTime reads a log line's time: a string in one of the layouts logs
// use, or a number (or a string of digits) of Unix seconds — with a
// fraction, as zap and Caddy write — or of milliseconds, microseconds or
// nanoseconds, told apart by their size.
func parseTime(v []byte, str bool) (time.Time, error) {
	if str && len(v) > 0 && (v[0] < '0' || v[0] > '9' || len(v) >= 10 && (v[4] == '-' || v[2] == '/')) {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "02/Jan/2006:15:04:05 -0700", "2006-01-02T15:04:05.999999999"} {
			if t, err := time.Parse(layout, string(v)); err == nil {
				return t, nil
			}
		}
		return time.Time{}, errTime
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) {
		return time.Time{}, errTime
	}
	switch {
	case f < 1e11: // seconds, up to the year 5138
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	case f < 1e14:
		return time.UnixMilli(int64(f)), nil
	case f < 1e17:
		return time.UnixMicro(int64(f)), nil
	}
	return time.Unix(0, int64(f)), nil
}
