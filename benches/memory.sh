#!/usr/bin/env bash
# memory.sh — what live threads and open streams cost chatkit-rs (release build, titles off,
# its own schema in a private PostgreSQL):
#   (i)  threads: N live idle threads, each with a 20-message history (10 turns), kept in memory
#        (idle timeout and max_live raised) → server RSS per thread = (RSS after − RSS before) / N
#   (ii) streams: N streams open at once against a slow mock (--delay-ms 100 --tokens 50, ≈5 s
#        per answer), each held to its end → errors, peak open streams, RSS, CPU
# Writes results/memory-latest.json and results/memory-latest.md.
#
# Usage: benches/memory.sh [--threads N] [--streams N] [--turns-per-thread K] [--concurrency C]
#          [--warm-threads W] [--ramp S] [--skip-threads] [--skip-streams] [--out DIR]
#          [--no-build] [--keep-tmp]
#   --threads N        live threads for (i) (default 2000)
#   --streams N        concurrent streams for (ii) (default 2000; the target is 10000: the script
#                      raises `ulimit -n` (per process) to streams + 1024 (2 × streams + 1024
#                      with --model-http2 off), capped by the hard limit)
#   --model-http2 on|off  on (default): chatkit-rs speaks h2c to the mock
#                      (`model.http2_prior_knowledge`), so all model streams share one
#                      connection and the server holds one socket per open stream; off: HTTP/1.1,
#                      a client and a model socket per stream
#   --turns-per-thread turns per thread in (i) (default 10 = 20 messages)
#   --concurrency C    parallel turns while filling threads in (i) (default 32)
#   --warm-threads W   threads filled before the "before" measurement, so allocator pools, the
#                      connection pools and caches are already grown (default 200)
#   --ramp S           spread the opening of the (ii) streams over S seconds (default 2)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

THREADS=2000 STREAMS=2000 TURNS=10 CONCURRENCY=32 WARM=200 RAMP=2 SKIP_THREADS=0 SKIP_STREAMS=0
NO_BUILD=0 MODEL_HTTP2=on
OUT="$BENCH_DIR/results"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --streams) STREAMS="$2"; shift 2 ;;
    --turns-per-thread) TURNS="$2"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --warm-threads) WARM="$2"; shift 2 ;;
    --ramp) RAMP="$2"; shift 2 ;;
    --skip-threads) SKIP_THREADS=1; shift ;;
    --skip-streams) SKIP_STREAMS=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --model-http2) MODEL_HTTP2="$2"; shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    --fast-pg) FAST_PG=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# Every process started below inherits this limit.
HARD_NOFILE="$(ulimit -Hn)"
case "$MODEL_HTTP2" in
  on) NEED_NOFILE=$((STREAMS + 1024)) ;;      # per process: one client socket per stream
  off) NEED_NOFILE=$((STREAMS * 2 + 1024)) ;; # a client and a model socket per stream
  *) die "--model-http2 wants on or off" ;;
esac
if [[ "$HARD_NOFILE" != unlimited && "$HARD_NOFILE" -lt "$NEED_NOFILE" ]]; then
  log "warning: hard open-file limit $HARD_NOFILE < $NEED_NOFILE wanted for $STREAMS streams; expect EMFILE errors"
  ulimit -n "$HARD_NOFILE"
else
  ulimit -n "$NEED_NOFILE"
fi
log "ulimit -n $(ulimit -n)"

bench_setup
start_pg
LIVE_ENV=(CHATKIT__ACTORS__IDLE_TIMEOUT_SECS=86400 CHATKIT__ACTORS__MAX_LIVE=$((THREADS + WARM + STREAMS + 1000)))
[[ "$MODEL_HTTP2" == on ]] && LIVE_ENV+=(CHATKIT__MODEL__HTTP2_PRIOR_KNOWLEDGE=true)

