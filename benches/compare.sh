#!/usr/bin/env bash
# compare.sh — the side-by-side benchmark, in one run, against one fast mock model and one
# PostgreSQL configuration, with the same load (chatkit-load, same concurrency, duration and
# warm-up for every target):
#   (a) mock     the mock model alone (Chat Completions streams, --raw-openai)
#   (b) relay    chatkit-relay: bare actix-web relaying the model as ChatKit SSE (the ceiling)
#   (c) chatkit  chatkit-rs, release build, titles off, its own schema (with --mcp: also with
#                the reference's MCP task server, the same app as the peer; with --responses on:
#                also speaking the Responses API to the same mock, (c+resp))
#   (d) peer     the Python reference (../shared/peer/run_peer.sh --durable --llm-url <our mock>)
# Prints every figure and the ratios (c)/(d) and (c)/(b), and the Postgres settings in force on
# both servers' clusters (SHOW; the run fails if they are not the ones asked for); writes
# results/latest.json and results/latest.md (with --new-threads-only: new-threads-latest.*).
# See benches/README.md for how to read them.
#
# Usage: benches/compare.sh [--concurrency N] [--duration S] [--warmup S] [--skip-peer]
#          [--threads N] [--new-thread-ratio R] [--new-threads-only] [--users N] [--tool-ratio R]
#          [--tokens N] [--mcp auto|on|off|both] [--mock-workers N] [--server-workers N]
#          [--peer-dir DIR] [--out DIR] [--no-build] [--keep-tmp] [--top] [--fast-pg]
#   --fast-pg      Postgres with fsync, synchronous_commit and full_page_writes off (default: on,
#                  as production and the embedded Postgres; the reference gets the same)
#   --new-threads-only  every turn starts a new thread (threads.create and its streamed reply),
#                  as a ChatKit app starts most turns: --new-thread-ratio 1 --users 1000
#   --users N      distinct users' tokens (default 0: one per virtual user)
#   --mcp          off: chatkit-rs without tools; on: chatkit-rs with the reference's MCP task
#                  server (the same app as the peer); both: two runs, (c) and (c+mcp);
#                  auto (default) = both when the peer runs, else off
#   --responses    on (default): one more chatkit-rs run with model.api = responses; off: none
#   --mock-workers mock-llm worker threads (default 1, so the mock takes little of 2 cores)
#   --server-workers HTTP workers of chatkit-rs and the relay (default 0 = one per core)
#   --top          also record the CPU of each thread of the server over the measured window
#                  into results/threads-<target>.txt
# Environment: CARGO_TARGET_DIR (default /var/tmp/chatkit-target), PEER_VENV, KEEP_TMP=1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONCURRENCY=64 DURATION=20 WARMUP=5 SKIP_PEER=0 THREADS=1 NEW_RATIO=0.2 TOOL_RATIO=0 USERS=0
NEW_ONLY=0 TOKENS=8 MCP=auto MOCK_WORKERS=1 SERVER_WORKERS=0 NO_BUILD=0 TOP=0 RESPONSES=on
PEER_DIR="${PEER_DIR:-$(cd "$REPO_DIR/.." && pwd)/shared/peer}"
OUT="$BENCH_DIR/results"
SETTLE=11 # seconds: Postgres 15 backends publish their transaction counts within 10 s of idling

while [[ $# -gt 0 ]]; do
  case "$1" in
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --responses) RESPONSES="$2"; shift 2 ;;
    --skip-peer) SKIP_PEER=1; shift ;;
    --threads) THREADS="$2"; shift 2 ;;
    --new-thread-ratio) NEW_RATIO="$2"; shift 2 ;;
    --new-threads-only) NEW_ONLY=1; shift ;;
    --users) USERS="$2"; shift 2 ;;
    --tool-ratio) TOOL_RATIO="$2"; shift 2 ;;
    --tokens) TOKENS="$2"; shift 2 ;;
    --mcp) MCP="$2"; shift 2 ;;
    --mock-workers) MOCK_WORKERS="$2"; shift 2 ;;
    --server-workers) SERVER_WORKERS="$2"; shift 2 ;;
    --peer-dir) PEER_DIR="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    --top) TOP=1; shift ;;
    --fast-pg) FAST_PG=1; shift ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
