package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFindField(t *testing.T) {
	line := `{"time":"2026-11-28T12:00:00Z","level":"INFO","user":{"id":"u\"42","plan":"pro"},"http.request.id":"r1",` +
		`"n":1234,"neg":-5,"arr":["first","second"],"skip":{"a":[1,{"b":"}"}],"c":null},"esc\"key":"e","t":true}`
	for _, c := range []struct {
		path string
		want string
		str  bool
		err  error
	}{
		{"time", "2026-11-28T12:00:00Z", true, nil},
		{"user.id", `u"42`, true, nil},
		{"user.plan", "pro", true, nil},
		{"http.request.id", "r1", true, nil}, // a key with dots, whole
		{"n", "1234", false, nil},
		{"neg", "-5", false, nil},
		{"arr", "first", true, nil},
		{`esc"key`, "e", true, nil},
		{"missing", "", false, errNoField},
		{"user.missing", "", false, errNoField},
		{"time.x", "", false, errNoField}, // a string is not an object
		{"skip", "", false, errNotScalar},
		{"t", "", false, errNotScalar},
	} {
		v, str, err := findField([]byte(line), c.path)
		if c.err != nil {
			assert.ErrorIs(t, err, c.err, c.path)
			continue
		}
		require.NoError(t, err, c.path)
		assert.Equal(t, c.want, string(v), c.path)
		assert.Equal(t, c.str, str, c.path)
	}
	for _, bad := range []string{``, `[1,2]`, `plain text`, `{"a":"unterminated`, `{"a" 1}`, `{"a":}`} {
		_, _, err := findField([]byte(bad), "a")
		assert.Error(t, err, bad)
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		v   string
		str bool
	}{
		{"2026-11-28T12:00:00Z", true},
		{"2026-11-28T13:00:00+01:00", true},
		{"2026-11-28T12:00:00.000Z", true},
		{"2026-11-28 12:00:00Z", true},
		{"28/Nov/2026:12:00:00 +0000", true},
		{"1795867200", false},
		{"1795867200.0", false},
		{"1795867200", true},
		{"1795867200000", false},    // ms
		{"1795867200000000", false}, // µs
		{"1795867200000000000", false},
	} {
		got, err := parseTime([]byte(c.v), c.str)
		require.NoError(t, err, c.v)
		assert.True(t, want.Equal(got), "%s: %v", c.v, got)
	}
	for _, c := range []string{"yesterday", "2026-13-45T00:00:00Z", "-5", "0", ""} {
		_, err := parseTime([]byte(c), true)
		assert.ErrorIs(t, err, errTime, c)
	}
}

func TestParseCLF(t *testing.T) {
	user, when, err := parseCLF([]byte(`10.0.0.1 - u42 [28/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"`))
	require.NoError(t, err)
	assert.Equal(t, "u42", string(user))
	assert.Equal(t, "28/Nov/2026:12:00:00 +0000", string(when))
	_, _, err = parseCLF([]byte(`10.0.0.1 - - [28/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1" 401 0`))
	assert.ErrorIs(t, err, errNoUser)
	for _, bad := range []string{"", "just words", "a b c no-bracket", "a b c [unclosed"} {
		_, _, err := parseCLF([]byte(bad))
		assert.ErrorIs(t, err, errNotCLF, bad)
	}
}

// FuzzFindField: hostile lines never panic, and a value found is within
// the line or a decoding of part of it.
func FuzzFindField(f *testing.F) {
	f.Add([]byte(`{"user":{"id":"u1"},"ts":1.5}`), "user.id")
	f.Add([]byte(`{"a":[1,{"b":"}"}],"c":"\u00e9\\"}`), "c")
	f.Add([]byte(`{"x":`), "x")
	f.Fuzz(func(t *testing.T, line []byte, path string) {
		v, _, err := findField(line, path)
		if err == nil && len(v) > len(line) {
			t.Fatalf("a value of %d bytes from a line of %d", len(v), len(line))
		}
	})
}
