package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// BinaryEnv names an environment variable that, when set, is the path of a
// prebuilt stationsync binary to test instead of building one (for CI that
// builds once with -race or -cover). It must not start with STATIONSYNC_:
// the node reads every such variable as a config key.
const BinaryEnv = "E2E_STATIONSYNC_BINARY"

var build struct {
	once sync.Once
	tags []string // BuildTags
	dir  string   // temp folder holding the built binary; removed by Main
	path string
	err  error
}

// BuildTags makes Binary build with these build tags (e.g. "chaos", which
// compiles in the fault-injection hooks of *_chaos.go files). Call it in
// TestMain before m.Run: the binary is built once per test process. A
// prebuilt binary named by BinaryEnv is used as it is.
func BuildTags(tags ...string) { build.tags = tags }

// Binary returns the path of the stationsync binary under test. The first
// call builds ./cmd/stationsync of the enclosing module into a temporary
// folder that lives as long as the test process (Main removes it); later
// calls, from any test, reuse it. A build failure fails every caller.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		if p := os.Getenv(BinaryEnv); p != "" {
			build.path, build.err = filepath.Abs(p)
			return
		}
		build.path, build.err = buildBinary()
	})
	if build.err != nil {
		t.Fatalf("harness: stationsync binary: %v", build.err)
	}
	return build.path
}

func buildBinary() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "stationsync-harness-")
	if err != nil {
		return "", err
	}
	build.dir = dir
	name := "stationsync"
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	out := filepath.Join(dir, name)
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"build", "-o", out}
	if len(build.tags) > 0 {
		args = append(args, "-tags", strings.Join(build.tags, ","))
	}
	cmd := exec.CommandContext(ctx, goCmd, append(args, "./cmd/stationsync")...)
	cmd.Dir = root
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/stationsync in %s: %v\n%s", root, err, buf.String())
	}
	return out, nil
}

// ModuleRoot returns the folder of the go.mod enclosing the working
// directory (a test's working directory is its package folder).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Main runs the tests of a package and then removes the binary Binary
// built. Use it as the package's TestMain:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// CLIResult is what one run of the binary printed and how it exited.
type CLIResult struct {
	Stdout   string
	Stderr   string
	ExitCode int // -1 when it did not exit on its own (killed at the deadline)
}

// CLITimeout bounds one RunCLI call.
const CLITimeout = 30 * time.Second

// RunCLI runs the binary with args (e.g. "ca", "init", "--dir", d) and
// returns its output and exit code. It fails the test only when the binary
// cannot be started or does not exit within CLITimeout; a non-zero exit is
// the caller's to judge. The environment is the test's without STATIONSYNC_*
// variables (see Environ).
func RunCLI(t testing.TB, args ...string) CLIResult {
	t.Helper()
	return RunCLIEnv(t, nil, args...)
}

// RunCLIEnv is RunCLI with extra environment variables ("KEY=value").
func RunCLIEnv(t testing.TB, env []string, args ...string) CLIResult {
	t.Helper()
	bin := Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), CLITimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = Environ(env...)
	cmd.SysProcAttr = sysProcAttr()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := CLIResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("harness: stationsync %s did not exit within %v\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), CLITimeout, res.Stdout, res.Stderr)
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("harness: stationsync %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// Environ is the environment the harness runs the binary with: the test
// process's, less every STATIONSYNC_* variable (the node reads those as
// config, so a developer's shell must not change what a test runs), plus
// extra.
func Environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STATIONSYNC_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// MustRunCLI is RunCLI that fails the test unless the command exits 0.
func MustRunCLI(t testing.TB, args ...string) CLIResult {
	t.Helper()
	res := RunCLI(t, args...)
	if res.ExitCode != 0 {
		t.Fatalf("harness: stationsync %s: exit %d\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), res.ExitCode, res.Stdout, res.Stderr)
	}
	return res
}
