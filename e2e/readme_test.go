package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
	coreevents "github.com/go-arcade/arcade/core/events"
)

// docCommand is one command the documentation shows.
type docCommand struct {
	where string // README.md:62, or the help that shows it
	block int    // the README code block it belongs to, 0 for others
	text  string // as shown, continuation lines joined
}

// readmeCommands returns the commands of the README's sh blocks, block by
// block, and the `arcade …` commands written inline in its prose.
func readmeCommands(t *testing.T) (blocks [][]docCommand, inline []docCommand) {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inSh, inOther, n, block := false, false, 0, 0
	pending, pendingAt := "", 0
	span := regexp.MustCompile("`((?:bin/)?arcade [^`]+)`")
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```sh"):
			inSh, block = true, block+1
			blocks = append(blocks, nil)
			continue
		case strings.HasPrefix(line, "```") && (inSh || inOther):
			inSh, inOther = false, false
			continue
		case strings.HasPrefix(line, "```"):
			inOther = true
			continue
		}
		if inOther {
			continue
		}
		if !inSh {
			for _, m := range span.FindAllStringSubmatch(line, -1) {
				inline = append(inline, docCommand{where: fmt.Sprintf("README.md:%d", n), text: m[1]})
			}
			continue
		}
		text := strings.TrimSpace(line)
		if pending != "" {
			text, n0 := pending+" "+text, pendingAt
			pending = ""
			if strings.HasSuffix(text, "\\") {
				pending, pendingAt = strings.TrimSuffix(text, "\\"), n0
				continue
			}
			blocks[block-1] = append(blocks[block-1], docCommand{where: fmt.Sprintf("README.md:%d", n0), block: block, text: stripComment(text)})
			continue
		}
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if strings.HasSuffix(text, "\\") {
			pending, pendingAt = strings.TrimSuffix(text, "\\"), n
			continue
		}
		blocks[block-1] = append(blocks[block-1], docCommand{where: fmt.Sprintf("README.md:%d", n), block: block, text: stripComment(text)})
	}
	return blocks, inline
}

// stripComment drops a trailing "# comment" outside quotes.
func stripComment(s string) string {
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '\'' || c == '"'):
			quote = c
		case quote == 0 && c == '#' && i > 0 && (s[i-1] == ' ' || s[i-1] == '\t'):
			return strings.TrimSpace(s[:i])
		}
	}
	return strings.TrimSpace(s)
}

// helpExamples returns the example lines of every command's --help.
func allHelpExamples(t *testing.T) []docCommand {
	t.Helper()
	var out []docCommand
	var walk func(path []string)
	walk = func(path []string) {
		b, err := exec.Command(arcadeBin, append(path, "--help")...).CombinedOutput()
		if err != nil {
			t.Fatalf("arcade %s --help: %v\n%s", strings.Join(path, " "), err, b)
		}
		section := ""
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " ") {
				section = line
				continue
			}
			trimmed := strings.TrimSpace(line)
			switch section {
			case "Examples:":
				if strings.HasPrefix(trimmed, "arcade ") {
					out = append(out, docCommand{where: "arcade " + strings.Join(path, " ") + " --help", text: trimmed})
				}
			case "Available Commands:":
				if name, _, _ := strings.Cut(trimmed, " "); name != "" && name != "help" && name != "completion" {
					walk(append(append([]string{}, path...), name))
				}
			}
		}
	}
	walk(nil)
	return out
}

// readmeEnv runs documented commands in a folder laid out like a checkout
// after make build and make plugins: bin/arcade, conf.d, plugins/, examples/.
type readmeEnv struct {
	t       *testing.T
	dir     string
	env     map[string]string
	addr    string // the README server's gRPC address (127.0.0.1:9090 in the text)
	http    string // its HTTP address (localhost:8080)
	lastJob string
	lastRun string
	daemons []*exec.Cmd
	failed  []string
}

// how says how a documented command is run.
type how struct {
	// stream: the command runs until it is stopped (a follower); it passes
	// if it has not failed within the time. daemon: a server or agent,
	// started and kept running.
	stream, daemon bool
	// exempt, when set, says why the command is not run.
	exempt string
	// want is text its output must hold.
	want    string
	timeout time.Duration
}

