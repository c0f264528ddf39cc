// Command releasecheck proves, before a release, that every module in this
// repository installs for someone outside it.
//
// It lays out a file-based module proxy holding each module exactly as tagging
// HEAD would publish it (zips made from the committed tree by
// golang.org/x/mod/zip, at the version the nested modules require of the
// root), then, in fresh modules in a temporary folder with GOWORK=off, runs
// `go get` of each library module alone and builds and runs a program that
// imports it, and runs `go install` of each command module and its -h. The
// only other source of modules is the Go module proxy (through the local
// module cache when it has them), so a replace directive, a requirement on a
// version that will never exist or a missing file fails here, not for a user.
//
//	go run ./tools/releasecheck            # from the repository's root
//	go run ./tools/releasecheck -keep /tmp/proxy
//
// RELEASING.md says when to run it.
package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	modzip "golang.org/x/mod/zip"
)

// mod is one module of the repository.
type mod struct {
	path   string // module path
	dir    string // folder relative to the repository's root, "" for the root
	gomod  []byte // go.mod as committed
	isCmd  bool   // a command to go install, not a library to import
	symbol string // an exported name the consumer program prints, if known
}

// symbols are names the consumer programs use, so that each links something
// real from its module rather than only compiling an import.
var symbols = map[string]string{
	"":        "New",
	"auprom":  "NewCollector",
	"auotel":  "Register",
	"auredis": "New",
	"augrpc":  "UnaryServerInterceptor",
}

// commands are the packages of library modules that are commands, which a
// user installs with go install …@latest, as the README says.
var commands = map[string][]string{"": {"cmd/activeusers"}}

// skipped are modules that are not published for users: the benchmark
// program, this tool, and the router examples (code to read and copy).
var skipped = []string{"benchmarks", "tools", "examples/routers"}

func main() {
	keep := flag.String("keep", "", "write the proxy here and keep it (default: a temporary folder, removed)")
	version := flag.String("version", "", "version to publish every module at (default: the version the nested modules require of the root)")
	flag.Parse()
	if err := run(*keep, *version); err != nil {
		fmt.Fprintln(os.Stderr, "releasecheck:", err)
		os.Exit(1)
	}
}

