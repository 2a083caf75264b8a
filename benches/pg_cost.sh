#!/usr/bin/env bash
# pg_cost.sh — what one turn costs the PostgreSQL primary, with production's durable settings:
# statements, WAL (records, full-page images, bytes), WAL flushes (fsync), transactions and
# Postgres CPU per turn, for a turn that starts a thread and for a follow-up message. The
# figures behind specs/scale.md ("How far one primary carries").
#
# Two closed-loop runs against one chatkit-rs (release, titles off, the mock model, at most
# --max-live thread actors), each a fixed number of turns with every statistic reset right
# before it:
#   new        every turn a threads.create with its streamed reply (1,000 users); beyond
#              --max-live (default 1,000) live actors the least recently used retire and give
#              their lease up, as every new thread's actor eventually does (idle timeout or
#              eviction): the steady state of a server, within a short run
#   followup   every turn a threads.add_user_message; each virtual user's first turn creates
#              its thread, so the follow-up cost is solved from both runs:
#              (total − created × new-thread cost) / follow-ups
# Statements come from pg_stat_statements, WAL from pg_stat_wal, transactions from
# pg_stat_database, CPU from /proc (the postmaster and every backend, by chatkit-load --pid).
#
# Usage: benches/pg_cost.sh [--turns N] [--concurrency N] [--max-live N] [--no-build] [--out DIR]
#          [--keep-tmp]
# Environment: CK_BIN (another chatkit-rs binary to measure).
# Writes results/pg-cost-latest.{md,json}.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TURNS=6000 CONCURRENCY=64 MAX_LIVE=1000 NO_BUILD=0
OUT="$BENCH_DIR/results"
SETTLE=11 # seconds: Postgres 15 backends publish their transaction counts within 10 s of idling

while [[ $# -gt 0 ]]; do
  case "$1" in
    --turns) TURNS="$2"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --max-live) MAX_LIVE="$2"; shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

bench_setup
PG_EXTRA_OPTS="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all -c track_wal_io_timing=on"
start_pg
pg_check_durability "chatkit-rs" "$PGPORT"
sql() { psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d chatkit -Atqc "$1"; }
sql "CREATE EXTENSION pg_stat_statements" >/dev/null
start_mock 8 0
start_chatkit pgcost CHATKIT__ACTORS__MAX_LIVE="$MAX_LIVE"

# reset: every statistic this script reads starts from zero (transactions: read before).
reset_stats() {
  sleep "$SETTLE"
  sql "SELECT pg_stat_statements_reset()" >/dev/null
  sql "SELECT pg_stat_reset_shared('wal')" >/dev/null
  XACT0="$(xact_commit "$PGPORT")"
}

# measure NAME RATIO USERS: one run of $TURNS turns, its figures into $RUNS/NAME.stats.
measure() {
  local name="$1" ratio="$2" users="$3"
  reset_stats
  "$BIN/chatkit-load" --url "$CK_URL/chatkit" --jwt-secret "$JWT_SECRET" \
    --concurrency "$CONCURRENCY" --turns "$TURNS" --warmup 0 \
    --new-thread-ratio "$ratio" --users "$users" \
    --server-pid "$CK_PID" --pid "postgres=$PG_POSTMASTER" \
    --json "$RUNS/$name.json" >"$RUNS/$name.txt" 2>&1 || die "chatkit-load failed ($RUNS/$name.txt)"
  sleep "$SETTLE"
  local xact1
  xact1="$(xact_commit "$PGPORT")"
  {
    echo "xacts $((xact1 - XACT0))"
    sql "SELECT 'wal ' || wal_records || ' ' || wal_fpi || ' ' || wal_bytes || ' ' || wal_write || ' ' || wal_sync FROM pg_stat_wal"
    sql "SELECT 'statements ' || coalesce(sum(calls), 0) || ' ' || round(coalesce(sum(total_exec_time), 0)::numeric, 1)
           FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'chatkit')
             AND query NOT LIKE '%pg_stat%'"
  } >"$RUNS/$name.stats"
  sql "SELECT calls, rows, round(total_exec_time::numeric, 1), left(regexp_replace(query, '\s+', ' ', 'g'), 110)
         FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'chatkit')
           AND query NOT LIKE '%pg_stat%' ORDER BY calls DESC LIMIT 14" >"$RUNS/$name.top"
  log "$name: $(jq -r '.turns | "\(.completed) turns (\(.created_threads) new threads, \(.followups) follow-ups, \(.errors) errors), \(.per_sec)/s"' "$RUNS/$name.json")"
}

