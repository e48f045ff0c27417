package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/reconcile/fleet"
)

// daemonConfig is every setting of the live commands. Each key can be set in
// the --config YAML file; flags given on the command line win.
type daemonConfig struct {
	Inventory      string        `yaml:"inventory"`
	Etcd           string        `yaml:"etcd"`
	EtcdUser       string        `yaml:"etcd_user"`
	EtcdPassword   string        `yaml:"etcd_password"`
	EtcdCACert     string        `yaml:"etcd_cacert"`
	EtcdCert       string        `yaml:"etcd_cert"`
	EtcdKey        string        `yaml:"etcd_key"`
	Namespace      string        `yaml:"namespace"`
	OverridePrefix string        `yaml:"override_prefix"`
	Node           string        `yaml:"node"`
	Clusters       listFlag      `yaml:"cluster"`
	Socket         string        `yaml:"haproxy_socket"`
	ConfDir        string        `yaml:"haproxy_conf_dir"`
	FileLayout     string        `yaml:"haproxy_file_layout"`
	MainConfig     string        `yaml:"haproxy_config"`
	Reload         string        `yaml:"haproxy_reload"`
	HAProxyBin     string        `yaml:"haproxy_bin"`
	StateFile      string        `yaml:"haproxy_server_state_file"`
	Resync         time.Duration `yaml:"resync"`
	Hold           bool          `yaml:"hold_connections"`
	HoldMax        time.Duration `yaml:"hold_max"`
	HoldFrom       string        `yaml:"hold_from"`
	StopPrefix     string        `yaml:"stop_prefix"`
	LogFormat      string        `yaml:"log_format"`
	LogLevel       string        `yaml:"log_level"`
	Timeout        time.Duration `yaml:"timeout"`
	MetricsListen  string        `yaml:"metrics_listen"`
	AgentName      string        `yaml:"agent_name"`
	AgentsPrefix   string        `yaml:"agents_prefix"`
	AgentTTL       time.Duration `yaml:"agent_ttl"`

	// reloadFound says how the reload was chosen when none was set.
	reloadFound string
}

func defaultConfig() daemonConfig {
	return daemonConfig{
		Etcd:           "http://127.0.0.1:2379",
		Namespace:      dcs.DefaultNamespace,
		OverridePrefix: dcs.DefaultOverridePrefix,
		Socket:         "/var/run/haproxy.sock",
		ConfDir:        "/etc/haproxy/conf.d",
		HAProxyBin:     "haproxy",
		Resync:         30 * time.Second,
		Hold:           reconcile.DefaultHoldConfig().Enabled,
		HoldMax:        reconcile.DefaultHoldConfig().Max,
		HoldFrom:       holdFromRequest,
		StopPrefix:     dcs.DefaultStopPrefix,
		LogFormat:      "text",
		LogLevel:       "info",
		Timeout:        10 * time.Second,
		MetricsListen:  "127.0.0.1:9180",
		AgentsPrefix:   fleet.DefaultPrefix,
		AgentTTL:       fleet.DefaultTTL,
	}
}

