package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/activeusers/activeusers"
)

// replayOptions is what replay is told.
type replayOptions struct {
	format    string // "auto", "json" or "clf"
	account   string // JSON field path of the account id
	timeField string // JSON field path of the time
	dims      []dimField
	retention time.Duration
	secret    []byte
	now       time.Time // the clock: zero for the real one
}

// dimField is one -dimension: a name, and the JSON field path of its value.
type dimField struct{ name, path string }

// maxLine bounds a log line; a longer one is skipped and reported.
const maxLine = 1 << 20

// replayer records log lines into a tracker and keeps what the summary
// reports.
type replayer struct {
	o        replayOptions
	t        *activeusers.Tracker
	lines    atomic.Int64 // non-blank lines read (progress reads it too)
	blank    int64
	recorded int64
	old      int64 // recorded, but older than the retention: kept out
	ahead    int64 // recorded as the clock's now: the log is ahead of it
	skips    map[string]*skipped
	first    time.Time
	last     time.Time
	read     atomic.Int64 // bytes read of the inputs (compressed, for gzip)
	vals     []string
}

// skipped is one reason lines were skipped for: how many, and where the
// first few were.
type skipped struct {
	n     int64
	where []string
}

const firstWhere = 3

func newReplayer(o replayOptions) *replayer {
	opts := []activeusers.Option{activeusers.WithRetention(o.retention)}
	if !o.now.IsZero() {
		now := o.now
		opts = append(opts, activeusers.WithClock(func() time.Time { return now }))
	}
	if o.secret != nil {
		opts = append(opts, activeusers.WithSecret(o.secret))
	}
	if len(o.dims) > 0 {
		names := make([]string, len(o.dims))
		for i, d := range o.dims {
			names[i] = d.name
		}
		opts = append(opts, activeusers.WithDimensions(names...))
	}
	return &replayer{o: o, t: activeusers.New(opts...), skips: map[string]*skipped{}, vals: make([]string, len(o.dims))}
}

// skip notes that line n of name was skipped for why.
func (r *replayer) skip(why, name string, n int64) {
	s := r.skips[why]
	if s == nil {
		s = &skipped{}
		r.skips[why] = s
	}
	s.n++
	if len(s.where) < firstWhere {
		s.where = append(s.where, fmt.Sprintf("%s:%d", name, n))
	}
}

// countingReader counts the bytes read through it into n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// replayFile records every line of one input, plain or gzip, named name in
// reports. It returns an error only for input it cannot read at all: a
// gzip stream that is corrupt, a read that fails; lines it cannot use are
// skipped and reported.
func (r *replayer) replayFile(in io.Reader, name string) error {
	br := bufio.NewReaderSize(countingReader{in, &r.read}, 64<<10)
	gz := false
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz = true
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: unreadable gzip: %w", name, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	var n int64
	for {
		line, err := br.ReadSlice('\n')
		long := errors.Is(err, bufio.ErrBufferFull)
		if long { // longer than the buffer: gather it, up to maxLine
			full := slices.Clone(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				if len(full) < maxLine {
					full = append(full, line...)
				}
			}
			line = full
		}
		if len(line) > 0 {
			n++
			if len(line) > maxLine {
				r.lines.Add(1)
				r.skip(fmt.Sprintf("a line longer than %d bytes", maxLine), name, n)
			} else {
				r.line(bytes.TrimRight(line, "\r\n"), name, n)
			}
		}
		switch {
		case err == io.EOF:
			return nil
		case err != nil && gz:
			return fmt.Errorf("%s: unreadable gzip after line %d: %w", name, n, err)
		case err != nil:
			return fmt.Errorf("%s: reading after line %d: %w", name, n, err)
		}
	}
}

