package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/activeusers/activeusers"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// shape is one kind of access log: how it writes a line for an account at a
// time with a plan, and the flags that read it.
type shape struct {
	name  string
	line  func(user string, at time.Time, plan string) string
	flags []string
}

var shapes = []shape{
	{"slog", func(u string, at time.Time, p string) string {
		return fmt.Sprintf(`{"time":%q,"level":"INFO","msg":"request","user_id":%q,"plan":%q,"status":200}`, at.Format(time.RFC3339Nano), u, p)
	}, []string{"-account", "user_id", "-time", "time", "-dimension", "plan=plan"}},
	{"zap", func(u string, at time.Time, p string) string {
		return fmt.Sprintf(`{"level":"info","ts":%.3f,"caller":"gw/main.go:42","msg":"request","user_id":%q,"plan":%q}`, float64(at.UnixMilli())/1000, u, p)
	}, []string{"-account", "user_id", "-time", "ts", "-dimension", "plan=plan"}},
	{"caddy", func(u string, at time.Time, p string) string {
		return fmt.Sprintf(`{"level":"info","ts":%d.25,"logger":"http.log.access","msg":"handled request","request":{"remote_ip":"10.0.0.1","method":"GET","uri":"/api","headers":{"X-Plan":[%q]}},"user_id":%q,"status":200}`, at.Unix(), p, u)
	}, []string{"-account", "user_id", "-time", "ts", "-dimension", "plan=request.headers.X-Plan"}},
	{"envoy", func(u string, at time.Time, p string) string {
		return fmt.Sprintf(`{"start_time":%q,"method":"GET","path":"/api","response_code":200,"user":%q,"x-plan":%q}`, at.Format("2006-01-02T15:04:05.000Z"), u, p)
	}, []string{"-account", "user", "-time", "start_time", "-dimension", "plan=x-plan"}},
	{"traefik", func(u string, at time.Time, p string) string {
		return fmt.Sprintf(`{"ClientHost":"10.0.0.1","ClientUsername":%q,"DownstreamStatus":200,"StartUTC":%q,"request_X-Plan":%q}`, u, at.Format(time.RFC3339Nano), p)
	}, []string{"-account", "ClientUsername", "-time", "StartUTC", "-dimension", "plan=request_X-Plan"}},
}

// clfLine is a combined log format line.
func clfLine(u string, at time.Time) string {
	return fmt.Sprintf(`10.0.0.1 - %s [%s] "GET /api HTTP/1.1" 200 512 "-" "curl/8.5"`, u, at.Format("02/Jan/2006:15:04:05 -0700"))
}

// broken lines of every kind replay reports: none is recorded.
var broken = []string{
	`{"time":"2026-11-28T11:00:00Z","msg":"no account here"}`,
	`{"time":"last tuesday","user_id":"x","user":"x","ts":"never","start_time":"never","StartUTC":"never","ClientUsername":"x"}`,
	`{"user_id":"y","user":"y","ClientUsername":"y","time":`,
	`10.0.0.1 - - [28/Nov/2026:11:00:00 +0000] "GET / HTTP/1.1" 401 0`,
	`\x00\x01 binary garbage`,
	``,
}