func run(keep, version string) error {
	root, err := git("", "rev-parse", "--show-toplevel")
	if err != nil {
		return err
	}
	root = strings.TrimSpace(root)
	mods, err := modules(root)
	if err != nil {
		return err
	}
	if version == "" {
		if version, err = siblingVersion(mods); err != nil {
			return err
		}
	}
	if !semver.IsValid(version) {
		return fmt.Errorf("version %q is not a semantic version", version)
	}
	work, err := os.MkdirTemp("", "releasecheck-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	proxy := filepath.Join(work, "proxy")
	if keep != "" {
		proxy = keep
	}
	start := time.Now()
	for _, m := range mods {
		size, err := publish(root, proxy, m, version)
		if err != nil {
			return fmt.Errorf("%s: %w", m.path, err)
		}
		fmt.Printf("published %s@%s (%d KiB zip)\n", m.path, version, size>>10)
	}
	env, err := consumerEnv(work, proxy, mods[0].path)
	if err != nil {
		return err
	}
	for _, m := range mods {
		if m.isCmd {
			err = install(work, env, m, version)
		} else {
			err = consume(work, env, m, version)
		}
		if err != nil {
			return fmt.Errorf("%s@%s: %w", m.path, version, err)
		}
		for _, c := range commands[m.dir] {
			if err := install(work, env, mod{path: m.path + "/" + c}, "latest"); err != nil {
				return fmt.Errorf("%s/%s@latest: %w", m.path, c, err)
			}
		}
	}
	fmt.Printf("ok: %d modules at %s install outside the repository (%v)\n", len(mods), version, time.Since(start).Round(time.Second))
	return nil
}

// modules lists the repository's committed modules, root first.
func modules(root string) ([]mod, error) {
	out, err := git(root, "ls-files", "--", "go.mod", "*/go.mod")
	if err != nil {
		return nil, err
	}
	var mods []mod
	for _, f := range strings.Fields(out) {
		dir := path.Dir(f)
		if dir == "." {
			dir = ""
		}
		if slices.ContainsFunc(skipped, func(s string) bool { return dir == s || strings.HasPrefix(dir, s+"/") }) {
			continue
		}
		data, err := git(root, "show", "HEAD:"+f)
		if err != nil {
			return nil, err
		}
		mf, err := modfile.Parse(f, []byte(data), nil)
		if err != nil {
			return nil, err
		}
		if len(mf.Replace) > 0 {
			return nil, fmt.Errorf("%s has replace directives: they are ignored outside the module, so its users would build something else (use go.work)", f)
		}
		mods = append(mods, mod{
			path:   mf.Module.Mod.Path,
			dir:    dir,
			gomod:  []byte(data),
			isCmd:  strings.HasPrefix(dir, "examples/"),
			symbol: symbols[dir],
		})
	}
	slices.SortFunc(mods, func(a, b mod) int { return strings.Compare(a.dir, b.dir) })
	if len(mods) == 0 || mods[0].dir != "" {
		return nil, errors.New("no go.mod at the repository's root")
	}
	return mods, nil
}

// siblingVersion is the one version at which the modules require each other;
// an error if they disagree (the requirements must be raised together).
func siblingVersion(mods []mod) (string, error) {
	own := map[string]bool{}
	for _, m := range mods {
		own[m.path] = true
	}
	version, from := "", ""
	for _, m := range mods {
		mf, err := modfile.Parse(m.dir+"/go.mod", m.gomod, nil)
		if err != nil {
			return "", err
		}
		for _, r := range mf.Require {
			if !own[r.Mod.Path] {
				continue
			}
			if version != "" && r.Mod.Version != version {
				return "", fmt.Errorf("%s requires %s, %s requires %s: raise the requirements together", from, version, m.path, r.Mod)
			}
			version, from = r.Mod.Version, m.path
		}
	}
	if version == "" {
		return "", errors.New("no module requires another: give -version")
	}
	return version, nil
}

// publish writes m at version into the file proxy as the go command reads it
// (list, .info, .mod, .zip), the zip made from HEAD. It checks that a library
// module's zip carries a licence, and returns the zip's size.
func publish(root, proxy string, m mod, version string) (int64, error) {
	esc, err := module.EscapePath(m.path)
	if err != nil {
		return 0, err
	}
	dir := filepath.Join(proxy, filepath.FromSlash(esc), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	var z bytes.Buffer
	mv := module.Version{Path: m.path, Version: version}
	if err := modzip.CreateFromVCS(&z, mv, root, "HEAD", m.dir); err != nil {
		return 0, err
	}
	if err := checkZip(z.Bytes(), mv, m.isCmd); err != nil {
		return 0, err
	}
	info, _ := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, time.Now().UTC().Truncate(time.Second)})
	for name, data := range map[string][]byte{
		"list":            []byte(version + "\n"),
		version + ".info": info,
		version + ".mod":  m.gomod,
		version + ".zip":  z.Bytes(),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return 0, err
		}
	}
	return int64(z.Len()), nil
}

// maxZip is far above what the sources take (the root module's zip is about
// 100 KiB): a zip past it carries something that is not source.
const maxZip = 2 << 20