measure new 1 1000
measure followup 0 "$CONCURRENCY"

python3 - "$RUNS" "$OUT" "$TURNS" "$CONCURRENCY" "$(pg_settings "$PGPORT")" "$MAX_LIVE" "${CK_BIN:-$BIN/chatkit-rs}" <<'PY'
import json, sys, datetime
runs, out, turns, concurrency, settings, max_live, binary = sys.argv[1:8]

def read(name):
    doc = json.load(open(f"{runs}/{name}.json"))
    stats = {}
    for line in open(f"{runs}/{name}.stats"):
        key, *values = line.split()
        stats[key] = [float(v) for v in values]
    t = doc["turns"]
    return {
        "turns": t["completed"], "created": t["created_threads"], "followups": t["followups"],
        "errors": t["errors"], "per_sec": t["per_sec"],
        "xacts": stats["xacts"][0],
        "wal_records": stats["wal"][0], "wal_fpi": stats["wal"][1], "wal_bytes": stats["wal"][2],
        "wal_writes": stats["wal"][3], "wal_syncs": stats["wal"][4],
        "statements": stats["statements"][0], "exec_ms": stats["statements"][1],
        "pg_cpu_ms": doc["processes"]["postgres"]["cpu_secs"] * 1000,
        "server_cpu_ms": doc["processes"]["server"]["cpu_secs"] * 1000 if "server" in doc["processes"] else None,
        "top": open(f"{runs}/{name}.top").read().strip(),
    }

new, mix = read("new"), read("followup")
keys = ["xacts", "wal_records", "wal_fpi", "wal_bytes", "wal_syncs", "statements", "exec_ms", "pg_cpu_ms"]
per_new = {k: new[k] / new["turns"] for k in keys}
per_follow = {k: (mix[k] - mix["created"] * per_new[k]) / max(mix["followups"], 1) for k in keys}

def row(label, k, fmt):
    return f"| {label} | {fmt(per_new[k])} | {fmt(per_follow[k])} |"

f1 = lambda x: f"{x:,.1f}"
f2 = lambda x: f"{x:,.2f}"
f3 = lambda x: f"{x:,.3f}"
lines = [
    f"# What a turn costs the Postgres primary — {datetime.datetime.now():%Y-%m-%d %H:%M}",
    "",
    f"`benches/pg_cost.sh --turns {turns} --concurrency {concurrency} --max-live {max_live}`; Postgres {settings} (SHOW);",
    f"chatkit-rs release (`{binary}`), titles off, mock model (8 tokens), at most {max_live} live thread actors;",
    "statistics reset before each run.",
    f"Runs: new threads {new['turns']} turns at {new['per_sec']:,.0f}/s ({new['errors']} errors);"
    f" follow-ups {mix['turns']} turns at {mix['per_sec']:,.0f}/s ({mix['created']} of them created"
    f" their thread, {mix['errors']} errors).",
    "",
    "| per turn | new thread | follow-up |",
    "|---|---|---|",
    row("transactions (commits)", "xacts", f3),
    row("statements (pg_stat_statements calls)", "statements", f2),
    row("statement execution time, ms", "exec_ms", f3),
    row("WAL records", "wal_records", f1),
    row("WAL full-page images", "wal_fpi", f2),
    row("WAL bytes", "wal_bytes", lambda x: f"{x:,.0f}"),
    row("WAL flushes (fsync)", "wal_syncs", f3),
    row("Postgres CPU, ms (postmaster + backends)", "pg_cpu_ms", f3),
    "",
    "Busiest statements, new threads (calls, rows, total ms, query):",
    "```", new["top"], "```",
    "Busiest statements, follow-ups:",
    "```", mix["top"], "```",
]
open(f"{out}/pg-cost-latest.md", "w").write("\n".join(lines) + "\n")
json.dump({"new_thread": per_new, "followup": per_follow, "runs": {"new": new, "followup": mix},
           "settings": settings}, open(f"{out}/pg-cost-latest.json", "w"), indent=1)
print("\n".join(lines))
PY
