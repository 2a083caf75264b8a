#!/usr/bin/env bash
# overhead.sh — what chatkit-rs adds to a turn, at fixed rates: the bare relay (b) and
# chatkit-rs (c) each get the same open-loop load (Poisson arrivals, 1,000 users, limits off,
# mock with 8 tokens and no delay, Postgres durable unless --fast-pg), and the added time to
# the first text delta and to the whole turn is c − b at p50, p99 and max. After the fixed
# rates it looks for the highest rate chatkit-rs holds with first-delta p99 under 50 ms
# (stepping up from the last fixed rate while it holds, down from it when it does not; a step
# fails when p99 ≥ 50 ms, any turn errs, or fewer than 95% of the offered turns completed).
#
# Usage: benches/overhead.sh [--rates "500 1500"] [--step 500] [--max-rate 8000] [--no-search]
#          [--duration S] [--warmup S] [--users N] [--tokens N] [--baseline BIN] [--fast-pg]
#          [--no-build] [--out DIR] [--delay-ms D]
#   --delay-ms D    the mock waits D ms before each chunk after the first (its role chunk): the
#                   first text comes D ms after the request, as a real model's time to first
#                   token would (default 0: the fastest possible model)
#   --baseline BIN  also measure another chatkit-rs build at each rate, right before this one
#                   (its rows are marked "A"), for before/after in one run
# Writes results/overhead-latest.md and .json.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DELAY_MS=0 BASELINE="" RATES="500 1500" STEP=500 MAX_RATE=8000 SEARCH=1 DURATION=20 WARMUP=5 USERS=1000 TOKENS=8 NO_BUILD=0
OUT="$BENCH_DIR/results"
P99_LIMIT_MS=50
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rates) RATES="$2"; shift 2 ;;
    --baseline) BASELINE="$2"; shift 2 ;;
    --step) STEP="$2"; shift 2 ;;
    --max-rate) MAX_RATE="$2"; shift 2 ;;
    --no-search) SEARCH=0; shift ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --users) USERS="$2"; shift 2 ;;
    --tokens) TOKENS="$2"; shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    --delay-ms) DELAY_MS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --fast-pg) FAST_PG=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

trap bench_cleanup EXIT
trap 'exit 130' INT TERM
bench_setup
start_mock "$TOKENS" "$DELAY_MS" 1
start_pg

"$BIN/chatkit-relay" --port 0 --model-url "$MOCK_URL/v1" --workers 0 \
  >"$BENCH_TMP/logs/relay.out" 2>"$BENCH_TMP/logs/relay.err" &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
RELAY_URL="$(wait_listening "$BENCH_TMP/logs/relay.out" "$RELAY_PID")"
LIMITS_OFF=(CHATKIT__LIMITS__MAX_STREAMS_PER_USER=0 CHATKIT__LIMITS__MAX_OPEN_STREAMS=100000)
if [[ -n "$BASELINE" ]]; then
  [[ -x "$BASELINE" ]] || die "--baseline BIN: an executable chatkit-rs is needed"
  CK_BIN="$BASELINE" start_chatkit baseline "${LIMITS_OFF[@]}"
  BASE_URL="$CK_URL" BASE_PID="$CK_PID"
fi
METRICS_PORT="${METRICS_PORT:-19464}"
start_chatkit overhead "${LIMITS_OFF[@]}" CHATKIT__METRICS__BIND="127.0.0.1:$METRICS_PORT"

load_at() { # load_at NAME RATE URL PID: one open-loop run, JSON in $RUNS/NAME-RATE.json
  "$BIN/chatkit-load" --rate "$2" --poisson --users "$USERS" --duration "$DURATION" \
    --warmup "$WARMUP" --timeout 60 --label "$1@$2" --json "$RUNS/$1-$2.json" \
    --server-pid "$4" --url "$3/chatkit" --jwt-secret "$JWT_SECRET" \
    --pid "db=$PG_POSTMASTER" --pid "mock=$MOCK_PID" >&2
}