// weekOfLogs writes a week of one shape's logs, mixed with combined-format
// lines, out of order, some lines broken, into files (every third
// gzipped), and returns them with the reference: each account's last time,
// and each plan's accounts' last times.
func weekOfLogs(t *testing.T, dir string, s shape, seed uint64) (files []string, last map[string]time.Time, byPlan map[string]map[string]time.Time) {
	r := rand.New(rand.NewPCG(seed, 1))
	last, byPlan = map[string]time.Time{}, map[string]map[string]time.Time{}
	var lines []string
	for i := range 20_000 {
		u := fmt.Sprintf("acct-%d", r.IntN(3000))
		at := now.Add(-time.Duration(r.Int64N(int64(8 * 24 * time.Hour)))) // some past the 7-day retention
		at = at.Truncate(time.Millisecond)
		plan := []string{"free", "pro", "team"}[r.IntN(3)]
		if i%5 == 0 {
			lines = append(lines, clfLine(u, at))
			plan = "" // the common log format names no plan
		} else {
			lines = append(lines, s.line(u, at, plan))
		}
		if now.Sub(at.Truncate(time.Second)) > 7*24*time.Hour {
			continue // past retention: never counted
		}
		if at.Truncate(time.Second).After(last[u]) {
			last[u] = at.Truncate(time.Second)
		}
		if plan != "" {
			if byPlan[plan] == nil {
				byPlan[plan] = map[string]time.Time{}
			}
			if at.Truncate(time.Second).After(byPlan[plan][u]) {
				byPlan[plan][u] = at.Truncate(time.Second)
			}
		}
	}
	for i := range 200 {
		lines = append(lines, broken[i%len(broken)])
	}
	r.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	for f := range 4 {
		part := strings.Join(lines[f*len(lines)/4:(f+1)*len(lines)/4], "\n") + "\n"
		name := filepath.Join(dir, fmt.Sprintf("%s-%d.log", s.name, f))
		data := []byte(part)
		if f%3 == 0 {
			name += ".gz"
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write(data)
			zw.Close()
			data = b.Bytes()
		}
		require.NoError(t, os.WriteFile(name, data, 0o644))
		files = append(files, name)
	}
	return files, last, byPlan
}

var windows = []time.Duration{5 * time.Minute, time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

// reference counts, per window, the accounts of last active within it as of
// now.
func reference(last map[string]time.Time) []int {
	out := make([]int, len(windows))
	for _, at := range last {
		for i, w := range windows {
			if now.Sub(at) <= w {
				out[i]++
			}
		}
	}
	return out
}

// TestReplayAWeekOfMixedLogs: for each shape of JSON log, a week of it mixed
// with combined-format lines, out of order, gzipped and not, with broken
// lines: the snapshot replay writes holds exactly the reference's counts,
// overall and per plan, and the summary reports every broken line. Then
// merge writes their union, and inspect shows it.
func TestReplayAWeekOfMixedLogs(t *testing.T) {
	dir := t.TempDir()
	union := map[string]time.Time{}
	var snaps []string
	for i, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			files, last, byPlan := weekOfLogs(t, dir, s, uint64(i))
			out := filepath.Join(dir, s.name+".snap")
			var stdout, stderr bytes.Buffer
			args := append(append([]string{"replay", "-o", out, "-now", now.Format(time.RFC3339)}, s.flags...), files...)
			code := run(args, nil, &stdout, &stderr)
			require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			summary := stdout.String()
			assert.Contains(t, summary, "read 20167 lines")
			assert.Contains(t, summary, "SKIPPED 167 lines")
			assert.Contains(t, summary, "no field")
			assert.Contains(t, summary, "a time in none of the formats")
			assert.Contains(t, summary, "malformed JSON")
			assert.Contains(t, summary, "no authenticated user")
			assert.Contains(t, summary, "not the common log format")
			assert.Regexp(t, `\.log(\.gz)?:\d+`, summary, "the skipped lines' places")

			tr := activeusers.New(activeusers.WithClock(func() time.Time { return now }), activeusers.WithDimensions("plan"))
			require.NoError(t, tr.LoadFile(out))
			b := tr.CountsBy(windows...)
			assert.Equal(t, reference(last), b.Overall, "overall")
			for _, v := range b.Dimensions[0].Values {
				if v.Value != activeusers.OverflowValue {
					assert.Equal(t, reference(byPlan[v.Value]), v.Counts, "plan %s", v.Value)
				}
			}
			for u, at := range last {
				if at.After(union[u]) {
					union[u] = at
				}
			}
			snaps = append(snaps, out)
		})
	}

	merged := filepath.Join(dir, "all.snap")
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run(append([]string{"merge", "-o", merged, "-dimensions", "plan", "-now", now.Format(time.RFC3339)}, snaps...), nil, &stdout, &stderr), stderr.String())
	tr := activeusers.New(activeusers.WithClock(func() time.Time { return now }))
	require.NoError(t, tr.LoadFile(merged))
	assert.Equal(t, reference(union), tr.Counts(windows...), "the merge is the union")

	stdout.Reset()
	require.Equal(t, 0, run([]string{"inspect", "-windows", "5m,1h,24h,7d", merged}, nil, &stdout, &stderr), stderr.String())
	assert.Contains(t, stdout.String(), "snapshot version 2")
	assert.Contains(t, stdout.String(), "dimension plan: 4 values")
	assert.Contains(t, stdout.String(), "hashes: plain xxhash64")
}