// notRun are the documented commands the test does not run, and why.
var notRun = map[string]string{
	"make run":                            "TestMakeRunTwice runs what make run runs: the plugins built from source, arcade up --data-dir data --run examples/pipelines/ci.arcade.yaml with the shipped conf.d, twice",
	"make test":                           "the test suite itself, this test among them",
	"go build -o bin/arcade ./cmd/arcade": "TestMain builds the binary these commands run with this command (go build -o …/arcade ../cmd/arcade)",
	`grpcurl -plaintext -H "authorization: Bearer $ARCADE_API_TOKEN" 127.0.0.1:9090 arcade.job.v1.JobService/ListJobs`: "grpcurl is not installed in CI; the test makes the same call in Go: JobService found through server reflection, ListJobs with the bearer token",
	"arcade events --type":                   "names a flag in prose; arcade events --type job.failed runs in --help's examples",
	"arcade job create --follow":             "names a flag in prose; job create --follow runs in the README's first block",
	"arcade job get":                         "names a command in prose; arcade job get JOB runs in TestCLIFirstHour",
	"arcade job logs":                        "names a command in prose; bin/arcade job logs JOB_ID --attempt 1 runs from the README's block",
	"arcade logs":                            "names a command in prose; bin/arcade logs -f JOB_ID runs from the README's block",
	"arcade server":                          "names a command in prose; bin/arcade server runs from the README's blocks",
	"arcade up":                              "names a command in prose; TestMakeRunTwice and TestUpRunsExampleJob run arcade up",
	"arcade artifact get":                    "names a command in prose; arcade artifact get JOB_ID dist/app.tar.gz runs from the README's block",
	"arcade pipeline trust":                  "names a command in prose; TestReadmeIdentityCommands runs arcade pipeline trust deploy --branch main",
	"arcade token create":                    "names a command in prose; TestReadmeIdentityCommands runs arcade token create ci-reader …",
	"arcade token create|list|revoke":        "names commands in prose; TestReadmeIdentityCommands runs them",
	"arcade agent label NAME k=v":            "the form of a command in prose; TestReadmeIdentityCommands runs arcade agent label deploy-1 pool=deploy",
	"arcade plugin call":                     "names a command in prose; arcade plugin call semver execute --action next --param bump=minor runs from the README's prose",
	"arcade pipeline approve|reject RUN JOB": "the form of commands in prose; TestReadmePipelineData runs arcade pipeline approve and reject on waiting approval jobs",
	"arcade run [FILE]":                      "names a command in prose; TestReadmeSourcesCommands and TestRunLocalWorkingTree run arcade run with and without FILE",
	"arcade up --run FILE":                   "names a command in prose; TestUpRunsExamplePipeline runs arcade up --run with a pipeline file",
}

// pipedataCommands need a run whose approval job waits, or the files
// their --help examples name: TestReadmePipelineData runs them as
// written, with an artifact store, an agent, and those files.
var pipedataCommands = []string{
	"arcade pipeline approve RUN_ID approve --comment 'release notes read'",
	"arcade pipeline approve RUN_ID deploy-approval --comment 'checked the release notes'",
	"arcade pipeline reject RUN_ID deploy-approval --comment 'checked the release notes'",
	"arcade pipeline lint .arcade.yaml",
	"arcade pipeline lint ci/pipeline.arcade.yaml -o json",
}

// identityCommands are the README's secrets, tokens, audit and trust
// commands and their --help examples: TestReadmeIdentityCommands runs them
// as written, with the deploy pipeline and registry.pass they need.
var identityCommands = []string{
	`printf %s "$DEPLOY_TOKEN" | arcade secret set DEPLOY_TOKEN`,
	"arcade secret set REGISTRY_PASSWORD --pipeline deploy --from-file registry.pass",
	"arcade secret list",
	`arcade token create ci-reader --scope read --owner "team web" --expires-in 720h`,
	"arcade token list; arcade token revoke ci-reader",
	"arcade audit --actor api_token --since 24h",
	"arcade audit --method Secret",
	"arcade trust labels pool=deploy",
	"arcade pipeline trust deploy --branch main",
	"arcade server rekey --data-dir data",
	"arcade secret rm REGISTRY_PASSWORD --pipeline deploy",
	"arcade agent label deploy-1 pool=deploy",
	"arcade agent label deploy-1 --remove pool",
}