# ---- (i) live threads ------------------------------------------------------------------------
RSS0=0 RSS1=0 THREADS_SERVER_EXITED=false STREAMS_SERVER_EXITED=false
if [[ $SKIP_THREADS -eq 0 ]]; then
  start_mock 8 0
  start_chatkit mem_threads "${LIVE_ENV[@]}"
  fill() { # fill NAME THREADS
    "$BIN/chatkit-load" --url "$CK_URL/chatkit" --jwt-secret "$JWT_SECRET" --users "$CONCURRENCY" \
      --fill-threads "$2" --fill-turns "$TURNS" --concurrency "$CONCURRENCY" --timeout 60 \
      --server-pid "$CK_PID" --pid "db=$PG_POSTMASTER" --label "$1" --json "$RUNS/$1.json" >&2
  }
  log "---- (i) warm-up: $WARM threads × $TURNS turns"
  fill warm "$WARM"
  sleep 3
  RSS0="$(rss_kib "$CK_PID")"
  log "server RSS before: $RSS0 KiB"
  log "---- (i) $THREADS threads × $TURNS turns"
  fill threads "$THREADS"
  sleep 3
  if server_alive chatkit-rs "$CK_PID" "$BENCH_TMP/logs/chatkit-mem_threads.err"; then
    RSS1="$(rss_kib "$CK_PID")"
    log "server RSS after: $RSS1 KiB"
    stop_pid "$CK_PID" 20; forget_pid "$CK_PID"
  else
    THREADS_SERVER_EXITED=true
  fi
  stop_pid "$MOCK_PID"; forget_pid "$MOCK_PID"
fi

# ---- (ii) concurrent streams -----------------------------------------------------------------
RSS_IDLE=0
if [[ $SKIP_STREAMS -eq 0 ]]; then
  start_mock 50 100
  start_chatkit mem_streams "${LIVE_ENV[@]}" CHATKIT__LIMITS__MAX_OPEN_STREAMS=$((STREAMS + 1000))
  sleep 1
  RSS_IDLE="$(rss_kib "$CK_PID")"
  log "---- (ii) $STREAMS streams at once (ramp ${RAMP}s), mock --tokens 50 --delay-ms 100"
  "$BIN/chatkit-load" --url "$CK_URL/chatkit" --jwt-secret "$JWT_SECRET" --hold \
    --concurrency "$STREAMS" --ramp "$RAMP" --timeout 300 --max-secs 900 \
    --server-pid "$CK_PID" --pid "db=$PG_POSTMASTER" --pid "mock=$MOCK_PID" \
    --label streams --json "$RUNS/streams.json" >&2 || log "(ii): no stream completed"
  if server_alive chatkit-rs "$CK_PID" "$BENCH_TMP/logs/chatkit-mem_streams.err"; then
    stop_pid "$CK_PID" 20; forget_pid "$CK_PID"
  else
    STREAMS_SERVER_EXITED=true
  fi
fi

# ---- results ---------------------------------------------------------------------------------
for r in threads streams; do [[ -f "$RUNS/$r.json" ]] || echo null >"$RUNS/$r.json"; done
GIT_REV="$(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
jq -n --slurpfile t "$RUNS/threads.json" --slurpfile s "$RUNS/streams.json" \
  --arg when "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg rev "$GIT_REV" \
  --argjson rss0 "$RSS0" --argjson rss1 "$RSS1" --argjson idle "$RSS_IDLE" \
  --argjson n "$THREADS" --argjson turns "$TURNS" --argjson streams "$STREAMS" --argjson ramp "$RAMP" \
  --argjson nofile "$(ulimit -n)" --arg http2 "$MODEL_HTTP2" \
  --argjson t_exited "$THREADS_SERVER_EXITED" --argjson s_exited "$STREAMS_SERVER_EXITED" '
  ($t[0]) as $t | ($s[0]) as $s |
  {
    generated_at: $when, git_rev: $rev, open_file_limit: $nofile,
    model_transport: (if $http2 == "on" then "h2c (model.http2_prior_knowledge)" else "HTTP/1.1" end),
    threads: (if $t == null then null else {
      requested: $n, turns_per_thread: $turns, filled: $t.fill.threads_filled,
      server_exited_during_run: $t_exited,
      errors: $t.turns.errors, error_kinds: $t.errors,
      rss_before_kib: $rss0, rss_after_kib: $rss1,
      rss_per_thread_kib: (if $t.fill.threads_filled > 0 and ($t_exited | not) then (($rss1 - $rss0) / $t.fill.threads_filled * 10 | round / 10) else null end),
      fill_turns_per_sec: $t.turns.per_sec, fill_turn_ms: $t.turn_ms,
      server_cpu_ms_per_turn: $t.processes.server.cpu_ms_per_turn,
      run: $t } end),
    streams: (if $s == null then null else {
      requested: $streams, ramp_secs: $ramp, completed: $s.turns.completed, errors: $s.turns.errors,
      server_exited_during_run: $s_exited,
      error_kinds: $s.errors, open_streams_peak: $s.open_streams_peak,
      rss_idle_kib: $idle, rss_peak_mib: $s.processes.server.rss_peak_mib,
      rss_per_stream_kib: (if $s.open_streams_peak > 0 then (($s.processes.server.rss_peak_mib * 1024 - $idle) / $s.open_streams_peak * 10 | round / 10) else null end),
      server_cpu_secs: $s.processes.server.cpu_secs, server_cpu_cores: $s.processes.server.cpu_cores,
      db_cpu_secs: $s.processes.db.cpu_secs, mock_cpu_secs: $s.processes.mock.cpu_secs,
      ttft_ms: $s.ttft_ms, turn_ms: $s.turn_ms, window_secs: $s.window_secs,
      run: $s } end)
  }' >"$OUT/memory-latest.json"

