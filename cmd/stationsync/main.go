// Command stationsync is the one binary of stationsync: it runs a station
// node, the demo, and the admin commands. Flag parsing only: the work is
// done by the packages it calls.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/stationsync/stationsync/center"
	"github.com/stationsync/stationsync/daemon"
	"github.com/stationsync/stationsync/installer"
	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records/itemfile"
)

const usage = `stationsync: edge sync for government service stations

Usage:
  stationsync demo [--dir DIR] [--base-port 4680]     local station of 3 nodes with sample data; Ctrl-C stops
  stationsync run --config FILE [--set key=value ...]  run one node in the foreground
  stationsync install --config FILE                    register the OS service (as admin; copies the config and its certificates)
  stationsync uninstall [--purge]                      remove the OS service; --purge also deletes its config and data
  stationsync start | stop                             start or stop the OS service (as admin)
  stationsync ca init --dir DIR                        make the district CA
  stationsync ca issue --ca DIR --station ID --node ID [--role station|center] [--days N] --out DIR
  stationsync status [--api URL]                       service state (running/stopped/not installed) and node summary from /v1/status
  stationsync items list | import FILE.csv|FILE.xlsx | export --out FILE.csv|FILE.xlsx [--api URL]
  stationsync cases list [--month YYYY-MM] [--api URL] | show ID [--api URL]
  stationsync conflicts [--all] [--api URL]             offline writes the merged history refused, for a person to resolve
  stationsync token --station ID [--ttl 24h] [--api URL]  one-time enrollment token (at the center)
  stationsync enroll --center ADDR --token T [--node ID] [--out DIR] [--expect N]   get this PC's certificate and config
  stationsync backup --out FILE [--api URL]             consistent online backup of this node (sealed with its key)
  stationsync restore --config FILE BACKUP              onto the stopped node; it rejoins and catches up
  stationsync members list | remove ID [--force] [--api URL]
  stationsync recover --config FILE --peers ID=ADDR,...  offline recovery after a permanent loss of quorum
  stationsync rebuild --config FILE [--force]          the stopped node's store is damaged: move it aside (data_dir/damaged-TIME),
                                                       keep identity and undelivered outbox writes; started, it takes the data from its peers
  stationsync doctor [--config FILE]                   check config, data dir, QUIC port, certificates, multicast, peers
  stationsync version

Each command has --help.
`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "stationsync:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(out, usage)
		return errors.New("a command is required")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "demo":
		return cmdDemo(rest, out)
	case "run":
		return cmdRun(rest)
	case "install":
		return cmdInstall(rest, out)
	case "uninstall":
		return cmdUninstall(rest, out)
	case "start":
		return cmdStart(rest, out)
	case "stop":
		return cmdStop(rest, out)
	case "ca":
		return cmdCA(rest, out)
	case "status":
		return cmdStatus(rest, out)
	case "items":
		return cmdItems(rest, out)
	case "cases":
		return cmdCases(rest, out)
	case "conflicts":
		return cmdConflicts(rest, out)
	case "token":
		return cmdToken(rest, out)
	case "enroll":
		return cmdEnroll(rest, out)
	case "backup":
		return cmdBackup(rest, out)
	case "restore":
		return cmdRestore(rest, out)
	case "members":
		return cmdMembers(rest, out)
	case "doctor":
		return cmdDoctor(rest, out)
	case "recover":
		return cmdRecover(rest, out)
	case "rebuild":
		return cmdRebuild(rest, out)
	case "version":
		fmt.Fprintln(out, "stationsync", daemon.Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(out, usage)
		return nil
	default:
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// parse parses flags and refuses stray arguments.
func parse(fs *flag.FlagSet, args []string, positional int) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != positional {
		return nil, fmt.Errorf("%s: expected %d argument(s), got %q", fs.Name(), positional, fs.Args())
	}
	return fs.Args(), nil
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func cmdDemo(args []string, out io.Writer) error {
	fs := newFlags("demo")
	dir := fs.String("dir", "demo-data", "folder for the demo's data, certificates, configs and logs (kept between runs)")
	base := fs.Int("base-port", 4680, "API port of the first node; QUIC ports start at base-port - 70")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	return daemon.RunDemo(ctx, daemon.DemoOptions{Dir: *dir, BasePort: *base, Out: out, Center: func() daemon.Extension { return center.New() }})
}

// setFlags collects repeated --set key=value.
type setFlags map[string]string

func (s setFlags) String() string { return "" }
func (s setFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", v)
	}
	s[k] = val
	return nil
}