// containerCommands need a Docker engine and public images (golang:1.22,
// alpine:3.20), which tests cannot pull: TestContainerCLI and
// TestExampleContainersPipeline run them with a locally built image.
// sourcesCommands are run as written by TestReadmeSourcesCommands (with
// the private repository, the credential and the working clone they need).
var sourcesCommands = []string{
	"arcade secret set APP_GIT",
	"arcade pipeline trigger app --ref v1.2.0 --wait",
	"arcade run",
	"arcade run ci/build.arcade.yaml",
}

// forkCommands are run as written by TestSourcesForkOwnDefinition, on the
// run of a fork's pull request they need.
var forkCommands = []string{
	"arcade pipeline approve-definition RUN_ID --comment 'read the diff'",
}

var containerCommands = []string{
	"arcade job create --image golang:1.22 --memory 1g --cpus 2 --cmd 'go version' --follow",
	"arcade job create -f examples/jobs/container.yaml --follow",
	"arcade pipeline create -f examples/pipelines/containers.arcade.yaml",
	"arcade pipeline trigger containers --param IMAGE=alpine:3.20 --wait",
}

func classify(text string) how {
	if why, ok := notRun[text]; ok {
		return how{exempt: why}
	}
	cmd := strings.ReplaceAll(text, "bin/arcade", "arcade")
	if slices.Contains(identityCommands, cmd) {
		return how{exempt: "TestReadmeIdentityCommands runs it as written, with the deploy pipeline and registry.pass it needs"}
	}
	if bare, _, _ := strings.Cut(cmd, "#"); slices.Contains(sourcesCommands, strings.TrimSpace(bare)) {
		return how{exempt: "TestReadmeSourcesCommands runs it as written, with the private repository, the credential and the working clone it needs"}
	}
	if slices.Contains(ociCommands, cmd) {
		return how{exempt: "TestPluginOCI runs it as written, against a registry it starts on loopback (its address for 127.0.0.1:5000)"}
	}
	if slices.Contains(forkCommands, cmd) {
		return how{exempt: "TestSourcesForkOwnDefinition runs it as written, on the run of a pull request from a fork"}
	}
	if slices.Contains(pipedataCommands, cmd) {
		return how{exempt: "TestReadmePipelineData runs it as written, with an artifact store, an agent, the approval job waiting and the files it names"}
	}
	if slices.Contains(containerCommands, cmd) {
		return how{exempt: "needs a Docker engine and public images the tests cannot pull; TestContainerCLI and TestExampleContainersPipeline run it with a locally built image"}
	}
	switch {
	case regexp.MustCompile(`^arcade (server|agent)( --|$)`).MatchString(cmd):
		return how{daemon: true}
	case strings.Contains(cmd, "--follow") && strings.Contains(cmd, "cpu-cores>8"):
		// No agent has more than 8 cores here: the job waits, and says why.
		return how{stream: true, want: "still waits", timeout: 9 * time.Second}
	case strings.HasPrefix(cmd, "arcade events"), strings.HasPrefix(cmd, "arcade watch"), strings.Contains(cmd, "logs -f"),
		strings.HasPrefix(cmd, "curl -N"):
		return how{stream: true, timeout: 2 * time.Second}
	}
	return how{timeout: 3 * time.Minute}
}

var (
	uuidRe    = `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
	jobOutRe  = regexp.MustCompile(`(?m)(?:job (` + uuidRe + `) \(|^(` + uuidRe + `)\s)`)
	runOutRe  = regexp.MustCompile(`(?:run #\d+ \((` + uuidRe + `)\)|id (` + uuidRe + `), )`)
	placehold = regexp.MustCompile(`\b(JOB_ID|JOB|RUN_ID|AGENT_ID)\b`)
)

// environ is the command's environment: the test's, without ARCADE_*
// settings of its own, with the README server's addresses and what the
// README exported.
func (r *readmeEnv) environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ARCADE_") || strings.HasPrefix(kv, "ARCADE_CONTAINER_RUNTIME=") {
			out = append(out, kv)
		}
	}
	for k, v := range r.env {
		out = append(out, k+"="+v)
	}
	return out
}

// bash runs a command line as the README reader would, with a timeout.
func (r *readmeEnv) bash(line string, timeout time.Duration) (string, error, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", line)
	cmd.Dir, cmd.Env = r.dir, r.environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err, ctx.Err() != nil
}

