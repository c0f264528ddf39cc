// Command testrun runs the tests of every module of the workspace, the way
// ./test.sh (the README's test command) asks: each module under the race
// detector, one after the other, saying which runs and how each package
// went as it goes, and ending with a summary that lists, loudly, every test
// that was skipped and why — so that nobody believes something was tested
// when it was not.
//
//	go run ./tools/testrun                 # every module, -race
//	go run ./tools/testrun -run Snapshot   # extra arguments go to go test
//
// It exits 1 if any test failed, and 3 if none failed but some were skipped
// with -strict.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// event is one line of go test -json (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// skip is a test that did not run, and the reason it gave.
type skip struct{ pkg, test, why string }

const usage = `usage: go run ./tools/testrun [-strict] [-race=false] [go test flags]

Runs every module's tests, says which module runs as it goes, and ends
with every skipped test and its reason. Every other argument goes to go test.

  -strict      exit 3 when tests were skipped, even if none failed
  -race=false  run without the race detector (default: with it)
`

func main() {
	strict, race, extra, err := parseArgs(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Print(usage)
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testrun: %v\n\n%s", err, usage)
		os.Exit(2)
	}
	mods, err := modules()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testrun:", err)
		os.Exit(2)
	}
	start := time.Now()
	var skips []skip
	var failed []string
	for i, dir := range mods {
		fmt.Printf("== [%d/%d] %s (%s elapsed)\n", i+1, len(mods), shortDir(dir), time.Since(start).Round(time.Second))
		s, f, err := runModule(dir, race, extra)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testrun:", err)
			os.Exit(2)
		}
		skips, failed = append(skips, s...), append(failed, f...)
	}
	fmt.Printf("\n== %d modules in %s\n", len(mods), time.Since(start).Round(time.Second))
	if len(skips) > 0 {
		fmt.Println()
		fmt.Println("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!")
		fmt.Printf("!!! %d tests were SKIPPED in this run; each says why, and whether another run tests it:\n", len(skips))
		for _, s := range skips {
			fmt.Printf("!!!   %s %s: %s\n", s.pkg, s.test, s.why)
		}
		fmt.Println("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!")
	}
	if len(failed) > 0 {
		fmt.Printf("\nFAILED: %s\n", strings.Join(failed, ", "))
		os.Exit(1)
	}
	fmt.Println("\nall tests passed")
	if strict && len(skips) > 0 {
		os.Exit(3)
	}
}

// parseArgs takes testrun's own flags out of args and returns the rest, for
// go test, in their order: the flag package would stop at the first flag it
// does not know, such as -run.
func parseArgs(args []string) (strict, race bool, rest []string, err error) {
	race = true
	for _, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !strings.HasPrefix(a, "-") {
			name = ""
		}
		switch name {
		case "h", "help":
			return false, false, nil, flag.ErrHelp
		case "strict", "race":
			b := true
			if hasValue {
				if b, err = strconv.ParseBool(value); err != nil {
					return false, false, nil, fmt.Errorf("-%s=%s: want true or false", name, value)
				}
			}
			if name == "strict" {
				strict = b
			} else {
				race = b
			}
		default:
			rest = append(rest, a)
		}
	}
	return strict, race, rest, nil
}

// modules returns the folders of the workspace's modules.
func modules() ([]string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m: %w", err)
	}
	return strings.Fields(string(out)), nil
}

func shortDir(dir string) string {
	wd, _ := os.Getwd()
	if rel, err := filepath.Rel(wd, dir); err == nil {
		return "./" + rel
	}
	return dir
}

// runModule runs go test -json over one module's packages, prints a line a
// package, and the output of every test that failed, and returns the skips
// and the failed packages.
func runModule(dir string, race bool, extra []string) (skips []skip, failed []string, err error) {
	args := []string{"test", "-json", "-count=1"}
	if race {
		args = append(args, "-race")
	}
	args = append(append(args, extra...), dir+"/...")
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	skips, failed = report(stdout, os.Stdout)
	if err := cmd.Wait(); err != nil && len(failed) == 0 {
		failed = append(failed, shortDir(dir)+" ("+err.Error()+")") // a build failure, say
	}
	return skips, failed, nil
}

// report reads go test -json events from r and writes what a reader needs
// to w: a line a package, and the output of each failed test. It returns
// the skipped tests with their reasons, and the failed packages.
func report(r io.Reader, w io.Writer) (skips []skip, failed []string) {
	output := map[string][]string{} // "pkg test" → its output lines
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			fmt.Fprintln(w, sc.Text()) // not an event: the build's own output
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			output[key] = append(output[key], e.Output)
		case "skip":
			if e.Test == "" {
				if !slices.ContainsFunc(output[key], func(s string) bool { return strings.Contains(s, "[no test files]") }) {
					fmt.Fprintf(w, "   skip %s\n", e.Package)
				}
				break
			}
			skips = append(skips, skip{e.Package, e.Test, reason(output[key])})
		case "fail":
			if e.Test != "" {
				fmt.Fprintf(w, "--- FAIL: %s %s\n%s", e.Package, e.Test, strings.Join(output[key], ""))
				break
			}
			fmt.Fprintf(w, "   FAIL %s (%.1fs)\n", e.Package, e.Elapsed)
			failed = append(failed, e.Package)
		case "pass":
			if e.Test == "" {
				fmt.Fprintf(w, "   ok   %s (%.1fs)\n", e.Package, e.Elapsed)
			}
		}
		if e.Action == "pass" || e.Action == "fail" || e.Action == "skip" {
			delete(output, key)
		}
	}
	return skips, failed
}

// reason picks a skipped test's reason out of its output: the message of
// t.Skip, the last line before "--- SKIP" that is not the test runner's own.
func reason(lines []string) string {
	for i, l := range lines {
		if !strings.Contains(l, "--- SKIP") {
			continue
		}
		for _, m := range slices.Backward(lines[:i]) {
			if m = strings.TrimSpace(m); m != "" && !strings.HasPrefix(m, "=== ") {
				return m
			}
		}
	}
	return "(no reason given)"
}
