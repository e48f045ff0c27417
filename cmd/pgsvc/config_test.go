package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConfigFileAndFlags: the config file sets what flags set, explicit
// flags win (a --cluster list replaces the file's), and a bad file is one
// error naming file, line and value.
func TestConfigFileAndFlags(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, file string
		flags      []string
		want       []string // lines of --print-config
		wantErr    string
	}{
		{name: "file only", file: "inventory: inv.yml\ncluster: [pg-a, pg-b]\nresync: 5m\n",
			want: []string{"cluster:\n    - pg-a\n    - pg-b\n", "resync: 5m0s\n"}},
		{name: "a flag replaces the file's cluster list", file: "inventory: inv.yml\ncluster: [pg-a, pg-b]\n",
			flags: []string{"--cluster", "pg-c"}, want: []string{"cluster:\n    - pg-c\n"}},
		{name: "comma-separated string", file: "inventory: inv.yml\ncluster: pg-a, pg-b\n",
			want: []string{"cluster:\n    - pg-a\n    - pg-b\n"}},
		{name: "flags win over the file", file: "inventory: inv.yml\nresync: 5m\n",
			flags: []string{"--resync", "10s"}, want: []string{"resync: 10s\n"}},
		{name: "secrets masked", file: "inventory: inv.yml\netcd_password: hunter2\n",
			want: []string{"etcd_password: '********'\n"}},
		{name: "unknown key", file: "inventory: inv.yml\nresnyc: 5m\n",
			wantErr: `config {file}:2: unknown key "resnyc" (see pgsvc run --help)`},
		{name: "bad duration", file: "inventory: inv.yml\nresync: soon\n",
			wantErr: `config {file}:2: "soon": want a duration like 30s`},
		{name: "cluster is a mapping", file: "inventory: inv.yml\ncluster: { a: 1 }\n",
			wantErr: `config {file}:2: want a list of cluster names`},
		{name: "holding is on by default", file: "inventory: inv.yml\n",
			want: []string{"hold_connections: true\n", "hold_max: 5s\n"}},
		{name: "holding off", file: "inventory: inv.yml\nhold_connections: false\n",
			want: []string{"hold_connections: false\n"}},
		{name: "holding off by flag", file: "inventory: inv.yml\n", flags: []string{"--hold-connections=false"},
			want: []string{"hold_connections: false\n"}},
		{name: "holding with its bound", file: "inventory: inv.yml\nhold_max: 3s\n",
			want: []string{"hold_connections: true\n", "hold_max: 3s\n"}},
		{name: "hold_max out of range", file: "inventory: inv.yml\nhold_max: 2m\n",
			wantErr: `--hold-max 2m0s: want more than 0 and at most 1m (clients wait that long for a connection)`},
		{name: "holds from the request by default", file: "inventory: inv.yml\n",
			want: []string{"hold_from: request\n", "stop_prefix: /pgsvc/stopping/\n"}},
		{name: "holding from Patroni's before_stop", file: "inventory: inv.yml\nhold_from: before_stop\n",
			want: []string{"hold_from: before_stop\n"}},
		{name: "hold_from unknown", file: "inventory: inv.yml\nhold_from: checkpoint\n",
			wantErr: `--hold-from "checkpoint": want request or before_stop`},
		{name: "stop_prefix not a prefix", file: "inventory: inv.yml\nstop_prefix: pgsvc/stopping\n",
			wantErr: `--stop-prefix "pgsvc/stopping": want an etcd prefix that starts and ends with /`},
		{name: "malformed YAML", file: "inventory: [inv.yml\n",
			wantErr: `config {file}:1: did not find expected ',' or ']'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, dir, "pgsvc.yml", tt.file)
			code, out, stderr := runCLI(t, append([]string{"run", "--config", file, "--print-config"}, tt.flags...)...)
			if tt.wantErr != "" {
				assert.Equal(t, 1, code)
				assert.Equal(t, "pgsvc run: "+strings.ReplaceAll(tt.wantErr, "{file}", file)+"\n", stderr)
				return
			}
			require.Equal(t, 0, code, stderr)
			for _, w := range tt.want {
				assert.Contains(t, out, w)
			}
			assert.NotContains(t, out, "hunter2")
		})
	}
}