if [[ $NEW_ONLY -eq 1 ]]; then
  NEW_RATIO=1
  [[ "$USERS" == 0 ]] && USERS=1000
fi
RESULT="$([[ $NEW_ONLY -eq 1 ]] && echo new-threads-latest || echo latest)"
[[ "$MCP" == auto ]] && { [[ $SKIP_PEER -eq 0 ]] && MCP=both || MCP=off; }
case "$MCP" in on|off|both) ;; *) die "--mcp wants auto, on, off or both" ;; esac
[[ "$MCP" != off && $SKIP_PEER -eq 1 ]] && die "--mcp $MCP needs the peer (its MCP task server)"

trap bench_cleanup EXIT
trap 'exit 130' INT TERM

bench_setup
SERVER_EXITS=()
LOAD_COMMON=(--concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP"
  --threads "$THREADS" --new-thread-ratio "$NEW_RATIO" --users "$USERS" --tool-ratio "$TOOL_RATIO"
  --timeout 60)

run_load() { # run_load NAME SERVER_PID ARGS...: chatkit-load, table to stderr, JSON to $RUNS/NAME.json
  local name="$1" server="$2" top_pid=""; shift 2
  log "---- $name: chatkit-load ${LOAD_COMMON[*]} $*"
  if [[ $TOP -eq 1 ]]; then
    thread_cpu "$server" "$WARMUP" "$DURATION" "$OUT/threads-$name.txt" &
    top_pid=$!
  fi
  "$BIN/chatkit-load" "${LOAD_COMMON[@]}" --label "$name" --json "$RUNS/$name.json" --server-pid "$server" "$@" >&2 \
    || log "$name: chatkit-load reported no completed turn"
  [[ -z "$top_pid" ]] || wait "$top_pid" 2>/dev/null || true
  [[ -s "$RUNS/$name.json" ]] || die "$name: no results"
}

start_mock "$TOKENS" 0 "$MOCK_WORKERS"
start_pg
pg_check_durability chatkit-rs "$PGPORT"

# ---- the reference first (if wanted): its MCP server also serves chatkit-rs with --mcp on ----
PEER_PID="" PEER_URL="" PEER_PY="" PEER_MCP="" PEER_PM="" PEER_PGPORT="" MCP_URL=""
if [[ $SKIP_PEER -eq 0 ]]; then
  [[ -x "$PEER_DIR/run_peer.sh" ]] || die "no $PEER_DIR/run_peer.sh (use --peer-dir or --skip-peer)"
  # run_peer.sh always starts its own throwaway Postgres (it takes no database URL), with
  # durability off unless --durable (options given at start override ALTER SYSTEM, so it has
  # to be asked for there); its commits are counted there.
  PEER_DURABLE=()
  [[ "$FAST_PG" == 1 ]] || PEER_DURABLE=(--durable)
  "$PEER_DIR/run_peer.sh" "${PEER_DURABLE[@]}" --llm-url "$MOCK_URL/v1" --jwt-secret "$JWT_SECRET" \
    >"$BENCH_TMP/peer.env" 2>"$BENCH_TMP/logs/run_peer.err" &
  PEER_PID=$!
  PIDS+=("$PEER_PID")
  for ((i = 0; i < 1200; i++)); do
    [[ -s "$BENCH_TMP/peer.env" ]] && break
    kill -0 "$PEER_PID" 2>/dev/null || { cat "$BENCH_TMP/logs/run_peer.err" >&2; die "run_peer.sh exited"; }
    sleep 0.1
  done
  [[ -s "$BENCH_TMP/peer.env" ]] || die "run_peer.sh did not get ready in 120 s"
  for kv in $(head -1 "$BENCH_TMP/peer.env"); do
    case "$kv" in
      PEER_URL=*) PEER_URL="${kv#*=}" ;;
      MCP_URL=*) MCP_URL="${kv#*=}" ;;
      PGPORT=*) PEER_PGPORT="${kv#*=}" ;;
      LOG_DIR=*) PEER_LOG_DIR="${kv#*=}" ;;
    esac
  done
  for child in $(pgrep -P "$PEER_PID" || true); do
    cmd="$(tr '\0' ' ' <"/proc/$child/cmdline" 2>/dev/null || true)"
    case "$cmd" in
      *peer_server.py*) PEER_PY="$child" ;;
      *mcp_tasks.py*) PEER_MCP="$child" ;;
    esac
  done
  PEER_PM="$(head -1 "${PEER_LOG_DIR%/logs}/pgdata/postmaster.pid" 2>/dev/null || true)"
  [[ -n "$PEER_PY" ]] || die "cannot find peer_server.py under run_peer.sh (pid $PEER_PID)"
  pg_check_durability reference "$PEER_PGPORT"
  log "peer at $PEER_URL (peer_server.py $PEER_PY, mcp_tasks.py $PEER_MCP, postmaster ${PEER_PM:-?}, pg port $PEER_PGPORT)"