// checkZip refuses a module zip without a LICENSE (pkg.go.dev shows no
// documentation for unlicensed modules, and no one may use them) or with
// compiled files in it.
func checkZip(b []byte, mv module.Version, isCmd bool) error {
	if len(b) > maxZip {
		return fmt.Errorf("the zip is %d KiB: more than sources take; is build output committed?", len(b)>>10)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return err
	}
	prefix := mv.Path + "@" + mv.Version + "/"
	licensed := false
	for _, f := range zr.File {
		name := strings.TrimPrefix(f.Name, prefix)
		if name == "LICENSE" {
			licensed = true
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		head := make([]byte, 4)
		n, _ := io.ReadFull(rc, head)
		rc.Close()
		if bytes.Equal(head[:n], []byte("\x7fELF")) {
			return fmt.Errorf("the zip holds a compiled file, %s", name)
		}
	}
	if !licensed && !isCmd {
		return errors.New("the zip has no LICENSE at its root: a module zip holds only its own folder")
	}
	return nil
}

// consumerEnv is the environment of a user outside the repository: no
// workspace, this proxy first, then the module cache's downloads (so what the
// machine already has costs no network), then the usual proxy. The repo's
// modules are not in the public checksum database until released.
func consumerEnv(work, proxy, rootPath string) ([]string, error) {
	goenv := func(k string) (string, error) {
		out, err := exec.Command("go", "env", k).Output()
		return strings.TrimSpace(string(out)), err
	}
	upstream, err := goenv("GOPROXY")
	if err != nil {
		return nil, err
	}
	cache, err := goenv("GOMODCACHE")
	if err != nil {
		return nil, err
	}
	proxies := []string{"file://" + filepath.ToSlash(proxy), "file://" + filepath.ToSlash(filepath.Join(cache, "cache", "download"))}
	if upstream != "" && upstream != "off" {
		proxies = append(proxies, upstream)
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains([]string{"GOWORK", "GOPROXY", "GOFLAGS", "GONOSUMDB", "GOMODCACHE", "GOBIN", "GOPRIVATE", "GONOPROXY"}, k)
	})
	return append(env,
		"GOWORK=off",
		"GOPROXY="+strings.Join(proxies, ","),
		"GONOSUMDB="+rootPath,
		// A module cache of its own: the shared one may hold an older zip
		// under the same version from an earlier run, and would be trusted.
		"GOMODCACHE="+filepath.Join(work, "modcache"),
		"GOFLAGS=-modcacherw",
		"GOBIN="+filepath.Join(work, "bin"),
	), nil
}

// consume makes a fresh module, go gets m alone, and builds and runs a
// program that uses it.
func consume(work string, env []string, m mod, version string) error {
	name := "root"
	if m.dir != "" {
		name = strings.ReplaceAll(m.dir, "/", "-")
	}
	dir := filepath.Join(work, "consumer-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	use := fmt.Sprintf("fmt.Printf(\"%%s: %%T\\n\", %q, m.%s)", m.path, m.symbol)
	imp := "m " + fmt.Sprintf("%q", m.path)
	if m.symbol == "" {
		use = fmt.Sprintf("fmt.Println(%q)", m.path)
		imp = "_ " + fmt.Sprintf("%q", m.path)
	}
	prog := fmt.Sprintf("package main\n\nimport (\n\t\"fmt\"\n\n\t%s\n)\n\nfunc main() { %s }\n", imp, use)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(prog), 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"mod", "init", "example.com/consumer/" + name},
		{"get", m.path + "@" + version},
		{"build", "-o", "consumer", "."},
	} {
		if _, err := goCmd(dir, env, args...); err != nil {
			return err
		}
	}
	out, err := runIn(dir, env, filepath.Join(dir, "consumer"))
	if err != nil {
		return err
	}
	fmt.Printf("go get %s@%s: built and ran a program using it: %s", m.path, version, out)
	return nil
}

// install go installs the command m at version, as its README says, and runs
// it with -h.
func install(work string, env []string, m mod, version string) error {
	if _, err := goCmd(work, env, "install", m.path+"@"+version); err != nil {
		return err
	}
	bin := filepath.Join(work, "bin", path.Base(m.path))
	if _, err := runIn(work, env, bin, "-h"); err != nil {
		return err
	}
	fmt.Printf("go install %s@%s: installed, and -h runs\n", m.path, version)
	return nil
}

func goCmd(dir string, env []string, args ...string) (string, error) {
	return runIn(dir, env, "go", args...)
}

func runIn(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, ee.Stderr)
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}
