#!/usr/bin/env bash
# soak.sh — a long run with a real mix, looking for growth and drift: chatkit-rs under an
# open-loop load (Poisson arrivals) of new threads, follow-ups, tool turns through a real MCP
# server (tests/mcp-tasks), cancellations (the client leaves after the first delta) and idle
# thread actors retiring (idle timeout 30 s, so follow-ups keep reloading threads). The load
# runs in one-minute segments, each with its own p50/p99; the server's RSS and open file
# descriptors are sampled every 10 s. Postgres durable unless --fast-pg.
#
# Usage: benches/soak.sh [--minutes 30] [--rate 1000] [--users 1000] [--tool-ratio 0.1]
#          [--cancel-ratio 0.05] [--new-thread-ratio 0.2] [--fast-pg] [--no-build] [--out DIR]
# Writes results/soak-latest.md (a row per minute, the samples) and results/soak-latest.svg.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MINUTES=30 RATE=1000 USERS=1000 TOOL_RATIO=0.1 CANCEL_RATIO=0.05 NEW_RATIO=0.2 NO_BUILD=0
OUT="$BENCH_DIR/results"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --minutes) MINUTES="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --users) USERS="$2"; shift 2 ;;
    --tool-ratio) TOOL_RATIO="$2"; shift 2 ;;
    --cancel-ratio) CANCEL_RATIO="$2"; shift 2 ;;
    --new-thread-ratio) NEW_RATIO="$2"; shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --fast-pg) FAST_PG=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

trap bench_cleanup EXIT
trap 'exit 130' INT TERM
[[ $NO_BUILD -eq 1 ]] || (cd "$REPO_DIR" && cargo build --release -q -p mcp-tasks) || die "cannot build mcp-tasks"
bench_setup
start_mock 8 0 1
start_pg
"$BIN/mcp-tasks" --port 0 --jwt-secret "$JWT_SECRET" >"$BENCH_TMP/logs/mcp.out" 2>"$BENCH_TMP/logs/mcp.err" &
MCP_PID=$!
PIDS+=("$MCP_PID")
MCP_URL="$(wait_listening "$BENCH_TMP/logs/mcp.out" "$MCP_PID")/mcp"
cat >"$BENCH_TMP/soak.toml" <<TOML
[[mcp.servers]]
name = "tasks"
url = "$MCP_URL"
forward_user_token = true
TOML
CHATKIT_ARGS="--config $BENCH_TMP/soak.toml" start_chatkit soak \
  CHATKIT__ACTORS__IDLE_TIMEOUT_SECS=30 CHATKIT__LIMITS__MAX_STREAMS_PER_USER=0 \
  CHATKIT__LIMITS__MAX_OPEN_STREAMS=100000

SAMPLES="$OUT/soak-samples.tsv"
echo -e "secs\trss_kib\tfds\tlive_actors" >"$SAMPLES"
METRICS_URL="$(sed -n 's/^metrics on //p' "$BENCH_TMP/logs/chatkit-soak.out" | head -1)"
live_actors() { # the server's live thread actors (its metrics), or ? when unreadable
  { curl -s --max-time 2 "$METRICS_URL" 2>/dev/null || true; } |
    awk '/^chatkit_live_thread_actors / {n = $2} END {print (n == "" ? "?" : n)}'
}
T0=$(date +%s)
( while kill -0 "$CK_PID" 2>/dev/null; do
    printf '%s\t%s\t%s\t%s\n' "$(($(date +%s) - T0))" \
      "$(awk '/VmRSS/ {print $2}' "/proc/$CK_PID/status" 2>/dev/null || echo 0)" \
      "$(ls "/proc/$CK_PID/fd" 2>/dev/null | wc -l)" "$(live_actors)" >>"$SAMPLES"
    sleep 10
  done ) &
SAMPLER=$!
PIDS+=("$SAMPLER")

for ((m = 1; m <= MINUTES; m++)); do
  "$BIN/chatkit-load" --rate "$RATE" --poisson --users "$USERS" --duration 60 --warmup 0 \
    --new-thread-ratio "$NEW_RATIO" --tool-ratio "$TOOL_RATIO" --cancel-ratio "$CANCEL_RATIO" \
    --timeout 60 --label "minute $m" --json "$RUNS/minute-$m.json" --quiet \
    --server-pid "$CK_PID" --url "$CK_URL/chatkit" --jwt-secret "$JWT_SECRET" >&2 \
    || log "minute $m: chatkit-load reported no completed turn"
  log "minute $m of $MINUTES done"
done
server_alive soak "$CK_PID" "$BENCH_TMP/logs/chatkit-soak.err" || die "chatkit-rs exited during the soak"

{
  echo "# Soak ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(cd "$REPO_DIR" && git rev-parse --short HEAD))"
  echo
  echo "$MINUTES minutes at $RATE turns/s offered (Poisson, $USERS users): new threads $NEW_RATIO, tool turns $TOOL_RATIO (tests/mcp-tasks over MCP), cancellations $CANCEL_RATIO (client leaves after the first delta), idle actors retire after 30 s; Postgres $(pg_durability). Graph: soak-latest.svg."
  echo
  echo "| minute | completed turns/s | cancelled | errors | first delta p50 / p99 ms | whole turn p50 / p99 ms | RSS at end MiB | open fds at end | live thread actors at end | CPU stolen by the host % |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for ((m = 1; m <= MINUTES; m++)); do
    f="$RUNS/minute-$m.json"
    [[ -s "$f" ]] || { echo "| $m | – | – | – | – | – | – | – | – |"; continue; }
    secs=$((m * 60))
    sample="$(awk -F'\t' -v s="$secs" 'NR > 1 && $1 <= s + 5 {last = $0} END {print last}' "$SAMPLES")"
    rss="$(echo "$sample" | awk -F'\t' '{printf "%.1f", $2 / 1024}')"
    fds="$(echo "$sample" | awk -F'\t' '{print $3}')"
    live="$(echo "$sample" | awk -F'\t' '{print $4}')"
    jq -r --arg m "$m" --arg rss "$rss" --arg fds "$fds" --arg live "$live" '
      "| \($m) | \(.turns.per_sec) | \(.turns.cancelled // 0) | \(.turns.errors) | \(.ttft_ms.p50) / \(.ttft_ms.p99) | \(.turn_ms.p50) / \(.turn_ms.p99) | \($rss) | \($fds) | \($live) | \(.machine_cpu_steal_pct // "?") |"' "$f"
  done
  echo
  echo "Errors by kind over the whole soak (chatkit-load's kinds: \`http:<status>:<code>\`, \`inband:<code>\`, \`transport:…\`), with one sample each:"
  echo
  jq -rs '[.[] | .errors | to_entries[]] | group_by(.key)
    | map({kind: .[0].key, count: (map(.value.count) | add), sample: .[0].value.sample})
    | if length == 0 then "- none" else .[] | "- `\(.kind)`: \(.count) (e.g. \(.sample | tostring | .[0:200]))" end' \
    "$RUNS"/minute-*.json
} | tee "$OUT/soak-latest.md"
python3 "$BENCH_DIR/soak_svg.py" "$SAMPLES" "$RUNS" "$MINUTES" >"$OUT/soak-latest.svg"
log "graph: $OUT/soak-latest.svg"