func cmdRun(args []string) error {
	fs := newFlags("run")
	path := fs.String("config", "", "config file (YAML, keys in API.md)")
	sets := setFlags{}
	fs.Var(sets, "set", "override a config key, e.g. --set expect=3 --set tls.ca=ca.crt (repeatable)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("run: --config FILE is required")
	}
	if installer.UnderServiceManager() {
		// Under the service manager: the rotating log file and the
		// service log, stopped by the service manager.
		return installer.RunService(*path, sets, func(ctx context.Context, cfg daemon.Config, logger *slog.Logger) error {
			daemon.SetMemoryLimit(cfg, logger)
			return daemon.New(cfg, logger, nodeOptions(cfg)...).Run(ctx)
		})
	}
	cfg, err := daemon.LoadConfig(*path, os.Environ(), sets)
	if err != nil {
		return err
	}
	logger := daemon.NewLogger(cfg.Log, os.Stderr)
	daemon.SetMemoryLimit(cfg, logger)
	ctx, cancel := signalContext()
	defer cancel()
	return daemon.New(cfg, logger, nodeOptions(cfg)...).Run(ctx)
}

func cmdCA(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("ca: expected init or issue")
	}
	switch args[0] {
	case "init":
		fs := newFlags("ca init")
		dir := fs.String("dir", "", "folder for ca.crt and ca.key")
		if _, err := parse(fs, args[1:], 0); err != nil {
			return err
		}
		if *dir == "" {
			return errors.New("ca init: --dir is required")
		}
		if err := pki.InitCA(*dir); err != nil {
			return err
		}
		fmt.Fprintf(out, "district CA written to %s (keep ca.key offline and safe)\n", *dir)
		return nil
	case "issue":
		fs := newFlags("ca issue")
		caDir := fs.String("ca", "", "CA folder from ca init")
		station := fs.String("station", "", "station id")
		node := fs.String("node", "", "node id")
		role := fs.String("role", "station", "station or center")
		days := fs.Int("days", 365, "validity in days")
		outDir := fs.String("out", "", "folder for ca.crt, node.crt, node.key")
		if _, err := parse(fs, args[1:], 0); err != nil {
			return err
		}
		switch {
		case *caDir == "":
			return errors.New("ca issue: --ca is required")
		case *outDir == "":
			return errors.New("ca issue: --out is required")
		case *days < 1:
			return errors.New("ca issue: --days must be at least 1")
		}
		id := pki.Identity{Role: pki.Role(*role), Station: *station, Node: *node}
		if err := pki.Issue(*caDir, id, *outDir, time.Duration(*days)*24*time.Hour); err != nil {
			return err
		}
		fmt.Fprintf(out, "certificate for %s %s/%s written to %s\n", *role, *station, *node, *outDir)
		return nil
	default:
		return fmt.Errorf("ca: unknown subcommand %q (init or issue)", args[0])
	}
}

func cmdMembers(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("members: expected list or remove ID")
	}
	switch args[0] {
	case "list":
		return cmdGet(args[1:], out, "members list", "/v1/members")
	case "remove":
		fs := newFlags("members remove")
		api := apiFlag(fs)
		force := fs.Bool("force", false, "remove even if the voters left could not form a quorum")
		rest, err := parse(fs, args[1:], 1)
		if err != nil {
			return err
		}
		u := *api + "/v1/members/" + url.PathEscape(rest[0])
		if *force {
			u += "?force=1"
		}
		req, err := http.NewRequest(http.MethodDelete, u, nil)
		if err != nil {
			return err
		}
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return fmt.Errorf("is the node running? %w", err)
		}
		defer resp.Body.Close()
		return printAnswer(out, resp, "remove "+rest[0]+": ")
	default:
		return fmt.Errorf("members: unknown subcommand %q (list, remove)", args[0])
	}
}

func cmdRecover(args []string, out io.Writer) error {
	fs := newFlags("recover")
	path := fs.String("config", "", "the stopped node's config file")
	peers := fs.String("peers", "", "the new configuration: ID=ADDR,... of every node that remains, this one included")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *path == "" || *peers == "" {
		return errors.New("recover: --config FILE and --peers ID=ADDR,... are required")
	}
	cfg, err := daemon.LoadConfig(*path, os.Environ(), nil)
	if err != nil {
		return err
	}
	if err := daemon.Recover(cfg, *peers, daemon.NewLogger(cfg.Log, os.Stderr)); err != nil {
		return err
	}
	fmt.Fprintf(out, "recovered: %s now forms the cluster with %s; start the nodes\n", cfg.NodeID, *peers)
	return nil
}

func cmdRebuild(args []string, out io.Writer) error {
	fs := newFlags("rebuild")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: stationsync rebuild --config FILE [--force]

Rebuilds a stopped station node whose store is damaged ("run" refused to
start and named this command). The node's stores (data_dir/raft, state,
snapshots) are moved to data_dir/damaged-TIME, never deleted. Its identity
stays: certificates, encryption key, node id. Writes it accepted while cut
off and had not delivered yet (its outbox) are carried over when the raft
store is readable; when it is not, the command says so. Start the node
afterwards: it is still a member of its station, and the leader sends it
the station's data. At least one other node of the station must be
running for that.

