#!/usr/bin/env bash
# instructions.sh — what a turn costs chatkit-rs in instructions, counted (valgrind's
# callgrind), not timed: the count does not move with the machine's neighbours as turns/s and
# CPU seconds do (±5–15% here), so a change of 1–2% shows. Each build runs under callgrind
# against the same mock model and PostgreSQL (settings as compare.sh); after a warm-up the
# counters are zeroed, a fixed number of turns runs (closed loop), and the instructions of
# every thread of the server are divided by those turns.
#
# Counts work, not waiting: what a change saves in cache misses, lock hand-offs or wake-ups
# (allocations crossing threads, say) shows in ab.sh, not here. Under callgrind the server runs
# one thread at a time and about 50× slower, so batches (group commits, frames per chunk) are
# larger than at full speed: compare builds with each other, not with ab.sh's figures.
#
# Usage: benches/instructions.sh [--baseline BIN] [--turns N] [--concurrency N]
#          [--new-thread-ratio R] [--tokens N] [--mcp] [--a-env VAR=VALUE]... [--b-env ...]
#          [--top N] [--no-build] [--out DIR]
#   --baseline  another chatkit-rs binary (A), counted first; B is this tree's release build
#   --top       the N functions with the most instructions (inclusive of nothing: self cost)
#               of each side, into results/instructions-latest.md
# Needs valgrind (installed with apt-get when missing).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BASELINE="" TURNS=2000 CONCURRENCY=16 NEW_RATIO=0.2 TOKENS=8 MCP=0 TOP=25 NO_BUILD=0
A_ENV=() B_ENV=()
OUT="$BENCH_DIR/results"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --baseline) BASELINE="$2"; shift 2 ;;
    --turns) TURNS="$2"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --new-thread-ratio) NEW_RATIO="$2"; shift 2 ;;
    --tokens) TOKENS="$2"; shift 2 ;;
    --mcp) MCP=1; shift ;;
    --a-env) A_ENV+=("$2"); shift 2 ;;
    --b-env) B_ENV+=("$2"); shift 2 ;;
    --top) TOP="$2"; shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ -z "$BASELINE" || -x "$BASELINE" ]] || die "--baseline BIN: an executable chatkit-rs is needed"
if ! command -v valgrind >/dev/null; then
  log "installing valgrind"
  apt-get install -y -q valgrind >/dev/null 2>&1 || die "valgrind is missing and could not be installed"
fi

trap bench_cleanup EXIT
trap 'exit 130' INT TERM
bench_setup
start_mock "$TOKENS" 0 1
start_pg
[[ $MCP -eq 0 ]] || attach_test_mcp_server

# load NAME TURNS: a closed loop of TURNS turns against the server started last.
load() {
  "$BIN/chatkit-load" --concurrency "$CONCURRENCY" --turns "$2" --users 1000 \
    --new-thread-ratio "$NEW_RATIO" --timeout 120 --label "$1" --json "$RUNS/$1.json" \
    --url "$CK_URL/chatkit" --jwt-secret "$JWT_SECRET" >"$RUNS/$1.load.txt" 2>&1 ||
    die "$1: the load failed (see $RUNS/$1.load.txt)"
}

# count_side NAME BIN [VAR=VALUE...]: warm-up, zero, TURNS measured turns, dump.
count_side() {
  local name="$1" bin="$2"
  shift 2
  local wrapper="$BENCH_TMP/callgrind-$name"
  printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/%s.%%p.cg %s "$@"\n' \
    "$RUNS" "$name" "$bin" >"$wrapper"
  chmod +x "$wrapper"
  log "$name: $bin under callgrind"
  CK_BIN="$wrapper" start_chatkit "$name" "$@"
  load "$name-warmup" $((TURNS / 4))
  callgrind_control -z "$CK_PID" >/dev/null
  load "$name" "$TURNS"
  callgrind_control -d "$CK_PID" >/dev/null
  stop_pid "$CK_PID" 60; forget_pid "$CK_PID"
  # The dump after zeroing (the last one written before the exit's).
  local dump
  dump="$(ls -t "$RUNS/$name".*.cg.* 2>/dev/null | grep -v '\.cg$' | head -1)"
  [[ -n "$dump" ]] || die "$name: no callgrind dump"
  local ir turns
  ir="$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")"
  turns="$(jq -r '.turns.completed' "$RUNS/$name.json")"
  echo "$ir $turns" >"$RUNS/$name.count"
  callgrind_annotate --threshold=100 "$dump" 2>/dev/null |
    awk -v top="$TOP" '/^-+$/ { rule++; next } rule >= 3 && NF > 1 && n < top { print; n++ }' \
    >"$RUNS/$name.top"
  log "$name: $ir instructions over $turns turns"
}

[[ -z "$BASELINE" ]] || count_side a "$BASELINE" ${A_ENV[@]+"${A_ENV[@]}"}
count_side b "$BIN/chatkit-rs" ${B_ENV[@]+"${B_ENV[@]}"}

per_turn() { awk '{ printf "%.0f", $1 / $2 }' "$RUNS/$1.count"; }
{
  echo "# Instructions per turn ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(cd "$REPO_DIR" && git rev-parse --short HEAD))"
  echo
  echo "callgrind, every thread of the server; chatkit-load --concurrency $CONCURRENCY --turns $TURNS --users 1000 --new-thread-ratio $NEW_RATIO after $((TURNS / 4)) warm-up turns; mock $TOKENS tokens$([[ $MCP -eq 0 ]] || echo ', the test MCP server attached'); Postgres as compare.sh."
  echo
  echo "| side | build | instructions | turns | instructions per turn |"
  echo "|---|---|---|---|---|"
  [[ -z "$BASELINE" ]] || echo "| A | \`$BASELINE\`${A_ENV[*]+ with ${A_ENV[*]}} | $(cut -d' ' -f1 "$RUNS/a.count") | $(cut -d' ' -f2 "$RUNS/a.count") | $(per_turn a) |"
  echo "| B | this tree${B_ENV[*]+ with ${B_ENV[*]}} | $(cut -d' ' -f1 "$RUNS/b.count") | $(cut -d' ' -f2 "$RUNS/b.count") | $(per_turn b) |"
  if [[ -n "$BASELINE" ]]; then
    echo
    echo "B/A instructions per turn = $(awk -v a="$(per_turn a)" -v b="$(per_turn b)" 'BEGIN { printf "%.3f", b / a }')."
  fi
  for side in a b; do
    [[ -f "$RUNS/$side.top" ]] || continue
    echo
    echo "Top functions of ${side^^} (self instructions over the measured turns):"
    echo '```'
    cat "$RUNS/$side.top"
    echo '```'
  done
} | tee "$OUT/instructions-latest.md"
