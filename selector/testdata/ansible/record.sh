#!/bin/sh
# Records every host's variables as Ansible itself reads each inventory
# here: hostvars dumped by a playbook (ansible-core 2.14, Debian bookworm),
# minus what Ansible adds for the run. The Go tests compare
# selector.ParseInventory against these files and need no Ansible.
#   apt-get install ansible-core && ./record.sh
set -eu
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/dump.yml" <<'PLAY'
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - copy:
        dest: "{{ lookup('env', 'HOSTVARS_OUT') }}"
        content: "{{ hostvars | to_json }}"
PLAY
for inv in *.yml; do
	out=${inv%.yml}.hostvars.json
	HOSTVARS_OUT="$work/raw.json" ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0 \
		ANSIBLE_NOCOLOR=1 ansible-playbook -i "$inv" "$work/dump.yml" > "$work/log" 2>&1 ||
		{ cat "$work/log"; exit 1; }
	/usr/bin/python3 - "$work/raw.json" "$out" "$(ansible --version | head -1)" "$inv" <<'PY'
import json, math, sys
run = {"ansible_check_mode", "ansible_config_file", "ansible_diff_mode", "ansible_facts", "ansible_forks",
       "ansible_inventory_sources", "ansible_playbook_python", "ansible_run_tags", "ansible_skip_tags",
       "ansible_verbosity", "ansible_version", "groups", "inventory_dir", "inventory_file", "omit", "playbook_dir"}
def plain(v):  # JSON without Infinity/NaN, which Go's decoder refuses
    if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
        return {"__float__": repr(v)}
    if isinstance(v, dict):
        return {k: plain(e) for k, e in v.items()}
    if isinstance(v, list):
        return [plain(e) for e in v]
    return v
raw = json.load(open(sys.argv[1]))
listed = "localhost" in open(sys.argv[4]).read()
hosts = {}
for name, hv in raw.items():
    if name == "localhost" and not listed:
        continue  # Ansible's implicit localhost, not an inventory host
    hosts[name] = json.dumps(plain({k: v for k, v in hv.items() if k not in run}), sort_keys=True, separators=(",", ":"))
json.dump({"recorded_with": sys.argv[3], "hosts_in_order": list(hosts), "hostvars": hosts},
          open(sys.argv[2], "w"), indent=1, sort_keys=False)
open(sys.argv[2], "a").write("\n")
PY
	echo "recorded $out"
done