`)
		fs.PrintDefaults()
	}
	path := fs.String("config", "", "the stopped node's config file")
	force := fs.Bool("force", false, "rebuild even when no damage is found")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("rebuild: --config FILE is required")
	}
	cfg, err := daemon.LoadConfig(*path, os.Environ(), nil)
	if err != nil {
		return err
	}
	rep, err := daemon.Rebuild(cfg, daemon.RebuildOptions{Force: *force}, daemon.NewLogger(cfg.Log, os.Stderr))
	for _, d := range rep.Damaged {
		fmt.Fprintf(out, "damaged: %v\n", d)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "moved %s to %s (delete it once the node has caught up)\n", strings.Join(rep.Moved, ", "), rep.Aside)
	switch {
	case rep.OutboxLost:
		fmt.Fprintf(out, "WARNING: the outbox could not be read (%s): case writes this node accepted while cut off from its station and had not delivered yet, if any, are not carried over; check with the clerks of this PC\n", rep.OutboxError)
	default:
		fmt.Fprintf(out, "outbox: %d undelivered writes carried over (delivered once the node runs)\n", rep.OutboxKept)
	}
	fmt.Fprintf(out, "kept: certificates, encryption key, node id %s; now start the node (stationsync run --config %s, or stationsync start): it rejoins station %s and takes its data from the leader\n", cfg.NodeID, *path, cfg.StationID)
	return nil
}

func apiFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("STATIONSYNC_API_URL")
	if def == "" {
		def = "http://127.0.0.1:4680"
	}
	return fs.String("api", def, "base URL of the node's local API")
}

func cmdItems(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("items: expected list, import FILE or export --out FILE")
	}
	switch args[0] {
	case "list":
		return cmdGet(args[1:], out, "items list", "/v1/items")
	case "import":
		fs := newFlags("items import")
		api := apiFlag(fs)
		rest, err := parse(fs, args[1:], 1)
		if err != nil {
			return err
		}
		return importItems(out, *api, rest[0])
	case "export":
		fs := newFlags("items export")
		api := apiFlag(fs)
		outFile := fs.String("out", "", "file to write: .csv or .xlsx")
		if _, err := parse(fs, args[1:], 0); err != nil {
			return err
		}
		if *outFile == "" {
			return errors.New("items export: --out FILE.csv|FILE.xlsx is required")
		}
		return exportItems(out, *api, *outFile)
	default:
		return fmt.Errorf("items: unknown subcommand %q (list, import, export)", args[0])
	}
}

// importItems uploads an item list file to the node.
func importItems(out io.Writer, api, path string) error {
	f, err := itemfile.FormatOf(path)
	if err != nil {
		return err
	}
	body, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Post(api+"/v1/items/import?format="+string(f), "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("is the node running? %w", err)
	}
	defer resp.Body.Close()
	return printAnswer(out, resp, path+": ")
}

// exportItems downloads the item list as a file.
func exportItems(out io.Writer, api, path string) error {
	f, err := itemfile.FormatOf(path)
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: time.Minute}
	resp, err := c.Get(api + "/v1/items?format=" + string(f))
	if err != nil {
		return fmt.Errorf("is the node running? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return printAnswer(out, resp, "")
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "item list written to %s\n", path)
	return nil
}

func cmdCases(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("cases: expected list or show ID")
	}
	switch args[0] {
	case "list":
		fs := newFlags("cases list")
		api := apiFlag(fs)
		month := fs.String("month", "", "YYYY-MM")
		if _, err := parse(fs, args[1:], 0); err != nil {
			return err
		}
		q := url.Values{}
		if *month != "" {
			q.Set("month", *month)
		}
		return getJSON(out, *api+"/v1/cases?"+q.Encode())
	case "show":
		fs := newFlags("cases show")
		api := apiFlag(fs)
		rest, err := parse(fs, args[1:], 1)
		if err != nil {
			return err
		}
		return getJSON(out, *api+"/v1/cases/"+url.PathEscape(rest[0]))
	default:
		return fmt.Errorf("cases: unknown subcommand %q", args[0])
	}
}

func cmdConflicts(args []string, out io.Writer) error {
	fs := newFlags("conflicts")
	api := apiFlag(fs)
	all := fs.Bool("all", false, "resolved ones too")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	path := "/v1/conflicts"
	if *all {
		path += "?all=1"
	}
	return getJSON(out, *api+path)
}

func cmdGet(args []string, out io.Writer, name, path string) error {
	fs := newFlags(name)
	api := apiFlag(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	return getJSON(out, *api+path)
}

// getJSON prints the API's answer indented, or its error message.
func getJSON(out io.Writer, u string) error {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return fmt.Errorf("is the node running? %w", err)
	}
	defer resp.Body.Close()
	return printAnswer(out, resp, "")
}

// printAnswer prints a JSON answer indented; an error answer becomes the
// command's error, prefixed with what it was about.
func printAnswer(out io.Writer, resp *http.Response, about string) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s%s (%s)", about, e.Error.Message, resp.Status)
		}
		return fmt.Errorf("%s%s", about, resp.Status)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		_, err = out.Write(body)
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