// line records one line, n of name, or skips it with the reason.
func (r *replayer) line(line []byte, name string, n int64) {
	if len(bytes.TrimSpace(line)) == 0 {
		r.blank++
		return
	}
	r.lines.Add(1)
	var acct, when []byte
	var whenStr bool
	json := r.o.format == "json" || r.o.format == "auto" && line[0] == '{'
	if json {
		var err error
		if acct, _, err = findField(line, r.o.account); err != nil { // a number's digits are its id
			r.skip(fieldReason(err, r.o.account, "JSON object"), name, n)
			return
		}
		if when, whenStr, err = findField(line, r.o.timeField); err != nil {
			r.skip(fieldReason(err, r.o.timeField, "JSON object"), name, n)
			return
		}
		for i, d := range r.o.dims {
			v, _, err := findField(line, d.path)
			if err != nil {
				r.vals[i] = "" // leaves the dimension out for this line
				continue
			}
			r.vals[i] = string(v)
		}
	} else {
		clear(r.vals) // the common log format names no dimension's value
		var err error
		if acct, when, err = parseCLF(line); err != nil {
			r.skip(err.Error(), name, n)
			return
		}
		whenStr = true
	}
	if len(acct) == 0 {
		r.skip("an empty account id", name, n)
		return
	}
	at, err := parseTime(when, whenStr)
	if err != nil {
		r.skip(fmt.Sprintf("a time in none of the formats it reads (%s)", timeFormats), name, n)
		return
	}
	now := r.t.Now()
	switch {
	case now.Sub(at) > r.o.retention:
		r.old++
	case at.After(now):
		r.ahead++
	}
	if r.first.IsZero() || at.Before(r.first) {
		r.first = at
	}
	if at.After(r.last) {
		r.last = at
	}
	r.recorded++
	if len(r.o.dims) == 0 {
		r.t.SeenAt(string(acct), at)
		return
	}
	r.t.SeenInAt(string(acct), at, r.vals...)
}

// fieldReason says why a field could not be read, as a reason to skip.
func fieldReason(err error, path, what string) string {
	switch {
	case errors.Is(err, errNoField):
		return fmt.Sprintf("no field %q (expected it in every %s: check -account and -time)", path, what)
	case errors.Is(err, errNotJSON):
		return "not a JSON object (use -format clf for the common log format)"
	case errors.Is(err, errNotScalar):
		return fmt.Sprintf("field %q is not a string or a number", path)
	}
	return "malformed JSON"
}

// summary writes what replay did: lines, accounts, what was skipped and
// why, and the span of time the lines covered.
func (r *replayer) summary(w io.Writer, took time.Duration) {
	lines := r.lines.Load()
	fmt.Fprintf(w, "read %d lines in %v (%.0f lines a second)", lines, took.Round(time.Millisecond), float64(lines)/max(took.Seconds(), 1e-9))
	if r.blank > 0 {
		fmt.Fprintf(w, ", and %d blank", r.blank)
	}
	fmt.Fprintln(w)
	held := r.t.Counts(r.t.Retention())[0]
	fmt.Fprintf(w, "recorded %d lines: %d accounts within the retention (%v)\n", r.recorded, held, r.o.retention)
	if !r.first.IsZero() {
		fmt.Fprintf(w, "the lines span %s to %s\n", r.first.UTC().Format(time.RFC3339), r.last.UTC().Format(time.RFC3339))
	}
	if r.old > 0 {
		fmt.Fprintf(w, "  %d lines were older than the retention and count for nothing\n", r.old)
	}
	if r.ahead > 0 {
		fmt.Fprintf(w, "  %d lines were ahead of the clock and count as now\n", r.ahead)
	}
	var total int64
	reasons := make([]string, 0, len(r.skips))
	for why, s := range r.skips {
		reasons = append(reasons, why)
		total += s.n
	}
	if total == 0 {
		fmt.Fprintln(w, "skipped no line")
		return
	}
	sort.Slice(reasons, func(i, j int) bool { return r.skips[reasons[i]].n > r.skips[reasons[j]].n })
	fmt.Fprintf(w, "SKIPPED %d lines:\n", total)
	for _, why := range reasons {
		s := r.skips[why]
		more := ""
		if s.n > int64(len(s.where)) {
			more = ", …"
		}
		fmt.Fprintf(w, "  %d: %s (at %s%s)\n", s.n, why, strings.Join(s.where, ", "), more)
	}
}

// progress writes, every tick until done is closed, how far replay is:
// bytes read of total (if known), lines a second and the time left.
func (r *replayer) progress(w io.Writer, total int64, every time.Duration, done chan struct{}) {
	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-done:
			fmt.Fprint(w, "\r\033[K")
			return
		case <-tick.C:
		}
		read, secs := r.read.Load(), time.Since(start).Seconds()
		msg := fmt.Sprintf("%s read", mb(read))
		if total > 0 {
			msg = fmt.Sprintf("%s of %s (%.0f%%)", mb(read), mb(total), 100*float64(read)/float64(total))
			if read > 0 {
				left := time.Duration(secs * float64(total-read) / float64(read) * float64(time.Second))
				msg += fmt.Sprintf(", %v left", left.Round(time.Second))
			}
		}
		fmt.Fprintf(w, "\r\033[K%s, %.0f lines a second", msg, float64(r.lines.Load())/secs)
	}
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// isTerminal says whether f is a terminal, for progress that redraws its
// line.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