fi

# ---- (a) the mock alone ----------------------------------------------------------------------
run_load mock "$MOCK_PID" --raw-openai --url "$MOCK_URL/v1/chat/completions"

# ---- (b) the relay ---------------------------------------------------------------------------
"$BIN/chatkit-relay" --port 0 --model-url "$MOCK_URL/v1" --workers "$SERVER_WORKERS" \
  >"$BENCH_TMP/logs/relay.out" 2>"$BENCH_TMP/logs/relay.err" &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
RELAY_URL="$(wait_listening "$BENCH_TMP/logs/relay.out" "$RELAY_PID")"
run_load relay "$RELAY_PID" --url "$RELAY_URL/chatkit" --jwt-secret "$JWT_SECRET" --pid "mock=$MOCK_PID"
server_alive relay "$RELAY_PID" "$BENCH_TMP/logs/relay.err" || SERVER_EXITS+=(relay)
stop_pid "$RELAY_PID"; forget_pid "$RELAY_PID"

# ---- (c) chatkit-rs --------------------------------------------------------------------------
# run_chatkit NAME WITH_MCP: a fresh chatkit-rs (schema bench_NAME) measured like the others;
# sets XACT_<NAME>="before after" (commits in our cluster over the whole run, settled).
run_chatkit() {
  local name="$1" with_mcp="$2" api="${3:-chat_completions}" x0 x1
  local watch=(--pid "db=$PG_POSTMASTER" --pid "mock=$MOCK_PID")
  CHATKIT_ARGS=""
  if [[ $with_mcp -eq 1 ]]; then
    cat >"$BENCH_TMP/chatkit-mcp.toml" <<EOF
[[mcp.servers]]
name = "tasks"
url = "$MCP_URL"
timeout_secs = 30
forward_user_token = true
EOF
    CHATKIT_ARGS="--config $BENCH_TMP/chatkit-mcp.toml"
    [[ -n "$PEER_MCP" ]] && watch+=(--pid "mcp=$PEER_MCP")
  fi
  start_chatkit "$name" CHATKIT__SERVER__WORKERS="$SERVER_WORKERS" CHATKIT__MODEL__API="$api"
  x0="$(xact_commit "$PGPORT")"
  run_load "$name" "$CK_PID" --url "$CK_URL/chatkit" --jwt-secret "$JWT_SECRET" "${watch[@]}"
  sleep "$SETTLE"
  x1="$(xact_commit "$PGPORT")"
  printf -v "XACT_$name" '%s %s' "$x0" "$x1"
  if server_alive "chatkit-rs ($name)" "$CK_PID" "$BENCH_TMP/logs/chatkit-$name.err"; then
    stop_pid "$CK_PID" 20; forget_pid "$CK_PID"
  else
    SERVER_EXITS+=("$name")
  fi
}
XACT_chatkit="" XACT_chatkit_mcp="" XACT_chatkit_responses=""
if [[ "$MCP" == off || "$MCP" == both ]]; then run_chatkit chatkit 0; fi
if [[ "$MCP" == on || "$MCP" == both ]]; then run_chatkit chatkit_mcp 1; fi
if [[ "$RESPONSES" == on ]]; then run_chatkit chatkit_responses 0 responses; fi