// substitute fills a documented command's placeholders with things of the
// README server: the ids of the job and run made last (made when there is
// none), an agent to revoke, and the server's free addresses for the fixed
// ones of the text.
func (r *readmeEnv) substitute(text string) string {
	t := r.t
	if strings.HasPrefix(text, "arcade ") {
		text = "bin/" + text
	}
	text = strings.ReplaceAll(text, "127.0.0.1:9090", r.addr)
	text = strings.ReplaceAll(text, "localhost:8080", r.http)
	if strings.Contains(text, "agent trust NAME") {
		// A throwaway agent: a trusted agent takes only trusted jobs.
		name := fmt.Sprintf("trusted-%d", time.Now().UnixNano())
		r.startDaemon("bin/arcade agent --name "+name+" --server "+r.addr, "agent list", name)
		text = strings.ReplaceAll(text, "agent trust NAME", "agent trust "+name)
	}
	for form, concrete := range map[string]string{
		"plugin call NAME FUNCTION --input JSON": `plugin call semver execute --input '{"action":"next","params":{"current":"1.0.0","bump":"patch"}}'`,
		"plugin info NAME":                       "plugin info semver",
	} {
		text = strings.ReplaceAll(text, form, concrete)
	}
	for _, ph := range placehold.FindAllString(text, -1) {
		var val string
		switch ph {
		case "JOB_ID", "JOB":
			if r.lastJob == "" {
				out, err, _ := r.bash(`bin/arcade job create --name readme-probe --cmd 'echo probe'`, time.Minute)
				if m := jobOutRe.FindStringSubmatch(out); err == nil && m != nil {
					r.lastJob = m[1] + m[2]
				} else {
					t.Fatalf("a job for %s: %v\n%s", text, err, out)
				}
			}
			if strings.Contains(text, "artifact") {
				r.waitJobEnd(r.lastJob)
			}
			val = r.lastJob
		case "RUN_ID":
			if r.lastRun == "" {
				probe := filepath.Join(r.dir, "probe.arcade.yaml")
				if err := os.WriteFile(probe, []byte("name: readme-probe\nstages: [{name: s, jobs: [{name: nap, commands: [sleep 1]}]}]\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				out, err, _ := r.bash("bin/arcade pipeline create -f probe.arcade.yaml && bin/arcade pipeline trigger readme-probe", time.Minute)
				m := runOutRe.FindStringSubmatch(out)
				if err != nil || m == nil {
					t.Fatalf("a run for %s: %v\n%s", text, err, out)
				}
				r.lastRun = m[1] + m[2]
			}
			val = r.lastRun
		case "AGENT_ID":
			// A throwaway agent: revoking the README's own would stop it.
			name := fmt.Sprintf("throwaway-%d", time.Now().UnixNano())
			r.startDaemon("bin/arcade agent --name "+name+" --server "+r.addr, "agent list", name)
			out, _, _ := r.bash("bin/arcade agent list", time.Minute)
			m := regexp.MustCompile(`(?m)^(` + uuidRe + `)\s+` + name).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("the throwaway agent is not listed:\n%s", out)
			}
			val = m[1]
		}
		text = strings.Replace(text, ph, val, 1)
	}
	return text
}

func (r *readmeEnv) waitJobEnd(id string) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		out, _, _ := r.bash("bin/arcade job get "+id, time.Minute)
		if regexp.MustCompile(`(?m)^Status:\s+(SUCCESS|FAILED|CANCELLED|TIMEOUT|SKIPPED)`).MatchString(out) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.t.Fatalf("job %s did not end", id)
}