// TestReplayErrorsSayWhatToDo: a file that is not a log, a gzip that is
// corrupt, JSON fields that no line has, and flags that are wrong each end
// the command with a message saying what it expected.
func TestReplayErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o644))
		return p
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Repeat(shapes[0].line("a", now, "pro")+"\n", 1000)))
	zw.Close()
	corrupt := gz.Bytes()
	corrupt[len(corrupt)/2] ^= 0xff
	for _, c := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"not a log", []string{"-account", "user_id", "-time", "time", write("binary.bin", []byte("\x7fELF\x02\x01\x01\x00garbage\x00\x00\n\x01\x02"))}, 1,
			[]string{"no line of the input could be used", "not the common log format"}},
		{"corrupt gzip", []string{"-account", "user_id", "-time", "time", write("corrupt.log.gz", corrupt)}, 1,
			[]string{"unreadable gzip after line"}},
		{"wrong field", []string{"-account", "user.id", "-time", "time", write("slog.log", []byte(shapes[0].line("a", now, "pro")+"\n"))}, 1,
			[]string{`no field "user.id" (expected it in every JSON object: check -account and -time)`, "slog.log:1"}},
		{"no fields for JSON", []string{write("x.log", []byte("{}\n"))}, 2, []string{"JSON logs need -account and -time"}},
		{"bad retention", []string{"-format", "clf", "-retention", "soon", "x"}, 2, []string{`-retention "soon"`}},
		{"bad dimension", []string{"-format", "clf", "-dimension", "plan", "x"}, 2, []string{"expected name=path"}},
		{"bad dimension name", []string{"-account", "a", "-time", "t", "-dimension", "window=x", "x"}, 2, []string{"not a usable label name"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"replay", "-o", filepath.Join(dir, "out.snap"), "-now", now.Format(time.RFC3339)}, c.args...), nil, &stdout, &stderr)
			assert.Equal(t, c.code, code)
			for _, w := range c.want {
				assert.Contains(t, stdout.String()+stderr.String(), w)
			}
		})
	}
	_, err := os.Stat(filepath.Join(dir, "out.snap"))
	assert.True(t, os.IsNotExist(err), "no failed replay writes a snapshot")
}

// TestReplayFromStandardInputWithASecret: logs from standard input, written
// as a keyed snapshot that only the same secret loads; inspect says so.
func TestReplayFromStandardInputWithASecret(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("a gateway secret of 16+ bytes\n"), 0o600))
	in := strings.NewReader(clfLine("alice", now.Add(-time.Hour)) + "\n" + clfLine("bob", now.Add(-2*time.Hour)) + "\n")
	out := filepath.Join(dir, "keyed.snap")
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"replay", "-format", "clf", "-secret-file", secret, "-o", out, "-now", now.Format(time.RFC3339)}, in, &stdout, &stderr), stderr.String())
	assert.Contains(t, stdout.String(), "2 accounts within the retention")

	plain := activeusers.New(activeusers.WithClock(func() time.Time { return now }))
	assert.ErrorIs(t, plain.LoadFile(out), activeusers.ErrBadSnapshot)
	s, _ := os.ReadFile(secret)
	keyed := activeusers.New(activeusers.WithClock(func() time.Time { return now }), activeusers.WithSecret(bytes.TrimSpace(s)))
	require.NoError(t, keyed.LoadFile(out))
	assert.Equal(t, []int{2}, keyed.Counts(24*time.Hour))

	stdout.Reset()
	require.Equal(t, 0, run([]string{"inspect", "-secret-file", secret, out}, nil, &stdout, &stderr))
	assert.Contains(t, stdout.String(), "written under the secret given")
}