# ---- (d) the Python reference ----------------------------------------------------------------
PEER_X0="" PEER_X1=""
if [[ $SKIP_PEER -eq 0 ]]; then
  PEER_WATCH=(--pid "mock=$MOCK_PID")
  [[ -n "$PEER_PM" ]] && PEER_WATCH+=(--pid "db=$PEER_PM")
  [[ -n "$PEER_MCP" ]] && PEER_WATCH+=(--pid "mcp=$PEER_MCP")
  PEER_X0="$(xact_commit "$PEER_PGPORT")"
  run_load peer "$PEER_PY" --url "$PEER_URL" --jwt-secret "$JWT_SECRET" "${PEER_WATCH[@]}"
  sleep "$SETTLE"
  PEER_X1="$(xact_commit "$PEER_PGPORT")"
  server_alive run_peer.sh "$PEER_PID" "$BENCH_TMP/logs/run_peer.err" || SERVER_EXITS+=(peer)
fi

# ---- results ---------------------------------------------------------------------------------
# The settings in force at the end, asserted again: the figures hold only if both ran so.
pg_check_durability chatkit-rs "$PGPORT"
PG_IN_FORCE="$(pg_settings "$PGPORT")" PEER_PG_IN_FORCE=""
if [[ $SKIP_PEER -eq 0 ]]; then
  pg_check_durability reference "$PEER_PGPORT"
  PEER_PG_IN_FORCE="$(pg_settings "$PEER_PGPORT")"