# inside RATE BEFORE AFTER: from two /metrics scrapes around a chatkit-rs run, what the
# engine saw meanwhile (warm-up included): group commits, their mean latency and batch size,
# and the server-side time to first token (request in → first delta out).
inside() {
  python3 - "$1" "$2" "$3" <<'PY'
import re, sys
rate, before, after = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read()
def total(text, name):
    m = re.search(r"^" + re.escape(name) + r" ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0
def delta(name): return total(after, name) - total(before, name)
commits = delta("chatkit_persistence_commit_seconds_count")
writes = delta("chatkit_persistence_batch_writes_sum")
ttft_n = delta("chatkit_time_to_first_token_seconds_count")
commit_ms = 1000 * delta("chatkit_persistence_commit_seconds_sum") / commits if commits else 0
ttft_ms = 1000 * delta("chatkit_time_to_first_token_seconds_sum") / ttft_n if ttft_n else 0
print(f"| {rate} | {commits:.0f} | {writes / commits if commits else 0:.1f} | {commit_ms:.2f} | {ttft_ms:.2f} |")
PY
}
INSIDE=()

measure() { # measure RATE: relay, the baseline if any, then chatkit-rs at RATE
  log "---- $1 turns/s"
  load_at relay "$1" "$RELAY_URL" "$RELAY_PID"
  [[ -z "$BASELINE" ]] || load_at baseline "$1" "$BASE_URL" "$BASE_PID"
  curl -s "http://127.0.0.1:$METRICS_PORT/metrics" >"$RUNS/metrics-before-$1.txt"
  load_at chatkit "$1" "$CK_URL" "$CK_PID"
  curl -s "http://127.0.0.1:$METRICS_PORT/metrics" >"$RUNS/metrics-after-$1.txt"
  INSIDE+=("$(inside "$1" "$RUNS/metrics-before-$1.txt" "$RUNS/metrics-after-$1.txt")")
}

holds() { # holds RATE: chatkit-rs kept p99 < limit, no errors, ≥ 95% of the offered turns
  jq -e --argjson rate "$1" --argjson limit "$P99_LIMIT_MS" --argjson dur "$DURATION" '
    .ttft_ms.p99 < $limit and .turns.errors == 0 and .turns.per_sec >= 0.95 * $rate' \
    "$RUNS/chatkit-$1.json" >/dev/null
}

MEASURED=()
for rate in $RATES; do measure "$rate"; MEASURED+=("$rate"); done
HIGHEST=""
if [[ $SEARCH -eq 1 ]]; then
  rate="${MEASURED[-1]}"
  holds "$rate" && HIGHEST="$rate"
  while [[ -n "$HIGHEST" && "$HIGHEST" == "$rate" && $((rate + STEP)) -le $MAX_RATE ]]; do
    rate=$((rate + STEP))
    measure "$rate"; MEASURED+=("$rate")
    holds "$rate" && HIGHEST="$rate"
  done
  # The last fixed rate did not hold: step down until a rate does (one measured already
  # counts as it was).
  while [[ -z "$HIGHEST" && $((rate - STEP)) -gt 0 ]]; do
    rate=$((rate - STEP))
    [[ -f "$RUNS/chatkit-$rate.json" ]] || { measure "$rate"; MEASURED+=("$rate"); }
    holds "$rate" && HIGHEST="$rate"
  done
fi

row() { # row RATE [NAME [MARK]]: the markdown row of one rate (of chatkit-rs, or NAME)
  jq -rn --slurpfile b "$RUNS/relay-$1.json" --slurpfile c "$RUNS/${2:-chatkit}-$1.json" \
    --arg rate "$1${3:-}" '
    def d(k; q): (($c[0][k][q] - $b[0][k][q]) * 100 | round / 100);
    "| \($rate) | \($c[0].turns.per_sec) | \($c[0].turns.errors) | " +
    "\(d("ttft_ms"; "p50")) / \(d("ttft_ms"; "p99")) / \(d("ttft_ms"; "max")) | " +
    "\(d("turn_ms"; "p50")) / \(d("turn_ms"; "p99")) / \(d("turn_ms"; "max")) | " +
    "\($b[0].ttft_ms.p50) / \($b[0].ttft_ms.p99) | \($c[0].ttft_ms.p50) / \($c[0].ttft_ms.p99) / \($c[0].ttft_ms.max) | " +
    "\($b[0].machine_cpu_steal_pct // "?") / \($c[0].machine_cpu_steal_pct // "?") |"'
}
{
  echo "# Overhead at fixed rates ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(cd "$REPO_DIR" && git rev-parse --short HEAD))"
  echo
  echo "Open loop, Poisson arrivals, $USERS users, ${DURATION} s after ${WARMUP} s warm-up, mock $TOKENS tokens $( [[ "$DELAY_MS" == 0 ]] && echo "without delay" || echo "$DELAY_MS ms apart (first text after $DELAY_MS ms)"); Postgres $(pg_durability); limits off. Added = chatkit-rs − bare relay, ms."
  echo
  echo "| offered turns/s | completed turns/s | errors | added first delta p50 / p99 / max | added whole turn p50 / p99 / max | relay first delta p50 / p99 | chatkit-rs first delta p50 / p99 / max | CPU stolen by the host, relay / chatkit-rs run % |"
  echo "|---|---|---|---|---|---|---|---|"
  for rate in "${MEASURED[@]}"; do
    [[ -z "$BASELINE" ]] || row "$rate" baseline " (A)"
    row "$rate"
  done
  [[ -z "$BASELINE" ]] || echo "(A) = \`$BASELINE\`; unmarked rows = this tree."
  echo
  if [[ $SEARCH -eq 1 ]]; then
    echo "Highest rate held with first-delta p99 < $P99_LIMIT_MS ms (step $STEP): ${HIGHEST:-none of those tried}."
  fi
  echo
  echo "Inside chatkit-rs during each run (its /metrics, warm-up included): group commits, writes per commit, mean commit latency (BEGIN to COMMIT answered, fsync included), mean time from the turn's start in its thread actor to the model's first delta."
  echo
  echo "| offered turns/s | group commits | writes per commit | commit ms (mean) | turn start → first model delta ms (mean) |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${INSIDE[@]}"
} | tee "$OUT/overhead-latest.md"
jq -s '.' "$RUNS"/*.json >"$OUT/overhead-latest.json"
