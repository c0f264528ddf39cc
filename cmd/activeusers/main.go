// Command activeusers works with activeusers snapshots outside a gateway:
//
//	activeusers replay -o active.snap -account user.id -time time access.log.gz …
//	activeusers inspect active.snap
//	activeusers merge -o all.snap a.snap b.snap
//
// replay fills a tracker from access logs — JSON lines (slog, zap, Caddy,
// Envoy, Traefik) or the common and combined log formats — and writes the
// snapshot that activeusers.LoadFile and Persist start from, so that a new
// deployment's 7- and 30-day figures do not start at zero. inspect says what
// a snapshot holds; merge writes the union of several.
//
// Install it with go install github.com/activeusers/activeusers/cmd/activeusers@latest.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/activeusers/activeusers"
)

const usage = `activeusers: replay access logs into an activeusers snapshot, inspect one,
or merge several.

  activeusers replay -o FILE [flags] [LOG ...]   (no LOG, or -: standard input)
  activeusers inspect [flags] FILE
  activeusers merge -o FILE [flags] SNAPSHOT ...

A week of access logs replayed into a snapshot is the first step of a
deployment: a gateway that starts from it (activeusers.Persist) reports its
7-day figure from its first scrape. Run "activeusers replay -h" for the log
formats it reads and examples.
`

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// run is the command, for tests: it returns the exit code (0, 1 for a
// failure, 2 for a usage error).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "replay":
		err = replayCmd(args[1:], stdin, stdout, stderr)
	case "inspect":
		err = inspectCmd(args[1:], stdout, stderr)
	case "merge":
		err = mergeCmd(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "activeusers: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "activeusers %s: %v\n", args[0], err)
		return 2
	}
	fmt.Fprintf(stderr, "activeusers %s: %v\n", args[0], err)
	return 1
}

// usageError is a mistake in the command line.
type usageError struct{ error }

const replayUsage = `activeusers replay -o FILE [flags] [LOG ...]

Reads access logs, plain or gzip, in any order of time, and writes a snapshot
of the accounts they show active within the retention. Each line is a JSON
object or a line of the common or combined log format (the account is %u, the
time %t). A line it cannot use is skipped, counted and reported with its
place; it never stops the replay.

JSON logs need the field path of the account id and of the time: object keys
from the top, joined by dots. For example:

  slog:     -account user_id   -time time        {"time":"2026-11-28T12:00:00Z","msg":"req","user_id":"u42"}
  zap:      -account user_id   -time ts          {"ts":1764331200.5,"msg":"req","user_id":"u42"}
  Caddy:    -account user_id   -time ts          (its http.log.access lines)
  Envoy:    -account user      -time start_time  (a json_format with those keys)
  Traefik:  -account ClientUsername -time StartUTC
  CLF:      -format clf                          127.0.0.1 - u42 [28/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 5

Flags:
`

func replayCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { io.WriteString(stderr, replayUsage); fs.PrintDefaults() }
	var o replayOptions
	var out, secretFile, retention, now string
	var dims multiFlag
	fs.StringVar(&out, "o", "", "the snapshot to write (required)")
	fs.StringVar(&o.format, "format", "auto", "auto (JSON if a line starts with {, else the common log format), json or clf")
	fs.StringVar(&o.account, "account", "", "JSON: the field path of the account id (required for JSON)")
	fs.StringVar(&o.timeField, "time", "", "JSON: the field path of the time (required for JSON)")
	fs.Var(&dims, "dimension", "JSON: name=path, a dimension to count by and the field path of its value (repeatable)")
	fs.StringVar(&retention, "retention", "7d", "how long an account is kept: the gateway's retention")
	fs.StringVar(&secretFile, "secret-file", "", "a file holding the gateway's secret (WithSecret), for a keyed snapshot")
	fs.StringVar(&now, "now", "", "the clock, as RFC 3339 (default: the real one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if out == "" {
		return usageError{errors.New("-o FILE is required: the snapshot to write")}
	}
	switch o.format {
	case "auto", "json":
		if o.account == "" || o.timeField == "" {
			return usageError{errors.New("JSON logs need -account and -time, the field paths of the account id and the time (or -format clf for the common log format; see -h)")}
		}
	case "clf":
	default:
		return usageError{fmt.Errorf("-format %q: auto, json or clf", o.format)}
	}
	var err error
	if o.retention, err = parseDays(retention); err != nil || o.retention < time.Second || o.retention > activeusers.MaxRetention {
		return usageError{fmt.Errorf("-retention %q: a duration from 1s to %v (7d, 30d, 36h…)", retention, activeusers.MaxRetention)}
	}
	for _, d := range dims {
		name, path, ok := strings.Cut(d, "=")
		if !ok || name == "" || path == "" {
			return usageError{fmt.Errorf("-dimension %q: expected name=path, as plan=user.plan", d)}
		}
		o.dims = append(o.dims, dimField{name, path})
	}
	if o.secret, err = readSecret(secretFile); err != nil {
		return err
	}
	if now != "" {
		if o.now, err = time.Parse(time.RFC3339, now); err != nil {
			return usageError{fmt.Errorf("-now %q: expected RFC 3339, as 2026-11-28T12:00:00Z", now)}
		}
	}
	if err := checkOptions(o); err != nil {
		return usageError{err}
	}

	r := newReplayer(o)
	defer r.t.Close()
	inputs := fs.Args()
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	var total int64
	for _, name := range inputs {
		if name == "-" {
			total = -1
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			return err
		}
		if total >= 0 {
			total += fi.Size()
		}
	}
	start := time.Now()
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		done := make(chan struct{})
		defer close(done)
		go r.progress(stderr, total, 500*time.Millisecond, done)
	}
	for _, name := range inputs {
		if err := replayInput(r, name, stdin); err != nil {
			return err
		}
	}
	r.summary(stdout, time.Since(start))
	switch {
	case r.lines.Load() == 0:
		return errors.New("no log line in the input")
	case r.recorded == 0:
		return errors.New("no line of the input could be used (see the reasons above): is it a log of the format and fields given?")
	}
	if err := r.t.SaveFile(out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", out)
	return nil
}

// replayInput replays one input: a file, or standard input for "-".
func replayInput(r *replayer, name string, stdin io.Reader) error {
	if name == "-" {
		return r.replayFile(stdin, "stdin")
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return r.replayFile(f, name)
}

// checkOptions makes the tracker's own checks (dimension names) errors
// rather than panics.
func checkOptions(o replayOptions) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	names := make([]string, len(o.dims))
	for i, d := range o.dims {
		names[i] = d.name
	}
	activeusers.New(activeusers.WithClock(time.Now), activeusers.WithDimensions(names...))
	return nil
}

func inspectCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "activeusers inspect [flags] FILE\n\nSays what a snapshot holds: its format, when it was saved, its accounts per\nwindow as of then and now, its dimensions' values, and whether its hashes are\nkeyed under the secret given.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	windows := fs.String("windows", "5m,1h,24h,7d,30d", "comma-separated windows to count")
	secretFile := fs.String("secret-file", "", "a file holding a secret, to check the snapshot was written under it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("give one snapshot file")}
	}
	ws, labels, err := parseWindows(*windows)
	if err != nil {
		return usageError{err}
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := activeusers.InspectSnapshot(f, time.Time{}, ws...)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: snapshot version %d, saved %s (%v ago), %d accounts\n",
		fs.Arg(0), info.Version, info.Saved.UTC().Format(time.RFC3339), time.Since(info.Saved).Round(time.Second), info.Accounts)
	switch {
	case info.SecretCheck == "":
		fmt.Fprintln(stdout, "hashes: plain xxhash64 (no secret)")
	default:
		fmt.Fprintf(stdout, "hashes: keyed pseudonyms, secret check %s", info.SecretCheck)
		if *secretFile != "" {
			secret, err := readSecret(*secretFile)
			if err != nil {
				return err
			}
			t := activeusers.New(activeusers.WithClock(time.Now), activeusers.WithSecret(secret))
			if t.SecretCheck() == info.SecretCheck {
				fmt.Fprint(stdout, ": written under the secret given")
			} else {
				fmt.Fprintf(stdout, ": NOT the secret given (its check is %s)", t.SecretCheck())
			}
		}
		fmt.Fprintln(stdout)
	}
	now, err := activeusers.InspectSnapshot(reopen(f), time.Now(), ws...)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-10s %12s %12s\n", "window", "as saved", "as of now")
	for i, l := range labels {
		fmt.Fprintf(stdout, "%-10s %12d %12d\n", l, info.Counts[i], now.Counts[i])
	}
	for _, d := range info.Dimensions {
		fmt.Fprintf(stdout, "dimension %s: %d values (as saved)\n", d.Name, len(d.Values))
		for _, v := range d.Values {
			fmt.Fprintf(stdout, "  %-24s %s\n", v.Value, joinInts(v.Counts))
		}
	}
	return nil
}

