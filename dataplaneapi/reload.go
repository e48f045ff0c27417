package dataplaneapi

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Reloader gracefully reloads HAProxy (master-worker): new workers start
// from the files on disk, old ones finish their sessions.
type Reloader interface {
	Reload(ctx context.Context) error
	String() string
}

// ParseReloader reads the --haproxy-reload setting:
//
//	master:/run/haproxy-master.sock   `reload` on the master CLI, confirmed with `show proc`
//	signal:/run/haproxy.pid           SIGUSR2 to the master whose pid is in the file
//	exec:systemctl reload haproxy     any command (also without the exec: prefix)
//	none, ""                          never reload (structural changes are written, not loaded, and an error)
//
// pgsvc run and reconcile turn "" into DetectMasterReloader's answer.
func ParseReloader(spec string) (Reloader, error) {
	switch {
	case spec == "" || spec == "none":
		return nil, nil
	case strings.HasPrefix(spec, "master:"):
		return &MasterReloader{Socket: strings.TrimPrefix(spec, "master:"), Timeout: 10 * time.Second}, nil
	case strings.HasPrefix(spec, "signal:"):
		return &SignalReloader{PIDFile: strings.TrimPrefix(spec, "signal:")}, nil
	}
	argv := strings.Fields(strings.TrimPrefix(spec, "exec:"))
	if len(argv) == 0 {
		return nil, fmt.Errorf("--haproxy-reload %q: empty command", spec)
	}
	return &CommandReloader{Argv: argv}, nil
}

// CommandReloader runs a command, e.g. systemctl reload haproxy.
type CommandReloader struct{ Argv []string }

func (r *CommandReloader) String() string { return "exec:" + strings.Join(r.Argv, " ") }

// Reload runs the command and fails with its output on a non-zero exit.
func (r *CommandReloader) Reload(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, r.Argv[0], r.Argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", r, err, oneLine(string(out)))
	}
	return nil
}

// SignalReloader sends SIGUSR2 to the master process.
type SignalReloader struct{ PIDFile string }

func (r *SignalReloader) String() string { return "signal:" + r.PIDFile }

// Reload signals the master named in the pid file.
func (r *SignalReloader) Reload(context.Context) error {
	data, err := os.ReadFile(r.PIDFile)
	if err != nil {
		return fmt.Errorf("%s: %w", r, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(firstLine(string(data))))
	if err != nil || pid <= 1 {
		return fmt.Errorf("%s: no master pid in %q", r, firstLine(string(data)))
	}
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		return fmt.Errorf("%s: %w", r, err)
	}
	return nil
}

// DefaultMasterSocket is where Pigsty v4.5's haproxy unit puts the master
// CLI (EXTRAOPTS=-S /run/haproxy-master.sock), as does Debian's unit.
const DefaultMasterSocket = "/run/haproxy-master.sock"

