#!/usr/bin/env bash
# A widget turn, a button that replaces the card, and a form that makes the model answer,
# against the real server with the bundled mock model and test MCP server. Prints each
# request and what came back. Needs the workspace built (`cargo build --workspace`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${CARGO_TARGET_DIR:-$here/../../target}/debug
secret=${SECRET:-demo-secret-demo-secret-demo-secret-42}
work=$(mktemp -d) && chmod 755 "$work"   # the embedded Postgres runs as postgres when we are root
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

"$bin/mock-llm" --port 18081 > "$work/mock.out" &
"$bin/mcp-tasks" --port 8931 --jwt-secret "$secret" > "$work/mcp.out" &
export CHATKIT__AUTH__JWT_SECRET=$secret CHATKIT__MODEL__BASE_URL=http://127.0.0.1:18081/v1
export CHATKIT__TITLES__ENABLED=false CHATKIT__DATABASE__EMBEDDED_DIR=$work/pg
"$bin/chatkit-rs" --config "$here/chatkit.toml" > "$work/server.out" 2> "$work/server.log" &
for _ in $(seq 1 300); do grep -q listening "$work/server.out" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$work/server.out" || { echo "the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
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
