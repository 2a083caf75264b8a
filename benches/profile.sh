#!/usr/bin/env bash
# profile.sh — CPU profile of chatkit-rs and of its Postgres under the compare.sh load (closed
# loop, fast mock), with `perf record` (cpu-clock sampling: this machine has no hardware
# counters). Writes results/profile-server.txt and results/profile-db.txt (flat `perf report`,
# top symbols by self time) and, with --callers, results/profile-server-callers.txt.
#
# Usage: benches/profile.sh [--concurrency N] [--duration S] [--warmup S] [--no-build] [--callers]
#          [--server-env VAR=VALUE]... [--mcp] [--tag NAME] [--rate R]
#   --rate  open loop at R turns/s (Poisson, 1,000 users, as overhead.sh) instead of the closed
#           loop at --concurrency
#   --mcp   chatkit-rs with the test MCP server (tests/mcp-tasks) attached: its tools are
#           offered on every turn (none called), as compare.sh's (c+mcp)
#   --tag   write results/profile-server-NAME.txt (and -db-, -callers-) instead
#   --new-thread-ratio R  the share of turns that start a thread (default 0.2, as compare.sh;
#           1 = every turn a threads.create, 1,000 users, as compare.sh --new-threads-only)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NEW_RATIO="" RATE="" CONCURRENCY=64 DURATION=10 WARMUP=3 NO_BUILD=0 CALLERS=0 SERVER_ENV=() MCP=0 TAG=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    --callers) CALLERS=1; shift ;;
    --server-env) SERVER_ENV+=("$2"); shift 2 ;;
    --fast-pg) FAST_PG=1; shift ;;
    --mcp) MCP=1; shift ;;
    --tag) TAG="-$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --new-thread-ratio) NEW_RATIO="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
command -v perf >/dev/null || die "perf is not installed (Debian package linux-perf)"

trap bench_cleanup EXIT
trap 'exit 130' INT TERM
[[ $NO_BUILD -eq 1 ]] || build_all
bench_tmp
OUT="$BENCH_DIR/results"
mkdir -p "$OUT"
JWT_SECRET="$(openssl rand -hex 32)"
start_mock 8 0 1
start_pg
[[ $MCP -eq 0 ]] || attach_test_mcp_server
start_chatkit profile "${SERVER_ENV[@]}"

LOAD_MODE=(--concurrency "$CONCURRENCY")
[[ -z "$RATE" ]] || LOAD_MODE=(--rate "$RATE" --poisson --users 1000)
[[ -z "$NEW_RATIO" ]] || LOAD_MODE+=(--new-thread-ratio "$NEW_RATIO")
[[ -z "$NEW_RATIO" || -n "$RATE" ]] || LOAD_MODE+=(--users 1000)
"$BIN/chatkit-load" "${LOAD_MODE[@]}" --duration "$DURATION" --warmup "$WARMUP" \
  --url "$CK_URL/chatkit" --jwt-secret "$JWT_SECRET" --server-pid "$CK_PID" \
  --pid "db=$PG_POSTMASTER" --pid "mock=$MOCK_PID" >"$BENCH_TMP/load.txt" 2>&1 &
LOAD=$!
sleep "$WARMUP"
G=()
[[ $CALLERS -eq 1 ]] && G=(--call-graph dwarf,16384)
perf record -q ${G[@]+"${G[@]}"} -e cpu-clock -F 2000 -p "$CK_PID" -o "$BENCH_TMP/server.data" -- sleep "$DURATION" 2>/dev/null &
P1=$!
DB_PIDS="$(pgrep -d, -P "$PG_POSTMASTER")"
perf record -q -e cpu-clock -F 2000 -p "$DB_PIDS" -o "$BENCH_TMP/db.data" -- sleep "$DURATION" 2>/dev/null &
P2=$!
wait "$P1" "$P2" || true
wait "$LOAD" || true
cat "$BENCH_TMP/load.txt"
# flat_report DATA LINES [ARGS...]: the top symbols, trailing padding removed.
flat_report() {
  local data="$1" lines="$2"; shift 2
  { perf report -i "$data" --sort symbol --stdio "$@" 2>/dev/null || true; } \
    | sed -e 's/[[:space:]-]*$//' | grep -v '^#' | grep -v '^$' | head -"$lines" || true
}
flat_report "$BENCH_TMP/server.data" 80 --no-children -g none >"$OUT/profile-server$TAG.txt"
flat_report "$BENCH_TMP/db.data" 60 --no-children -g none >"$OUT/profile-db$TAG.txt"
if [[ $CALLERS -eq 1 ]]; then
  flat_report "$BENCH_TMP/server.data" 1500 --children -g none >"$OUT/profile-server-callers$TAG.txt"
fi
# PROFILE_KEEP=DIR keeps the recordings, for `perf report -i DIR/server.data -S SYMBOL -g caller`.
[[ -z "${PROFILE_KEEP:-}" ]] || { mkdir -p "$PROFILE_KEEP" && cp "$BENCH_TMP"/*.data "$PROFILE_KEEP"/; }
log "wrote $OUT/profile-server$TAG.txt and $OUT/profile-db$TAG.txt"
