#!/usr/bin/env bash
# A widget turn, a button that replaces the card, and a form that makes the model answer,
# against the real server with the bundled mock model and test MCP server. Prints each
# request and what came back. Needs the release builds the README makes:
#   cargo build --release -p chatkit-rs -p mock-llm -p mcp-tasks
# (binaries from $BIN_DIR, else $CARGO_TARGET_DIR/release, else target/release), curl and jq,
# and ports 8000, 8931 and 18081 free.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${BIN_DIR:-${CARGO_TARGET_DIR:-$here/../../target}/release}
for tool in chatkit-rs mock-llm mcp-tasks; do
  [ -x "$bin/$tool" ] || {
    echo "demo.sh: no $bin/$tool; build it: cargo build --release -p chatkit-rs -p mock-llm -p mcp-tasks" >&2
    exit 1
  }
done
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "demo.sh: $tool is not installed" >&2; exit 1; }
done
secret=${SECRET:-demo-secret-demo-secret-demo-secret-42}
work=$(mktemp -d) && chmod 755 "$work"   # the embedded Postgres runs as postgres when we are root
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

# Starts a process in the background and waits for its `listening on` line; stops at once,
# with what it said, when it exits instead (a port in use, a bad option…).
start() { # name log command…
  local name=$1 log=$2
  shift 2
  "$@" > "$work/$name.out" 2> "$log" &
  local pid=$!
  for _ in $(seq 1 600); do
    grep -q listening "$work/$name.out" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "demo.sh: $name did not start:" >&2
  tail -20 "$log" >&2
  exit 1
}

start mock-llm "$work/mock.log" "$bin/mock-llm" --port 18081
start mcp-tasks "$work/mcp.log" "$bin/mcp-tasks" --port 8931 --jwt-secret "$secret"
export CHATKIT__AUTH__JWT_SECRET=$secret CHATKIT__MODEL__BASE_URL=http://127.0.0.1:18081/v1
export CHATKIT__TITLES__ENABLED=false CHATKIT__DATABASE__EMBEDDED_DIR=$work/pg
start chatkit-rs "$work/server.log" "$bin/chatkit-rs" --config "$here/chatkit.toml"
token=$("$bin/chatkit-rs" --config "$here/chatkit.toml" dev-token --sub alice)

post() { # op params → the answer, printed
  local body="{\"type\":\"$1\",\"params\":$2}"
  echo ">>> POST /chatkit $body" >&2
  curl -sN http://127.0.0.1:8000/chatkit -H "authorization: Bearer $token" -d "$body" > "$work/answer"
  cat "$work/answer" >&2
  cat "$work/answer"
}
text() { printf '{"content":[{"type":"input_text","text":%s}],"attachments":[],"inference_options":{}}' "$(jq -Rn --arg t "$1" '$t')"; }

added=$(post threads.create "{\"input\":$(text 'add task Water the plants')}")
thread=$(grep -o '"thr_[0-9a-f]*"' <<<"$added" | head -1 | tr -d '"')
task=$(grep -o 'task_[0-9a-f]*' <<<"$added" | head -1)

# 1. A widget turn: the model calls show_task, whose result carries the card in _meta.
shown=$(post threads.add_user_message "{\"thread_id\":\"$thread\",\"input\":$(text "call show_task {\"task_id\":\"$task\"}")}")
card=$(grep '"type":"widget"' <<<"$shown" | grep -o '"id":"msg_[0-9a-f]*"' | head -1 | cut -d'"' -f4)

# 2. The card's Complete button: the card is replaced.
post threads.custom_action "{\"thread_id\":\"$thread\",\"item_id\":\"$card\",\"action\":{\"type\":\"tasks.complete\",\"payload\":{\"task_id\":\"$task\"}}}" > /dev/null

# 3. The task list (a template) and its form: the model answers.
listed=$(post threads.add_user_message "{\"thread_id\":\"$thread\",\"input\":$(text 'list tasks')}")
list=$(grep '"type":"widget"' <<<"$listed" | grep -o '"id":"msg_[0-9a-f]*"' | head -1 | cut -d'"' -f4)
post threads.custom_action "{\"thread_id\":\"$thread\",\"item_id\":\"$list\",\"action\":{\"type\":\"tasks.add\",\"payload\":{\"title\":\"Buy soil\"}}}" > /dev/null
