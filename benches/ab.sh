#!/usr/bin/env bash
# ab.sh — two builds of chatkit-rs side by side in one run: the same mock model, the same
# PostgreSQL (settings as compare.sh), the same load (chatkit-load), alternating A B B A A B … so
# that drift of the machine hits both alike. For "did this change cost anything": build the
# baseline from an older commit into its own directory and pass its binary.
#
# Usage: benches/ab.sh --baseline BIN [--rounds N] [--concurrency N] [--duration S]
#          [--warmup S] [--tokens N] [--new-thread-ratio R] [--no-build] [--out DIR]
#   --baseline  the other chatkit-rs binary (A); B is this tree's release build
#   --rounds    A/B pairs (default 3)
#   --mcp       both sides with the test MCP server (tests/mcp-tasks) attached: its tools
#               offered on every turn (none called), as compare.sh's (c+mcp)
#   --a-env VAR=VALUE, --b-env VAR=VALUE (repeatable)
#               environment of one side only: one build under two settings, e.g. trace export
#               off (B) against on or to a dead collector (A, --baseline the same binary)
# Prints each run (turns/s, first-delta and turn latency, the server's CPU, context switches
# and read/write system calls per turn) and the mean of each side; writes results/ab-latest.md.
# Example baseline: git worktree add /var/tmp/ck-base <rev> && (cd /var/tmp/ck-base &&
#   cargo build --release --bin chatkit-rs) && cp $CARGO_TARGET_DIR/release/chatkit-rs /var/tmp/ck-base.bin
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BASELINE="" ROUNDS=3 CONCURRENCY=64 DURATION=20 WARMUP=5 TOKENS=8 NEW_RATIO=0.2 NO_BUILD=0 MCP=0
A_ENV=() B_ENV=()
OUT="$BENCH_DIR/results"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --baseline) BASELINE="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --tokens) TOKENS="$2"; shift 2 ;;
    --new-thread-ratio) NEW_RATIO="$2"; shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --fast-pg) FAST_PG=1; shift ;;
    --mcp) MCP=1; shift ;;
    --a-env) A_ENV+=("$2"); shift 2 ;;
    --b-env) B_ENV+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ -x "$BASELINE" ]] || die "--baseline BIN: an executable chatkit-rs is needed"

trap bench_cleanup EXIT
trap 'exit 130' INT TERM
bench_setup
start_mock "$TOKENS" 0 1
start_pg
[[ $MCP -eq 0 ]] || attach_test_mcp_server

# The server's context switches so far (voluntary and not, all its threads): a cross-thread
# wake-up costs one, so switches per turn count the hops a turn makes between threads.
context_switches() { # context_switches PID
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^(non)?voluntary_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}

# The server's read and write system calls so far (/proc/PID/io: read/readv/write/writev…,
# sockets included): fewer per turn means frames and requests written in fewer pieces.
read_write_calls() { # read_write_calls PID
  awk '/^sysc[rw]:/ { n += $2 } END { print n + 0 }' /proc/"$1"/io 2>/dev/null || echo 0
}

run_side() { # run_side NAME BIN [VAR=VALUE...]
  local name="$1" bin="$2"
  shift 2
  CK_BIN="$bin" start_chatkit "$name" "$@"
  local switches_before calls_before
  switches_before="$(context_switches "$CK_PID")"
  calls_before="$(read_write_calls "$CK_PID")"
  "$BIN/chatkit-load" --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" \
    --new-thread-ratio "$NEW_RATIO" --timeout 60 --label "$name" --json "$RUNS/$name.json" \
    --server-pid "$CK_PID" --url "$CK_URL/chatkit" --jwt-secret "$JWT_SECRET" \
    --pid "db=$PG_POSTMASTER" --pid "mock=$MOCK_PID" >&2
  echo $(($(context_switches "$CK_PID") - switches_before)) >"$RUNS/$name.switches"
  echo $(($(read_write_calls "$CK_PID") - calls_before)) >"$RUNS/$name.calls"
  stop_pid "$CK_PID" 20; forget_pid "$CK_PID"
}

# A B, then B A, and so on: a machine slowing down (or speeding up) over the run hits both
# sides alike instead of always the side that runs second.
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then
    run_side "a$r" "$BASELINE" ${A_ENV[@]+"${A_ENV[@]}"}
    run_side "b$r" "$BIN/chatkit-rs" ${B_ENV[@]+"${B_ENV[@]}"}
  else
    run_side "b$r" "$BIN/chatkit-rs" ${B_ENV[@]+"${B_ENV[@]}"}
    run_side "a$r" "$BASELINE" ${A_ENV[@]+"${A_ENV[@]}"}
  fi
done

summary() { # summary NAME: turns/s, ttft p50, ttft p99, turn p50, turn p99, server cpu ms/turn,
  #                server context switches and read/write calls per turn (warm-up and window)
  jq -r --argjson sw "$(cat "$RUNS/$1.switches")" --argjson rw "$(cat "$RUNS/$1.calls")" \
    '([.turns.completed + .turns.warmup_completed, 1] | max) as $turns
     | [.turns.per_sec, .ttft_ms.p50, .ttft_ms.p99, .turn_ms.p50, .turn_ms.p99,
      .processes.server.cpu_ms_per_turn,
      ($sw / $turns * 100 | round / 100), ($rw / $turns * 100 | round / 100)] | @tsv' \
    "$RUNS/$1.json"
}
{
  echo "# A/B: baseline vs this tree ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(cd "$REPO_DIR" && git rev-parse --short HEAD))"
  echo
  echo "A = \`$BASELINE\`${A_ENV[*]+ with ${A_ENV[*]}}, B = this tree${B_ENV[*]+ with ${B_ENV[*]}}. chatkit-load --concurrency $CONCURRENCY --duration $DURATION --warmup $WARMUP --new-thread-ratio $NEW_RATIO; mock $TOKENS tokens; Postgres as compare.sh."
  echo
  echo "| run | turns/s | first delta p50 ms | p99 ms | whole turn p50 ms | p99 ms | server CPU ms/turn | server context switches/turn | server read+write calls/turn |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for ((r = 1; r <= ROUNDS; r++)); do
    for side in a b; do
      printf '| %s%s | %s |\n' "$side" "$r" "$(summary "$side$r" | sed 's/\t/ | /g')"
    done
  done
  for side in a b; do
    jq -rs '[ .[] | .turns.per_sec ] | add / length' "$RUNS/$side"[0-9]*.json >"$BENCH_TMP/mean-$side"
  done
  a="$(cat "$BENCH_TMP/mean-a")" b="$(cat "$BENCH_TMP/mean-b")"
  echo
  echo "Mean turns/s: A $(printf '%.0f' "$a"), B $(printf '%.0f' "$b"), B/A = $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')."
} | tee "$OUT/ab-latest.md"