// reopen rewinds f for a second read.
func reopen(f *os.File) io.Reader {
	f.Seek(0, io.SeekStart)
	return f
}

func mergeCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "activeusers merge -o FILE [flags] SNAPSHOT ...\n\nWrites the union of several snapshots: each account at the latest time any\nof them holds (several instances' snapshots, or a replay and a gateway's).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	out := fs.String("o", "", "the snapshot to write (required)")
	retention := fs.String("retention", "7d", "how long an account is kept: the gateway's retention")
	secretFile := fs.String("secret-file", "", "a file holding the secret the snapshots were written under")
	dims := fs.String("dimensions", "", "comma-separated dimensions to keep (default: none)")
	now := fs.String("now", "", "the clock, as RFC 3339 (default: the real one): what is past retention")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() == 0 {
		return usageError{errors.New("-o FILE and at least one snapshot are required")}
	}
	ret, err := parseDays(*retention)
	if err != nil || ret < time.Second || ret > activeusers.MaxRetention {
		return usageError{fmt.Errorf("-retention %q: a duration from 1s to %v", *retention, activeusers.MaxRetention)}
	}
	opts := []activeusers.Option{activeusers.WithRetention(ret)}
	if *now != "" {
		at, err := time.Parse(time.RFC3339, *now)
		if err != nil {
			return usageError{fmt.Errorf("-now %q: expected RFC 3339, as 2026-11-28T12:00:00Z", *now)}
		}
		opts = append(opts, activeusers.WithClock(func() time.Time { return at }))
	}
	if *dims != "" {
		opts = append(opts, activeusers.WithDimensions(strings.Split(*dims, ",")...))
	}
	secret, err := readSecret(*secretFile)
	if err != nil {
		return err
	}
	if secret != nil {
		opts = append(opts, activeusers.WithSecret(secret))
	}
	t := activeusers.New(opts...)
	defer t.Close()
	for _, in := range fs.Args() {
		if err := t.LoadFile(in); err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
	}
	if err := t.SaveFile(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d accounts from %d snapshots\n", *out, t.Len(), fs.NArg())
	return nil
}

// readSecret reads a secret file, trimmed of a final newline; nil for "".
func readSecret(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) < activeusers.MinSecretLen {
		return nil, fmt.Errorf("%s: the secret is %d bytes, it must be at least %d", path, len(b), activeusers.MinSecretLen)
	}
	return b, nil
}

// parseDays is time.ParseDuration with a d (day) unit.
func parseDays(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil {
			return 0, err
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	return time.ParseDuration(s)
}

// parseWindows reads comma-separated windows, keeping each as written.
func parseWindows(s string) ([]time.Duration, []string, error) {
	labels := strings.Split(s, ",")
	ws := make([]time.Duration, len(labels))
	for i, l := range labels {
		d, err := parseDays(strings.TrimSpace(l))
		if err != nil || d <= 0 {
			return nil, nil, fmt.Errorf("-windows: %q is not a duration (5m, 24h, 7d…)", l)
		}
		ws[i] = d
	}
	return ws, labels, nil
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, " ")
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