fi
for r in peer chatkit chatkit_mcp chatkit_responses; do [[ -f "$RUNS/$r.json" ]] || echo null >"$RUNS/$r.json"; done
GIT_REV="$(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
GIT_DIRTY="$(cd "$REPO_DIR" && git status --porcelain 2>/dev/null | grep -qv '^??' && echo true || echo false)"
jq -n \
  --slurpfile a "$RUNS/mock.json" --slurpfile b "$RUNS/relay.json" \
  --slurpfile c "$RUNS/chatkit.json" --slurpfile cm "$RUNS/chatkit_mcp.json" --slurpfile d "$RUNS/peer.json" \
  --slurpfile cr "$RUNS/chatkit_responses.json" --arg crx "$XACT_chatkit_responses" \
  --arg when "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg rev "$GIT_REV" --argjson dirty "$GIT_DIRTY" \
  --arg cpus "$(nproc)" --arg cpu_model "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
  --arg pg "$("$PG_BIN/postgres" --version)" --arg pgset "$(pg_durability)" \
  --argjson conc "$CONCURRENCY" --argjson dur "$DURATION" --argjson warm "$WARMUP" \
  --argjson threads "$THREADS" --argjson ntr "$NEW_RATIO" --argjson tr "$TOOL_RATIO" \
  --argjson users "$USERS" --argjson newonly "$NEW_ONLY" \
  --arg pgck "$PG_IN_FORCE" --arg pgpeer "$PEER_PG_IN_FORCE" \
  --argjson tokens "$TOKENS" --arg mcp "$MCP" --argjson mw "$MOCK_WORKERS" --argjson sw "$SERVER_WORKERS" \
  --arg exits "${SERVER_EXITS[*]:-}" \
  --arg ckx "$XACT_chatkit" --arg ckmx "$XACT_chatkit_mcp" --arg px "$PEER_X0 $PEER_X1" '
  # "before after" commit counts over a whole run (warm-up included) → per completed turn.
  def commits($x; $run):
    ($x | split(" ") | map(select(. != "") | tonumber)) as $v
    | if ($v | length) != 2 or $run == null then null
      else ($v[1] - $v[0]) as $n
      | {before: $v[0], after: $v[1], commits: $n, turns: $run.turns.completed_all,
         per_turn: (if $run.turns.completed_all > 0 then ($n / $run.turns.completed_all * 100 | round / 100) else null end)}
      end;
  def ratio($x; $y): if ($x == null or $y == null or $y == 0) then null else ($x / $y * 100 | round / 100) end;
  # CPU of everything that serves a turn except the mock model: server + db + mcp.
  def stack($r): if $r == null then null else
    ([$r.processes | to_entries[] | select(.key != "mock") | .value.cpu_ms_per_turn] | add // 0) * 1000 | round / 1000 end;
  def with_stack($r): if $r == null then null else $r + {stack_cpu_ms_per_turn: stack($r)} end;
  (with_stack($a[0])) as $mock | (with_stack($b[0])) as $relay | (with_stack($c[0])) as $ck
  | (with_stack($cm[0])) as $ckm | (with_stack($d[0])) as $peer | (with_stack($cr[0])) as $ckr
  # Like for like: against the peer, chatkit-rs with the same MCP tools if measured; against
  # the relay (no tools), chatkit-rs without.
  | ($ckm // $ck) as $c_vs_peer | ($ck // $ckm) as $c_vs_relay
  | {
    generated_at: $when, git_rev: $rev, git_dirty: $dirty,
    servers_exited_during_run: ($exits | split(" ") | map(select(. != ""))),
    machine: {cpus: ($cpus | tonumber), cpu_model: $cpu_model, postgres: $pg},
    settings: {concurrency: $conc, duration_secs: $dur, warmup_secs: $warm, generator_threads: $threads,
      new_thread_ratio: $ntr, new_threads_only: ($newonly == 1), users: $users,
      tool_ratio: $tr, mock_tokens: $tokens, mock_delay_ms: 0,
      mock_workers: $mw, server_workers: $sw, chatkit_mcp: $mcp,
      postgres: "\($pgset), 127.0.0.1 TCP (both servers)",
      peer_database: "run_peer.sh starts its own cluster with the same settings (--durable unless --fast-pg)",
      postgres_in_force: {chatkit_rs: $pgck, peer: (if $pgpeer == "" then null else $pgpeer end)}},
    runs: {mock: $mock, relay: $relay, chatkit_rs: $ck, chatkit_rs_mcp: $ckm, chatkit_rs_responses: $ckr, peer: $peer},
    commits: {chatkit_rs: commits($ckx; $ck), chatkit_rs_mcp: commits($ckmx; $ckm), chatkit_rs_responses: commits($crx; $ckr), peer: commits($px; $peer)},
    ratios: {
      chatkit_vs_peer_uses: (if $ckm != null then "chatkit_rs_mcp" else "chatkit_rs" end),
      chatkit_vs_relay_uses: (if $ck != null then "chatkit_rs" else "chatkit_rs_mcp" end),
      chatkit_over_peer_turns_per_sec: ratio($c_vs_peer.turns.per_sec; $peer.turns.per_sec),
      chatkit_over_relay_turns_per_sec: ratio($c_vs_relay.turns.per_sec; $relay.turns.per_sec),
      peer_over_chatkit_stack_cpu_ms_per_turn: ratio($peer.stack_cpu_ms_per_turn; $c_vs_peer.stack_cpu_ms_per_turn),
      chatkit_over_relay_server_cpu_ms_per_turn: ratio($c_vs_relay.processes.server.cpu_ms_per_turn; $relay.processes.server.cpu_ms_per_turn),
      peer_over_chatkit_ttft_p50: ratio($peer.ttft_ms.p50; $c_vs_peer.ttft_ms.p50),
      peer_over_chatkit_turn_p99: ratio($peer.turn_ms.p99; $c_vs_peer.turn_ms.p99)
    }
  }' >"$OUT/$RESULT.json"

jq -r '
  def f($x): if $x == null then "–" else ($x | tostring) end;
  def row($name; $r; $c):
    if $r == null then empty
    else "| \($name) | \(f($r.turns.per_sec)) | \(f($r.ttft_ms.p50)) / \(f($r.ttft_ms.p90)) / \(f($r.ttft_ms.p99)) / \(f($r.ttft_ms.max)) | \(f($r.turn_ms.p50)) / \(f($r.turn_ms.p90)) / \(f($r.turn_ms.p99)) / \(f($r.turn_ms.max)) | \($r.turns.errors) | \(f($r.processes.server.cpu_cores)) | \(f($r.processes.server.cpu_ms_per_turn)) | \(f($r.processes.db.cpu_ms_per_turn)) | \(f($r.processes.mcp.cpu_ms_per_turn)) | \(f($r.stack_cpu_ms_per_turn)) | \(f($r.processes.server.rss_peak_mib)) | \(if $c == null then "–" else f($c.per_turn) end) | \(f($r.other_cpu_cores)) |"
    end;
  "# chatkit-rs side-by-side benchmark",
  "",
  "\(.generated_at), rev \(.git_rev)\(if .git_dirty then " (dirty work tree)" else "" end); \(.machine.cpus) × \(.machine.cpu_model); \(.machine.postgres).",
  "Closed loop, concurrency \(.settings.concurrency), \(.settings.duration_secs) s measured after \(.settings.warmup_secs) s warm-up, \(if .settings.new_threads_only then "every turn a new thread (threads.create)" else "new-thread ratio \(.settings.new_thread_ratio)" end), \(if .settings.users > 0 then "\(.settings.users) users" else "one user per virtual user" end), tool ratio \(.settings.tool_ratio); mock-llm --tokens \(.settings.mock_tokens) --delay-ms 0 (\(.settings.mock_workers) worker); Postgres \(.settings.postgres).",
  "Postgres settings in force (SHOW, asserted): chatkit-rs \(.settings.postgres_in_force.chatkit_rs); reference \(.settings.postgres_in_force.peer // "not run").",
  "",
  "| target | turns/s | TTFT ms p50 / p90 / p99 / max | turn ms p50 / p90 / p99 / max | errors | server cores | server CPU ms/turn | db CPU ms/turn | MCP CPU ms/turn | stack CPU ms/turn | server peak RSS MiB | commits/turn | other load (cores) |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  row("(a) mock alone"; .runs.mock; null),
  row("(b) relay"; .runs.relay; null),
  row("(c) chatkit-rs"; .runs.chatkit_rs; .commits.chatkit_rs),
  row("(c+mcp) chatkit-rs + MCP tools"; .runs.chatkit_rs_mcp; .commits.chatkit_rs_mcp),
  row("(c+resp) chatkit-rs, Responses API"; .runs.chatkit_rs_responses; .commits.chatkit_rs_responses),
  row("(d) Python reference"; .runs.peer; .commits.peer),
  "",
  (if (.servers_exited_during_run | length) > 0 then "**Exited during the run (figures invalid): \(.servers_exited_during_run | join(", "))**\n" else empty end),
  "Ratios: (c)/(d) turns/s = **\(f(.ratios.chatkit_over_peer_turns_per_sec))** (\(.ratios.chatkit_vs_peer_uses)); (c)/(b) turns/s = **\(f(.ratios.chatkit_over_relay_turns_per_sec))** (\(.ratios.chatkit_vs_relay_uses)); stack CPU per turn (d)/(c) = \(f(.ratios.peer_over_chatkit_stack_cpu_ms_per_turn)); server CPU per turn (c)/(b) = \(f(.ratios.chatkit_over_relay_server_cpu_ms_per_turn)); TTFT p50 (d)/(c) = \(f(.ratios.peer_over_chatkit_ttft_p50)); turn p99 (d)/(c) = \(f(.ratios.peer_over_chatkit_turn_p99)).",
  "",
  "Server = the process under test ((a): the mock itself; (d): peer_server.py). Stack = server + db + MCP (everything but the mock). MCP = the reference'"'"'s mcp_tasks.py: the reference opens an MCP session on every turn; chatkit-rs (c+mcp) one per live thread. The reference always runs its own Postgres cluster (same settings as ours). Commits/turn = pg_stat_database.xact_commit over the whole run (warm-up included) / turns completed. Other load = CPU used by unrelated processes during the window (noise)."
' "$OUT/$RESULT.json" >"$OUT/$RESULT.md"

echo
cat "$OUT/$RESULT.md"
echo
log "wrote $OUT/$RESULT.json and $OUT/$RESULT.md"
