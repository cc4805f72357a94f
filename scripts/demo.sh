#!/usr/bin/env bash
# Records a small demo run on the embedded default (no policy file, no
# collector) and shows it: a throwaway git repository in which a "fake agent"
# script runs a command tree, writes, renames and deletes files and connects
# to a loopback listener.
set -euo pipefail
bin=$(realpath "${1:-bin/agentwatch}")
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

base=$(mktemp -d /tmp/agentwatch-demo.XXXXXX)
chmod 755 "$base"
work="$base/repo"       # the workspace the "agent" works in
store="$base/store"     # the embedded run store (outside the workspace)
trace="$base/run.json"  # the OTLP/JSON trace file
mkdir "$work" && cd "$work"
git init -q .
cat > agent.sh <<'AGENT'
#!/bin/sh
# A stand-in agent: what a coding agent typically does in a repository.
echo "agent: editing files"
mkdir -p src
printf 'package main\n' > src/main.go
printf 'draft\n' > notes.tmp && mv notes.tmp NOTES.md
sh -c 'ls src >/dev/null; echo done > build.log; rm build.log'
(exec 3<>/dev/tcp/127.0.0.1/9 2>/dev/null) 2>/dev/null || true
exit 0
AGENT
chmod +x agent.sh
git add agent.sh && git -c user.email=demo@example.com -c user.name=demo commit -q -m base
# The agent never runs as root: under sudo it runs as you; as plain root
# (a CI box) we hand the workspace to nobody and run it as nobody.
user=()
if [ -n "${SUDO_UID:-}" ]; then
  chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$work"
elif [ "$(id -u)" -eq 0 ]; then
  chown -R nobody: "$work"
  user=(--user nobody)
fi


$sudo "$bin" run "${user[@]}" --store "$store" --trace-file "$trace" -- bash ./agent.sh
echo
$sudo "$bin" runs --store "$store"
echo
$sudo "$bin" show --store "$store" latest
echo
echo "OTLP/JSON trace file: $trace"