// register binds every setting to a flag.
func (c *daemonConfig) register(fs *flag.FlagSet) *string {
	path := fs.String("config", "", "YAML `file` with any of the settings below (flags win)")
	fs.StringVar(&c.Inventory, "inventory", c.Inventory, "Pigsty inventory YAML `file`")
	fs.StringVar(&c.Etcd, "etcd", c.Etcd, "etcd `endpoints`, comma-separated")
	fs.StringVar(&c.EtcdUser, "etcd-user", c.EtcdUser, "etcd `user` (password from --etcd-password or PGSVC_ETCD_PASSWORD)")
	fs.StringVar(&c.EtcdPassword, "etcd-password", c.EtcdPassword, "etcd `password`")
	fs.StringVar(&c.EtcdCACert, "etcd-cacert", c.EtcdCACert, "CA `file` to verify etcd's TLS certificate")
	fs.StringVar(&c.EtcdCert, "etcd-cert", c.EtcdCert, "client certificate `file` for etcd")
	fs.StringVar(&c.EtcdKey, "etcd-key", c.EtcdKey, "client key `file` for etcd")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "Patroni namespace in etcd")
	fs.StringVar(&c.OverridePrefix, "override-prefix", c.OverridePrefix, "etcd `prefix` of pgsvc's per-instance overrides")
	fs.StringVar(&c.Node, "node", c.Node, "inventory `host` of this HAProxy: serve the clusters Pigsty renders onto it")
	fs.Var(&c.Clusters, "cluster", "only this `cluster` (repeatable or comma-separated; default all)")
	fs.StringVar(&c.Socket, "haproxy-socket", c.Socket, "HAProxy stats socket `path` (admin level)")
	fs.StringVar(&c.ConfDir, "haproxy-conf-dir", c.ConfDir, "`dir` HAProxy loads, one <cluster>-<service>.cfg per service")
	fs.StringVar(&c.FileLayout, "haproxy-file-layout", c.FileLayout, fileLayoutUsage)
	fs.StringVar(&c.MainConfig, "haproxy-config", c.MainConfig, "global/defaults `file` checked with the service files (default: <conf-dir>/haproxy.cfg, else haproxy.cfg beside the conf dir, if present)")
	fs.StringVar(&c.Reload, "haproxy-reload", c.Reload, "how to reload for structural changes: master:SOCKET, signal:PIDFILE, a command (e.g. 'systemctl reload haproxy') or none (default: master:"+dataplaneapi.DefaultMasterSocket+", Pigsty v4.5's, when at start-up it is the master of the HAProxy on --haproxy-socket; else none)")
	fs.StringVar(&c.HAProxyBin, "haproxy-bin", c.HAProxyBin, "haproxy `binary` for config checks")
	fs.StringVar(&c.StateFile, "haproxy-server-state-file", c.StateFile, "HAProxy's server-state-file `path`, written before each reload pgsvc makes so the new worker keeps the old one's health (default: <conf-dir>/pgsvc-server-state without --cluster; none: off)")
	fs.DurationVar(&c.Resync, "resync", c.Resync, "full check of HAProxy against the desired state every `interval` (0: never)")
	fs.BoolVar(&c.Hold, "hold-connections", c.Hold, "hold new connections to the primary services through a planned switchover (HAProxy >= 3.0; --hold-connections=false turns it off): clients wait instead of failing")
	fs.DurationVar(&c.HoldMax, "hold-max", c.HoldMax, "release held connections after `duration` at the latest (clients with a shorter connect timeout time out instead)")
	fs.StringVar(&c.HoldFrom, "hold-from", c.HoldFrom, "when a hold starts: `request` (the failover key) or before_stop (Patroni's before_stop hook runs `pgsvc before-stop`, after the old primary's checkpoint: clients wait less)")
	fs.StringVar(&c.StopPrefix, "stop-prefix", c.StopPrefix, "etcd `prefix` where `pgsvc before-stop` says a leader is about to stop for a switchover")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "`address` for /metrics, /healthz, /readyz (loopback unless told otherwise; empty: off)")
	fs.StringVar(&c.AgentName, "agent-name", c.AgentName, "this pgsvc run's `name` in the fleet (default: --node, else the host name)")
	fs.StringVar(&c.AgentsPrefix, "agents-prefix", c.AgentsPrefix, "etcd `prefix` under which each pgsvc run registers itself (set --wait, drain --wait, status --fleet)")
	fs.DurationVar(&c.AgentTTL, "agent-ttl", c.AgentTTL, "lease `duration` of a pgsvc run's registration: a dead agent is reported gone after it")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "one-shot commands (reconcile, status, set, unset, overrides) give up after `duration`")
	return path
}

// parseDaemonFlags parses flags, loads --config if given, and parses the
// flags again so the command line wins over the file.
func parseDaemonFlags(fs *flag.FlagSet, args []string, c *daemonConfig) error {
	path := c.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return c.finish()
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	fromFile := defaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fromFile); err != nil && !errors.Is(err, io.EOF) {
		return configError(*path, err)
	}
	// The flags point into *c: overwrite it with the file, then parse the
	// command line again so explicit flags win.
	*c = fromFile
	if hasFlag(args, "cluster") {
		c.Clusters = nil // --cluster on the command line replaces the file's list
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	return c.finish()
}

