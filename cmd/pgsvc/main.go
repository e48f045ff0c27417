// Command pgsvc keeps HAProxy's PostgreSQL services true to the live state of
// Patroni clusters. See `pgsvc help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"
)

// command is one subcommand: its flags are parsed by run itself.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, out, errOut io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"render":      {"render HAProxy listen sections from the inventory (and optional Patroni state)", runRender},
		"validate":    {"check the inventory and service definitions, print a summary", runValidate},
		"reconcile":   {"one pass against live etcd and HAProxy: show (--dry-run) or apply the changes", runReconcile},
		"run":         {"the daemon: watch etcd and the inventory, keep HAProxy equal to the desired state", runDaemon},
		"status":      {"per service and server: address, live role, desired vs what HAProxy has", runStatus},
		"set":         {"set per-instance variables (overrides in etcd), e.g. pgsvc set pg-test-3 pg_offline_query=true", runSet},
		"unset":       {"remove per-instance overrides, e.g. pgsvc unset pg-test-3 pg_offline_query", runUnset},
		"overrides":   {"list every instance's overrides", runOverrides},
		"drain":       {"take an instance out of every service on every HAProxy (sessions stay), e.g. pgsvc drain pg-test-3 --wait", runDrain},
		"undrain":     {"put a drained instance back, e.g. pgsvc undrain pg-test-3", runUndrain},
		"fence":       {"Patroni pre_promote: wait until every HAProxy shows the old primary out, e.g. pgsvc fence --cluster pg-test --timeout 5s", runFence},
		"before-stop": {"Patroni before_stop: in a switchover, wait until every HAProxy holds new connections, e.g. pgsvc before-stop --cluster pg-test --member pg-test-1", runBeforeStop},
		"version":     {"print version and build information", runVersion},
	}
}

// exitError carries a specific exit status (2: changes pending).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// forceOnSecondSignal is the way out of work that is stuck after a stop
// signal. The first SIGINT or SIGTERM ends the context main gives every
// command, which then finishes the work in flight (a reconcile pass is never
// cut short: HAProxy is never left half-way); that can last as long as the
// pass's own timeout when HAProxy's socket or etcd hangs. A second signal
// logs that the exit is forced and calls exit with 128+signal, the status a
// shell reports for death by that signal. The returned func ends the watch.
func forceOnSecondSignal(ctx context.Context, log *slog.Logger, exit func(code int)) (stop func()) {
	// Read before Notify: a signal arriving in between is then the first
	// (ctx not ended yet), never mistaken for the second.
	first := ctx.Err() == nil // else the first signal came before the watch
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case s := <-sig:
				name := unix.SignalName(s.(syscall.Signal))
				if first {
					first = false
					log.Info("stopping after the pass in flight (a second SIGTERM or SIGINT exits at once)", "signal", name)
					continue
				}
				log.Error("second stop signal: exiting at once, without waiting for the pass in flight; "+
					"HAProxy may hold part of its changes until pgsvc runs again", "signal", name)
				exit(128 + int(s.(syscall.Signal)))
				return
			}
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
		<-stopped
	}
}

func run(ctx context.Context, args []string, out, errOut io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(out, cmds)
		if len(args) == 0 {
			return 1
		}
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(errOut, "pgsvc: unknown command %q (see pgsvc help)\n", args[0])
		return 1
	}
	err := cmd.run(ctx, args[1:], out, errOut)
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(errOut, ee.msg)
		}
		return ee.code
	default:
		fmt.Fprintf(errOut, "pgsvc %s: %s\n", args[0], oneLine(err))
		return 1
	}
}

// oneLine keeps joined errors readable on one line each, prefixed.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "\n  ")
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "pgsvc keeps HAProxy's PostgreSQL services true to the live state of Patroni clusters.")
	fmt.Fprintln(w, "\nUsage: pgsvc <command> [flags]   (pgsvc <command> --help for its flags)\n\nCommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name, synopsis string, errOut io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() {
		fmt.Fprintf(errOut, "Usage: pgsvc %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and refuses stray positional arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// listFlag is a repeatable string flag (--cluster a --cluster b, or a,b).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// UnmarshalYAML takes a list or, like the flag, a comma-separated string.
func (l *listFlag) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = nil
		return l.Set(n.Value)
	}
	var list []string
	if n.Kind != yaml.SequenceNode || n.Decode(&list) != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a list of cluster names", n.Line)}}
	}
	*l = listFlag(list)
	return nil
}

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