// BenchmarkReplay replays 200,000 JSON lines (slog's shape, with a plan)
// from memory, plain and gzipped, and reports lines a second.
func BenchmarkReplay(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	var buf bytes.Buffer
	const n = 200_000
	for range n {
		at := now.Add(-time.Duration(r.Int64N(int64(7 * 24 * time.Hour))))
		buf.WriteString(shapes[0].line(fmt.Sprintf("acct-%d", r.IntN(100_000)), at, "pro"))
		buf.WriteByte('\n')
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(buf.Bytes())
	zw.Close()
	o := replayOptions{format: "auto", account: "user_id", timeField: "time", retention: 7 * 24 * time.Hour, now: now, dims: []dimField{{"plan", "plan"}}}
	for _, in := range []struct {
		name string
		data []byte
	}{{"plain", buf.Bytes()}, {"gzip", gz.Bytes()}} {
		b.Run("input="+in.name, func(b *testing.B) {
			b.SetBytes(int64(buf.Len()))
			b.ReportAllocs()
			for b.Loop() {
				rp := newReplayer(o)
				if err := rp.replayFile(bytes.NewReader(in.data), "bench"); err != nil {
					b.Fatal(err)
				}
				rp.t.Close()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// TestProgressSaysHowFarAndHowFast: the progress line names the bytes read
// of the total, the lines a second and the time left, and clears itself
// when done.
func TestProgressSaysHowFarAndHowFast(t *testing.T) {
	r := newReplayer(replayOptions{format: "clf", retention: 7 * 24 * time.Hour, now: now})
	r.read.Store(25e6)
	r.lines.Store(100_000)
	var out syncBuffer
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() { r.progress(&out, 100e6, 10*time.Millisecond, done); close(finished) }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "left") }, 5*time.Second, 5*time.Millisecond)
	close(done)
	<-finished
	got := out.String()
	assert.Contains(t, got, "25.0 MB of 100.0 MB (25%)")
	assert.Contains(t, got, "lines a second")
	assert.True(t, strings.HasSuffix(got, "\r\033[K"), "the line is cleared at the end")
}

// syncBuffer is a buffer the progress goroutine writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logStream writes lines lines of slog's shape for accounts accounts on the
// fly, so that the log is never in memory.
type logStream struct {
	r        *rand.Rand
	left     int
	accounts int
	pending  []byte
}

func (s *logStream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(s.pending) == 0 {
			if s.left == 0 {
				break
			}
			s.left--
			at := now.Add(-time.Duration(s.r.Int64N(int64(7 * 24 * time.Hour))))
			s.pending = append(s.pending[:0], shapes[0].line(fmt.Sprintf("acct-%d", s.r.IntN(s.accounts)), at, "pro")...)
			s.pending = append(s.pending, '\n')
		}
		c := copy(p[n:], s.pending)
		s.pending = s.pending[c:]
		n += c
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// TestReplayMemoryIsBoundedByAccounts: a replay of 400,000 lines (about 50
// MB) over 10,000 accounts never holds more than a few megabytes of heap:
// memory follows the accounts, not the log.
func TestReplayMemoryIsBoundedByAccounts(t *testing.T) {
	if testing.Short() {
		t.Skip("replays 50 MB; ./test.sh runs it")
	}
	in := &logStream{r: rand.New(rand.NewPCG(3, 4)), left: 400_000, accounts: 10_000}
	o := replayOptions{format: "auto", account: "user_id", timeField: "time", retention: 7 * 24 * time.Hour, now: now, dims: []dimField{{"plan", "plan"}}}
	rp := newReplayer(o)
	defer rp.t.Close()

	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	require.NoError(t, rp.replayFile(in, "stream"))
	close(stop)
	<-sampled
	assert.Equal(t, []int{10_000}, rp.t.CountsAt(now, 7*24*time.Hour))
	read := rp.read.Load() // the bytes replay read
	t.Logf("replayed %.0f MB; peak heap objects %.1f MB", float64(read)/1e6, float64(peak.Load())/1e6)
	assert.Greater(t, read, int64(45e6))
	assert.Less(t, peak.Load(), uint64(16<<20), "the heap follows the 10,000 accounts, not the %d MB log", read>>20)
}