// startDaemon starts a server or agent and waits until `bin/arcade
// check` prints ready.
func (r *readmeEnv) startDaemon(line, check, ready string) {
	t := r.t
	logf, err := os.Create(filepath.Join(r.dir, fmt.Sprintf("daemon-%d.log", len(r.daemons))))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", "exec "+line)
	// Each daemon its own temporary folder: an agent's default work folder
	// is in it, and two agents may not share one.
	cmd.Dir, cmd.Env = r.dir, append(r.environ(), "TMPDIR="+t.TempDir())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.daemons = append(r.daemons, cmd)
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(time.Minute)
	for {
		out, err, _ := r.bash("bin/arcade "+check, 10*time.Second)
		if err == nil && strings.Contains(out, ready) {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("%s did not come up (%s: %v %s):\n%s", line, check, err, out, tail(b, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopDaemons stops the daemons started since index from.
func (r *readmeEnv) stopDaemons(from int) {
	for _, cmd := range r.daemons[from:] {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
	}
	r.daemons = r.daemons[:from]
}

// runCommand runs one documented command and records a failure.
func (r *readmeEnv) runCommand(c docCommand) {
	h := classify(c.text)
	if h.exempt != "" {
		r.t.Logf("%s: not run: %s — %s", c.where, c.text, h.exempt)
		return
	}
	line := r.substitute(c.text)
	if h.daemon {
		check, ready := "agent list", "gpu-1"
		switch {
		case strings.Contains(line, " server"):
			check, ready = "job list", "ID"
		case strings.Contains(line, "--client-cert"): // the TLS agent, named after the host
			host, _ := os.Hostname()
			check, ready = "agent list --tls-ca ca.pem", host
		}
		if strings.Contains(line, "--tls-cert") {
			check = "job list --tls-ca ca.pem"
		}
		r.startDaemon(line, check, ready)
		r.t.Logf("%s: started %s", c.where, line)
		return
	}
	out, err, timedOut := r.bash(line, h.timeout)
	r.t.Logf("%s: ran %s (err %v, stopped after %s: %v)", c.where, line, err, h.timeout, timedOut)
	switch {
	case h.stream && timedOut:
	case err != nil:
		r.failed = append(r.failed, fmt.Sprintf("%s: %s\n    ran: %s\n    %v\n%s", c.where, c.text, line, err, tail([]byte(out), 15)))
		return
	case timedOut:
		r.failed = append(r.failed, fmt.Sprintf("%s: %s: still running after %s", c.where, c.text, h.timeout))
		return
	}
	if strings.HasPrefix(line, "curl") && strings.HasPrefix(strings.TrimSpace(out), `{"code":`) {
		r.failed = append(r.failed, fmt.Sprintf("%s: %s: the server refused it:\n%s", c.where, c.text, tail([]byte(out), 5)))
		return
	}
	if h.want != "" && !strings.Contains(out, h.want) {
		r.failed = append(r.failed, fmt.Sprintf("%s: %s: output lacks %q:\n%s", c.where, c.text, h.want, tail([]byte(out), 15)))
	}
	if strings.HasPrefix(line, "export ") {
		// Keep what the line exported for the next commands.
		vars := regexp.MustCompile(`\b([A-Z_][A-Z0-9_]*)=`).FindAllStringSubmatch(line, -1)
		script := line
		for _, v := range vars {
			script += fmt.Sprintf("; printf '%%s=%%s\\n' %s \"$%s\"", v[1], v[1])
		}
		out, err, _ := r.bash(script, time.Minute)
		if err != nil {
			r.t.Fatalf("%s: %v\n%s", line, err, out)
		}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				r.env[k] = v
			}
		}
	}
	if m := jobOutRe.FindStringSubmatch(out); m != nil && strings.Contains(line, "job create") {
		r.lastJob = m[1] + m[2]
	}
	if m := runOutRe.FindStringSubmatch(out); m != nil {
		r.lastRun = m[1] + m[2]
	}
}

// TestDocumentedCommands runs every command shown in the README and in the
// examples of every --help against real servers and agents started as the
// README starts them, in a folder laid out like a checkout after make build
// and make plugins. Placeholders (JOB_ID, RUN_ID…) are filled with the ids
// of things made by the commands before them; fixed addresses become free
// ones. A command not run says why in the test's log.
func TestDocumentedCommands(t *testing.T) {
	for _, tool := range []string{"openssl", "curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("ARCADE_REQUIRE_TOOLS") == "1" {
				t.Fatalf("%s is needed (apt-get install -y openssl curl)", tool)
			}
			t.Skipf("%s is needed (apt-get install -y openssl curl)", tool)
		}
	}
	dir := shippedSetUp(t)
	reuseCompiled(t, dir)
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	examples, err := filepath.Abs(filepath.Join("..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"bin/arcade": arcadeBin, "examples": examples} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	// arcade plugin call secret-scan audit --input @request.json reads it.
	if err := os.WriteFile(filepath.Join(dir, "request.json"),
		[]byte(`{"params":{"pipeline":"pipeline demo","definition":"name: demo\nstages: [{name: s, jobs: [{name: j, commands: [echo hi]}]}]\n"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &readmeEnv{t: t, dir: dir, addr: freeAddr(t), http: freeAddr(t), env: map[string]string{}}
	r.env["ARCADE_SERVER"] = r.addr
	// "arcade" in a pipe (printf … | arcade secret set) is bin/arcade; the
	// values such lines read are set as a reader would have them.
	r.env["PATH"] = filepath.Join(dir, "bin") + string(os.PathListSeparator) + os.Getenv("PATH")
	r.env["KEY"] = "AKIAEXAMPLEKEY"
	r.env["ARCADE_HTTP_LISTEN"] = r.http
	// Agents here have 2 cores, whatever the machine: the README's job for
	// cpu-cores>8 waits, as the README means it to.
	r.env["ARCADE_LABELS"] = "cpu-cores=2"

	blocks, inline := readmeCommands(t)
	if len(blocks) < 7 || len(inline) < 10 {
		t.Fatalf("found %d blocks and %d inline commands in the README", len(blocks), len(inline))
	}
	ran := 0
	for _, block := range blocks {
		tls := false
		for _, c := range block {
			tls = tls || strings.Contains(c.text, "--tls-cert")
		}
		from := len(r.daemons)
		if tls {
			// The TLS block runs a second server beside the first: its own
			// addresses and data.
			saved := map[string]string{}
			for k, v := range map[string]string{"ARCADE_SERVER": freeAddr(t), "ARCADE_HTTP_LISTEN": freeAddr(t), "ARCADE_DATA_DIR": "data-tls"} {
				saved[k] = r.env[k]
				r.env[k] = v
			}
			r.env["ARCADE_LISTEN"] = r.env["ARCADE_SERVER"]
			// Its plugins compile into the first server's cache.
			if err := os.MkdirAll(filepath.Join(dir, "data-tls"), 0o755); err != nil {
				t.Fatal(err)
			}
			cache, err := filepath.EvalSymlinks(filepath.Join(dir, "data", "wazero-cache"))
			if err != nil {
				cache = filepath.Join(dir, "data", "wazero-cache")
			}
			if err := os.Symlink(cache, filepath.Join(dir, "data-tls", "wazero-cache")); err != nil {
				t.Fatal(err)
			}
			for _, c := range block {
				r.runCommand(c)
				ran++
			}
			r.stopDaemons(from)
			for k, v := range saved {
				r.env[k] = v
			}
			delete(r.env, "ARCADE_LISTEN")
			continue
		}
		for _, c := range block {
			r.runCommand(c)
			ran++
		}
	}
	for _, c := range inline {
		r.runCommand(c)
		ran++
	}
	help := allHelpExamples(t)
	if len(help) < 5 {
		t.Fatalf("only %d --help examples found", len(help))
	}
	for _, c := range help {
		r.runCommand(c)
		ran++
	}

	// grpcurl's call, made in Go: JobService is found through reflection,
	// and ListJobs answers the token the README exported.
	conn, err := client.DialTLS(r.addr, client.Static(r.env["ARCADE_API_TOKEN"]), client.TLS{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	refl, err := grpc_reflection_v1.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := refl.Send(&grpc_reflection_v1.ServerReflectionRequest{MessageRequest: &grpc_reflection_v1.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	services, err := refl.Recv()
	if err != nil || !strings.Contains(services.String(), "arcade.job.v1.JobService") {
		t.Errorf("reflection lists: %v %v", services, err)
	}
	if _, err := jobv1.NewJobServiceClient(conn).ListJobs(context.Background(), &jobv1.ListJobsRequest{}); err != nil {
		t.Errorf("ListJobs with the README's token: %v", err)
	}
	noToken, _ := client.DialTLS(r.addr, client.Static(""), client.TLS{})
	defer noToken.Close()
	if _, err := jobv1.NewJobServiceClient(noToken).ListJobs(context.Background(), &jobv1.ListJobsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ListJobs without a token: %v", err)
	}
	// The README server's tokens come from the environment: the login page
	// is not sent to data/credentials.env.
	resp, err := http.Get("http://" + r.http + "/login-hint.json")
	if err != nil {
		t.Fatal(err)
	}
	var hint map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&hint); err != nil || hint["credentials_file"] != "" {
		t.Errorf("login hint with tokens from the environment: %v %v", hint, err)
	}
	resp.Body.Close()
	t.Logf("%d documented commands", ran)
	for _, f := range r.failed {
		t.Error(f)
	}
}

// TestREADMEListsEventNames: the README's table of event names is the list
// core/events defines.
func TestREADMEListsEventNames(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range coreevents.Defs() {
		if !strings.Contains(string(b), fmt.Sprintf("| `%s` | %s |", d.Name, d.Help)) {
			t.Errorf("README lacks the row of %s", d.Name)
		}
	}
}