func (c *daemonConfig) finish() error {
	if c.EtcdPassword == "" {
		c.EtcdPassword = os.Getenv("PGSVC_ETCD_PASSWORD")
	}
	if c.Inventory == "" {
		return errors.New("--inventory is required")
	}
	if _, err := dataplaneapi.ParseLayout(c.FileLayout); err != nil {
		return fmt.Errorf("--haproxy-file-layout: %w", err)
	}
	if c.HoldMax <= 0 || c.HoldMax > time.Minute {
		return fmt.Errorf("--hold-max %s: want more than 0 and at most 1m (clients wait that long for a connection)", c.HoldMax)
	}
	if c.HoldFrom != holdFromRequest && c.HoldFrom != holdFromStop {
		return fmt.Errorf("--hold-from %q: want %s or %s", c.HoldFrom, holdFromRequest, holdFromStop)
	}
	if !strings.HasPrefix(c.StopPrefix, "/") || !strings.HasSuffix(c.StopPrefix, "/") {
		return fmt.Errorf("--stop-prefix %q: want an etcd prefix that starts and ends with /", c.StopPrefix)
	}
	if c.AgentTTL < 2*time.Second || c.AgentTTL > 10*time.Minute {
		return fmt.Errorf("--agent-ttl %s: want 2s to 10m (etcd leases are whole seconds; a dead agent is reported gone after it)", c.AgentTTL)
	}
	if strings.Contains(c.AgentName, "/") {
		return fmt.Errorf("--agent-name %q: want a name without /", c.AgentName)
	}
	if !strings.HasPrefix(c.AgentsPrefix, "/") || !strings.HasSuffix(c.AgentsPrefix, "/") {
		return fmt.Errorf("--agents-prefix %q: want an etcd prefix that starts and ends with /", c.AgentsPrefix)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// masked is the effective configuration as YAML, secrets masked.
func (c daemonConfig) masked() string {
	if c.EtcdPassword != "" {
		c.EtcdPassword = "********"
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		return err.Error()
	}
	return string(out)
}

// checkPermissions refuses a world-writable HAProxy socket or config dir:
// anyone on the host could then drive HAProxy or plant configuration.
func (c *daemonConfig) checkPermissions() error {
	for _, p := range []struct{ path, what string }{{c.Socket, "HAProxy socket"}, {c.ConfDir, "HAProxy config dir"}} {
		st, err := os.Stat(p.path)
		if err != nil {
			continue // missing: reported when used (HAProxy may start later)
		}
		if st.Mode().Perm()&0o002 != 0 {
			return fmt.Errorf("refusing to use %s %s: it is world-writable (mode %04o); anyone on this host could control HAProxy — chmod o-w it",
				p.what, p.path, st.Mode().Perm())
		}
	}
	return nil
}

// fileLayoutUsage is the help of --haproxy-file-layout (run and render).
const fileLayoutUsage = "service files in the conf dir: `service` (one <cluster>-<service>.cfg each, as Pigsty) or cluster (one <cluster>.cfg each, for nodes with thousands of services)"

// fileLayout is the validated --haproxy-file-layout.
func (c *daemonConfig) fileLayout() dataplaneapi.Layout {
	l, _ := dataplaneapi.ParseLayout(c.FileLayout) // validated in finish
	return l
}

func (c *daemonConfig) layout() dcs.Layout {
	return dcs.Layout{Namespace: dcs.NormalizePrefix(c.Namespace), OverridePrefix: dcs.NormalizePrefix(c.OverridePrefix),
		StopPrefix: dcs.NormalizePrefix(c.StopPrefix)}
}

func (c *daemonConfig) etcd() reconcile.EtcdConfig {
	var eps []string
	for _, e := range strings.Split(c.Etcd, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	return reconcile.EtcdConfig{Endpoints: eps, Username: c.EtcdUser, Password: c.EtcdPassword,
		CACert: c.EtcdCACert, Cert: c.EtcdCert, Key: c.EtcdKey}
}

func (c *daemonConfig) logger(w io.Writer) *slog.Logger {
	return c.loggerWithLevel(w, new(slog.LevelVar))
}

// loggerWithLevel logs at a level that SIGHUP can change.
func (c *daemonConfig) loggerWithLevel(w io.Writer, lvl *slog.LevelVar) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(c.LogLevel)) // validated in finish
	lvl.Set(l)
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// syncer is pgsvc's HAProxy side: the runtime API and the config dir. ctx
// must live as long as the syncer.
func (c *daemonConfig) syncer(ctx context.Context) (*dataplaneapi.Syncer, error) {
	r, err := dataplaneapi.ParseReloader(c.Reload)
	if err != nil {
		return nil, err
	}
	rt, err := dataplaneapi.NewRuntime(ctx, c.Socket)
	if err != nil {
		return nil, err
	}
	var detect func(context.Context) (dataplaneapi.Reloader, string)
	if c.Reload == "" {
		detectCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, c.reloadFound = dataplaneapi.DetectMasterReloader(detectCtx, dataplaneapi.DefaultMasterSocket, rt)
		cancel()
		if r == nil {
			// Not found at start-up (a master still starting, restarted
			// or started later): asked again whenever a reload is needed.
			detect = func(ctx context.Context) (dataplaneapi.Reloader, string) {
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				return dataplaneapi.DetectMasterReloader(ctx, dataplaneapi.DefaultMasterSocket, rt)
			}
		}
	}
	state, err := dataplaneapi.StateFilePath(c.ConfDir, c.StateFile, c.Clusters)
	if err != nil {
		return nil, err
	}
	return &dataplaneapi.Syncer{Runtime: rt,
		Config: &dataplaneapi.ConfigDir{Dir: c.ConfDir, Layout: c.fileLayout(), MainConfig: c.MainConfig, HAProxy: c.HAProxyBin, Reloader: r, DetectReload: detect,
			Clusters: c.Clusters, StateFile: state}}, nil
}

var (
	yamlLine      = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	yamlUnknown   = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	yamlWrongType = regexp.MustCompile("^cannot unmarshal !!\\w+ `(.*)` into (\\S+)$")
)

// configError turns a YAML decoding error into file:line messages in the
// config's own terms (keys and values, never Go type names).
func configError(path string, err error) error {
	var lines []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		lines = te.Errors
	} else {
		lines = []string{err.Error()}
	}
	msgs := make([]string, 0, len(lines))
	for _, l := range lines {
		m := yamlLine.FindStringSubmatch(l)
		if m == nil {
			msgs = append(msgs, fmt.Sprintf("config %s: %s", path, strings.TrimPrefix(l, "yaml: ")))
			continue
		}
		msg := m[2]
		if u := yamlUnknown.FindStringSubmatch(msg); u != nil {
			msg = fmt.Sprintf("unknown key %q (see pgsvc run --help)", u[1])
		} else if w := yamlWrongType.FindStringSubmatch(msg); w != nil {
			want := map[string]string{"time.Duration": "a duration like 30s", "int": "an integer", "bool": "true or false",
				"string": "a string", "main.listFlag": "a list of cluster names"}[w[2]]
			if want == "" {
				want = "another type"
			}
			msg = fmt.Sprintf("%q: want %s", w[1], want)
		}
		msgs = append(msgs, fmt.Sprintf("config %s:%s: %s", path, m[1], msg))
	}
	return errors.New(strings.Join(msgs, "; "))
}

// hold is the reconciler's switchover hold.
func (c *daemonConfig) hold() reconcile.HoldConfig {
	h := reconcile.DefaultHoldConfig()
	h.Enabled, h.Max, h.AtStop = c.Hold, c.HoldMax, c.HoldFrom == holdFromStop
	return h
}

// When a hold starts (hold_from).
const (
	holdFromRequest = "request"
	holdFromStop    = "before_stop"
)

// agentName is this daemon's name in the fleet: --agent-name, else its
// --node, else the host's name.
func (c *daemonConfig) agentName() string {
	if c.AgentName != "" {
		return c.AgentName
	}
	if c.Node != "" {
		return c.Node
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "pgsvc"
}