// DetectMasterReloader is the reload used when none is set: the master CLI
// at socket, but only when it is the master of the HAProxy that answers
// the stats socket (its workers include the stats socket's pid; a host may
// run a second HAProxy, and Debian's own unit has a master socket there
// too). Otherwise nil (no reloads), with why, for the startup log.
func DetectMasterReloader(ctx context.Context, socket string, rt *Runtime) (Reloader, string) {
	for {
		r, why, retry := detectMaster(ctx, socket, rt)
		if !retry {
			return r, why
		}
		// A master that just started may not list the worker that already
		// answers the stats socket: ask again until ctx ends.
		select {
		case <-ctx.Done():
			return nil, why
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// detectMaster is one try of DetectMasterReloader; retry is true when the
// master does not list the stats socket's worker (yet, or at all).
func detectMaster(ctx context.Context, socket string, rt *Runtime) (_ Reloader, why string, retry bool) {
	if _, err := os.Stat(socket); err != nil {
		return nil, fmt.Sprintf("no haproxy_reload set and no master socket at %s (%v): structural changes are written, not loaded, until haproxy_reload is set", socket, err), false
	}
	st, err := ReadMaster(ctx, socket)
	if err != nil {
		return nil, fmt.Sprintf("no haproxy_reload set and the master socket %s does not answer (%v): structural changes are written, not loaded, until haproxy_reload is set", socket, err), false
	}
	w, err := readWorker(ctx, rt)
	if err != nil {
		return nil, fmt.Sprintf("no haproxy_reload set and the stats socket %s does not answer (%v): structural changes are written, not loaded, until haproxy_reload is set", rt.Socket(), err), false
	}
	for _, pid := range st.Workers {
		if strconv.Itoa(pid) == w.pid {
			return &MasterReloader{Socket: socket, Timeout: 10 * time.Second}, fmt.Sprintf("master socket %s found, the master of the HAProxy on %s (worker %s)", socket, rt.Socket(), w.pid), false
		}
	}
	return nil, fmt.Sprintf("no haproxy_reload set and the master at %s runs workers %v, not the stats socket's worker %s (another HAProxy): structural changes are written, not loaded, until haproxy_reload is set",
		socket, st.Workers, w.pid), true
}

// MasterReloader asks the master CLI to reload. On 2.6 `reload` returns at
// once, so completion is confirmed by a higher reload count in `show proc`;
// 3.x answers when the new worker is up or failed (Success=1 or 0).
type MasterReloader struct {
	Socket  string
	Timeout time.Duration
}

func (r *MasterReloader) String() string { return "master:" + r.Socket }

// Reload reloads and waits until a new worker runs.
func (r *MasterReloader) Reload(ctx context.Context) error {
	before, err := ReadMaster(ctx, r.Socket)
	if err != nil {
		return err
	}
	reply, err := masterCommand(ctx, r.Socket, "reload")
	if err != nil {
		return err
	}
	if failed, why := reloadFailed(reply); failed {
		return fmt.Errorf("%s: reload failed: %s", r, why)
	}
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	for {
		after, err := ReadMaster(ctx, r.Socket)
		switch {
		case err == nil && after.Failed > before.Failed:
			return fmt.Errorf("%s: reload failed (show proc: failed %d)", r, after.Failed)
		case err == nil && after.Reloads > before.Reloads:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: reload not confirmed by show proc: %w", r, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// reloadFailed reads the reply of the master CLI's `reload`: HAProxy 3.x
// answers "Success=0", "--" and the new process's startup messages when the
// new configuration did not start (2.6 answers nothing); the reason is in
// the [ALERT] lines.
func reloadFailed(reply string) (bool, string) {
	head, logs, _ := strings.Cut(reply, "\n--")
	if strings.TrimSpace(head) != "Success=0" {
		return false, ""
	}
	var alerts []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "[ALERT]") {
			alerts = append(alerts, strings.TrimSpace(line))
		}
	}
	if len(alerts) > 0 {
		logs = strings.Join(alerts, "\n")
	}
	if logs = oneLine(strings.TrimSpace(logs)); logs == "" {
		logs = "HAProxy gave no reason"
	}
	return true, logs
}

// MasterStatus is what the master's `show proc` says.
type MasterStatus struct {
	Reloads int   // master reload count
	Failed  int   // failed reloads
	Workers []int // current workers' pids
}

// ReadMaster reads `show proc` from the master CLI.
func ReadMaster(ctx context.Context, socket string) (MasterStatus, error) {
	out, err := masterCommand(ctx, socket, "show proc")
	if err != nil {
		return MasterStatus{}, err
	}
	return ParseShowProc(out)
}

// ParseShowProc parses the master CLI's `show proc` output.
func ParseShowProc(out string) (MasterStatus, error) {
	var st MasterStatus
	sawMaster := false
	section := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			section = line
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		switch {
		case f[1] == "master":
			sawMaster = true
			st.Reloads, _ = strconv.Atoi(f[2])
			if i := strings.Index(line, "[failed: "); i >= 0 {
				st.Failed, _ = strconv.Atoi(strings.TrimRight(strings.Fields(line[i+9:])[0], "]"))
			}
		case f[1] == "worker" && strings.HasPrefix(section, "# workers"):
			if pid, err := strconv.Atoi(f[0]); err == nil {
				st.Workers = append(st.Workers, pid)
			}
		}
	}
	if !sawMaster {
		return MasterStatus{}, fmt.Errorf("show proc: no master line in %q", firstLine(out))
	}
	return st, nil
}

func masterCommand(ctx context.Context, socket, command string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return "", fmt.Errorf("haproxy master socket %s: %w", socket, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return "", err
	}
	if _, err := conn.Write([]byte(command + ";quit\n")); err != nil {
		return "", fmt.Errorf("haproxy master socket %s: %q: %w", socket, command, err)
	}
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String(), nil
}
