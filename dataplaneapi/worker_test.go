package dataplaneapi

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// showInfo is the start of a 2.6.12 `show info` reply, in HAProxy's order.
const showInfo = "Name: HAProxy\nVersion: 2.6.12-1+deb12u4\nRelease_date: 2026/10/17\nNbthread: 4\nNbproc: 1\nProcess_num: 1\n" +
	"Pid: 4242\nUptime: 0d 0h01m05s\nUptime_sec: 65\nMemmax_MB: 0\n"

// Pins: parseWorker needed only a Pid line, so a reply cut after it read
// as a worker started now (uptime 0: "a new worker", forced again) without
// a version (HAProxy < 3.0: no holds).
func TestParseWorkerRequiresAWholeReading(t *testing.T) {
	tests := []struct {
		name, reply string
		missing     string // "" when the reply is a whole reading
	}{
		{"whole", showInfo, ""},
		{"empty", "", "Pid, Uptime_sec, Version"},
		{"cut after Pid", showInfo[:strings.Index(showInfo, "Uptime:")], "Uptime_sec"},
		{"cut before Pid", showInfo[:strings.Index(showInfo, "Pid:")], "Pid, Uptime_sec"},
		{"cut after the name", "Name: HAProxy\n", "Pid, Uptime_sec, Version"},
		{"no version", strings.Replace(showInfo, "Version: 2.6.12-1+deb12u4\n", "", 1), "Version"},
		{"a numbered refusal", "[3]: Unknown command\n", "Pid, Uptime_sec, Version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := parseWorker(tt.reply)
			if tt.missing != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "show info: no "+tt.missing+" in the reply")
				assert.Equal(t, worker{}, w)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "4242", w.pid)
			assert.Equal(t, "2.6.12-1+deb12u4", w.version)
			assert.WithinDuration(t, time.Now().Add(-65*time.Second), w.started, 2*time.Second)
		})
	}
	_, err := parseWorker(strings.Replace(showInfo, "Uptime_sec: 65", "Uptime_sec: 6x", 1))
	assert.ErrorContains(t, err, `Uptime_sec "6x" is not a number of seconds`)
}

// Pins: the worker (`show info`) and the loaded fingerprint (`show env`)
// were read through client-native, whose transport ends a reply at a read
// error and reports it whole: a `show info` cut after Pid gave a worker
// started "now" with no version, a cut fingerprint read as drift (a
// reload). They are read over Batch, where a reply ends only at the
// prompt. Real HAProxy cannot be made to close a connection mid-reply on
// cue, so a fake stats socket plays that part: it answers client-native's
// one-shot form and the interactive mode alike, and cuts both replies.
func TestDecidingRepliesCutShortAreErrors(t *testing.T) {
	sock := cuttingSocket(t, map[string]string{
		"show info":                  showInfo[:strings.Index(showInfo, "Uptime:")],
		"show env PGSVC_FINGERPRINT": "PGSVC_FINGERPRINT=3f2a", // of 24 hex digits
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt, err := NewRuntime(ctx, sock)
	require.NoError(t, err)
	sy := &Syncer{Runtime: rt}

	w, err := sy.worker(ctx)
	require.Error(t, err, "a cut `show info` is no reading of the worker, got %+v", w)
	assert.Contains(t, err.Error(), "read the worker")
	assert.Contains(t, err.Error(), "reply cut short")
	assert.Equal(t, worker{}, w)

	fp, err := rt.RunningFingerprint(ctx, "PGSVC_FINGERPRINT")
	require.Error(t, err, "a cut `show env` is no fingerprint, got %q", fp)
	assert.Contains(t, err.Error(), "reply cut short")
	assert.Empty(t, fp)
}

// cuttingSocket is a fake stats socket answering each command in replies
// with that reply and no end: client-native's form ("set severity-output
// number;<command>") gets it and the connection closes; the interactive
// form (prompt, severity-output, the commands, quit) gets the preamble's
// empty replies, then the cut one.
func cuttingSocket(t *testing.T, replies map[string]string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "stats.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveCut(c, replies)
		}
	}()
	return sock
}

func serveCut(c net.Conn, replies map[string]string) {
	defer c.Close()
	in := bufio.NewScanner(c)
	if !in.Scan() {
		return
	}
	if cmd, ok := strings.CutPrefix(in.Text(), "set severity-output number;"); ok {
		_, _ = c.Write([]byte(replies[cmd]))
		return
	}
	// Interactive: read everything first (closing with unread input
	// resets the connection, and the client would see that instead).
	out := cliPrompt // the reply to "prompt"
	cut := ""
	for in.Scan() && in.Text() != "quit" {
		if r, ok := replies[in.Text()]; ok && cut == "" {
			cut = r
		} else if cut == "" {
			out += cliPrompt // set severity-output number
		}
	}
	_, _ = c.Write([]byte(out + cut))
}