jq -r '
  def f($x): if $x == null then "–" else ($x | tostring) end;
  "# chatkit-rs memory benchmark",
  "",
  "\(.generated_at), rev \(.git_rev); open-file limit \(.open_file_limit); chatkit-rs → model: \(.model_transport).",
  "",
  (if .threads == null then "(i) threads: skipped" else
    (.threads as $t |
    "## (i) live idle threads",
    "",
    "| threads filled | turns each | errors | RSS before | RSS after | **RSS per thread** | fill rate | server CPU ms/turn |",
    "|---|---|---|---|---|---|---|---|",
    "| \($t.filled) of \($t.requested) | \($t.turns_per_thread) | \($t.errors) | \($t.rss_before_kib / 1024 * 10 | round / 10) MiB | \($t.rss_after_kib / 1024 * 10 | round / 10) MiB | **\(f($t.rss_per_thread_kib)) KiB** | \($t.fill_turns_per_sec) turns/s | \(f($t.server_cpu_ms_per_turn)) |",
    (if $t.server_exited_during_run then "\n**The server exited during the run** (see the log above); no per-thread figure." else empty end))
  end),
  "",
  (if .streams == null then "(ii) streams: skipped" else
    (.streams as $s |
    "## (ii) concurrent open streams (mock: 50 tokens, 100 ms apart)",
    "",
    "| streams | completed | errors | peak open | RSS idle | RSS peak | RSS per open stream | server CPU | db CPU | TTFT p50 / p99 / max ms | turn p50 / p99 / max ms |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
    "| \($s.requested) (ramp \($s.ramp_secs) s) | \($s.completed) | \($s.errors) | \($s.open_streams_peak) | \($s.rss_idle_kib / 1024 * 10 | round / 10) MiB | \($s.rss_peak_mib) MiB | \(f($s.rss_per_stream_kib)) KiB | \($s.server_cpu_secs) s (\($s.server_cpu_cores) cores) | \(f($s.db_cpu_secs)) s | \($s.ttft_ms.p50) / \($s.ttft_ms.p99) / \($s.ttft_ms.max) | \($s.turn_ms.p50) / \($s.turn_ms.p99) / \($s.turn_ms.max) |",
    "",
    (if $s.server_exited_during_run then "**The server exited during the run.**" else empty end),
    (if ($s.error_kinds | length) > 0 then "Errors: " + ([$s.error_kinds | to_entries[] | "\(.key) × \(.value.count)"] | join(", ")) else "No errors." end))
  end)
' "$OUT/memory-latest.json" >"$OUT/memory-latest.md"

echo
cat "$OUT/memory-latest.md"
echo
log "wrote $OUT/memory-latest.json and $OUT/memory-latest.md"
