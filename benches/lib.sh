# Helpers shared by compare.sh and memory.sh (sourced, not run). Everything started here is
# recorded (pid, or the data directory of a Postgres cluster) and stopped by `bench_cleanup`,
# which the scripts run on EXIT; nothing is ever stopped by name.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$BENCH_DIR")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/chatkit-target}"
BIN="$CARGO_TARGET_DIR/release"
PIDS=()          # processes we started, stopped in reverse order
PG_DATADIRS=()   # clusters we started
BENCH_TMP=""
KEEP_TMP="${KEEP_TMP:-0}"
CLEANED=0

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

# as_pg CMD...: run as the postgres user when root (initdb refuses root), else as ourselves.
as_pg() {
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bindir() {
  local d
  d="$(pg_config --bindir 2>/dev/null || true)"
  if [[ -z "$d" || ! -x "$d/initdb" ]]; then
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  fi
  [[ -x "$d/initdb" ]] || die "no PostgreSQL server binaries (initdb) found"
  echo "$d"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

bench_tmp() {
  BENCH_TMP="$(mktemp -d /var/tmp/chatkit-bench.XXXXXX)"
  chmod 755 "$BENCH_TMP"
  mkdir -p "$BENCH_TMP/logs"
  [[ $EUID -eq 0 ]] && chown postgres: "$BENCH_TMP/logs"
  log "work dir $BENCH_TMP"
}

# bench_setup: the work dir, $OUT and $RUNS made, a fresh $JWT_SECRET; builds unless --no-build.
bench_setup() {
  [[ ${NO_BUILD:-0} -eq 1 ]] || build_all
  bench_tmp
  mkdir -p "$OUT"
  RUNS="$BENCH_TMP/runs"
  mkdir -p "$RUNS"
  JWT_SECRET="$(openssl rand -hex 32)"
}

stop_pid() { # stop_pid PID [GRACE_SECS]
  local pid="$1" grace="${2:-15}" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
  [[ $CLEANED -eq 1 ]] && return
  CLEANED=1
  trap '' INT TERM
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}" 15; done
  for d in "${PG_DATADIRS[@]}"; do
    as_pg "$PG_BIN/pg_ctl" -D "$d" -m fast -w -t 20 stop >/dev/null 2>&1 \
      || as_pg "$PG_BIN/pg_ctl" -D "$d" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
  done
  if [[ -n "$BENCH_TMP" ]]; then
    if [[ $KEEP_TMP -eq 1 ]]; then log "kept $BENCH_TMP"; else rm -rf "$BENCH_TMP"; fi
  fi
}

forget_pid() { # forget_pid PID: it was stopped already
  local keep=() p
  for p in "${PIDS[@]}"; do [[ "$p" != "$1" ]] && keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# wait_listening FILE PID [TIMEOUT]: prints the URL from the `listening on http://ADDR` line.
wait_listening() {
  local file="$1" pid="$2" timeout="${3:-60}" deadline=$((SECONDS + ${3:-60})) url
  while ((SECONDS < deadline)); do
    url="$(sed -n 's/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$file" 2>/dev/null | head -1)"
    if [[ -n "$url" ]]; then echo "$url"; return 0; fi
    kill -0 "$pid" 2>/dev/null || { tail -20 "$file" "${file%.out}.err" >&2 2>/dev/null; die "process $pid exited during start-up ($file)"; }
    sleep 0.1
  done
  die "no 'listening on' line in $file after ${timeout}s"
}

build_all() {
  log "building (release): chatkit-rs mock-llm chatkit-load chatkit-relay"
  (cd "$REPO_DIR" && cargo build --release -q -p chatkit-rs -p mock-llm -p chatkit-load -p chatkit-relay) \
    || die "cargo build failed"
}

# Postgres durability of every benchmark: production's (fsync, synchronous_commit and
# full_page_writes on, as the embedded Postgres runs) unless FAST_PG=1 (all three off, the
# old benchmark settings). Scripts take --fast-pg to set it.
FAST_PG="${FAST_PG:-0}"
pg_durability() { # the three settings as `name=value` words
  if [[ "$FAST_PG" == 1 ]]; then
    echo "fsync=off synchronous_commit=off full_page_writes=off"
  else
    echo "fsync=on synchronous_commit=on full_page_writes=on"
  fi
}

# pg_settings PORT: the durability settings in force on the cluster at PORT (SHOW, so options
# given at start count), as `name=value` words in the order of pg_durability.
pg_settings() {
  local kv name out=()
  for kv in $(pg_durability); do
    name="${kv%%=*}"
    out+=("$name=$(psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -Atqc "SHOW $name" || echo '?')")
  done
  echo "${out[*]}"
}

# pg_check_durability LABEL PORT: dies loudly unless the cluster at PORT runs with
# $(pg_durability); logs what it runs with.
pg_check_durability() {
  local got
  got="$(pg_settings "$2")"
  [[ "$got" == "$(pg_durability)" ]] \
    || die "the Postgres of $1 (port $2) runs with $got, not $(pg_durability): the comparison would not be like for like"
  log "the Postgres of $1 (port $2) runs with $got (SHOW)"
}

# start_pg: a private cluster in $BENCH_TMP/pgdata with $(pg_durability) (and the server
# options in PG_EXTRA_OPTS, if any). Sets PGPORT, PGDATA_DIR, PG_POSTMASTER; database `chatkit`.
start_pg() {
  PG_BIN="$(pg_bindir)"
  PGPORT="$(free_port)"
  PGDATA_DIR="$BENCH_TMP/pgdata"
  local sock="$BENCH_TMP/pgsock"
  mkdir -p "$sock"
  if [[ $EUID -eq 0 ]]; then
    install -d -o postgres -g postgres -m 700 "$PGDATA_DIR"
    chown postgres: "$sock"
  else
    install -d -m 700 "$PGDATA_DIR"
  fi
  as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    >"$BENCH_TMP/logs/initdb.log" 2>&1 || die "initdb failed (see $BENCH_TMP/logs/initdb.log)"
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -w -t 60 -l "$BENCH_TMP/logs/postgres.log" \
    -o "-p $PGPORT -k $sock -c listen_addresses=127.0.0.1 $(printf -- '-c %s ' $(pg_durability))-c max_connections=200 ${PG_EXTRA_OPTS:-}" \
    start >/dev/null 2>&1 || die "postgres did not start (see $BENCH_TMP/logs/postgres.log)"
  PG_DATADIRS+=("$PGDATA_DIR")
  as_pg "$PG_BIN/createdb" -h "$sock" -p "$PGPORT" -U postgres chatkit || die "createdb failed"
  PG_POSTMASTER="$(head -1 "$PGDATA_DIR/postmaster.pid")"
  log "postgres $($PG_BIN/postgres --version | awk '{print $NF}') on 127.0.0.1:$PGPORT (postmaster $PG_POSTMASTER, $(pg_durability))"
}

# xact_commit PORT: committed transactions of database `chatkit` so far.
xact_commit() {
  psql -h 127.0.0.1 -p "$1" -U postgres -d chatkit -Atqc \
    "SELECT xact_commit FROM pg_stat_database WHERE datname = 'chatkit'"
}

# start_mock TOKENS DELAY_MS [WORKERS]: sets MOCK_PID, MOCK_URL (base, without /v1).
start_mock() {
  local out="$BENCH_TMP/logs/mock-$1-$2.out" args=(--port 0 --tokens "$1" --delay-ms "$2")
  [[ -n "${3:-}" && "${3:-0}" != 0 ]] && args+=(--workers "$3")
  "$BIN/mock-llm" "${args[@]}" >"$out" 2>"${out%.out}.err" &
  MOCK_PID=$!
  PIDS+=("$MOCK_PID")
  MOCK_URL="$(wait_listening "$out" "$MOCK_PID")"
  log "mock-llm --tokens $1 --delay-ms $2 at $MOCK_URL (pid $MOCK_PID)"
}

# attach_test_mcp_server: starts the test MCP server (tests/mcp-tasks, built unless
# NO_BUILD=1) with $JWT_SECRET and has every later start_chatkit offer its tools (CHATKIT_ARGS).
attach_test_mcp_server() {
  [[ "${NO_BUILD:-0}" -eq 1 ]] || (cd "$REPO_DIR" && cargo build --release -q -p mcp-tasks)
  "$BIN/mcp-tasks" --port 0 --jwt-secret "$JWT_SECRET" >"$BENCH_TMP/logs/mcp.out" 2>"$BENCH_TMP/logs/mcp.err" &
  MCP_PID=$!
  PIDS+=("$MCP_PID")
  local url
  url="$(wait_listening "$BENCH_TMP/logs/mcp.out" "$MCP_PID")"
  printf '[[mcp.servers]]\nname = "tasks"\nurl = "%s/mcp"\nforward_user_token = true\n' "$url" \
    >"$BENCH_TMP/chatkit-mcp.toml"
  export CHATKIT_ARGS="--config $BENCH_TMP/chatkit-mcp.toml"
  log "test MCP server at $url (pid $MCP_PID), its tools offered by chatkit-rs"
}

# start_chatkit NAME [VAR=VALUE...]: chatkit-rs on a free port against our cluster, titles off
# (the reference has none), the per-user request rate limit off (virtual users send far more
# than people do; the reference has none either), metrics on a free port, own schema
# bench_NAME. Sets CK_PID, CK_URL. Extra VAR=VALUE pairs go to its environment.
start_chatkit() {
  local name="$1"; shift
  local out="$BENCH_TMP/logs/chatkit-$name.out"
  env CHATKIT__SERVER__BIND=127.0.0.1:0 \
    CHATKIT__SERVER__DRAIN_TIMEOUT_SECS=5 \
    CHATKIT__DATABASE__URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=chatkit" \
    CHATKIT__DATABASE__SCHEMA="bench_$name" \
    CHATKIT__AUTH__JWT_SECRET="$JWT_SECRET" \
    CHATKIT__MODEL__BASE_URL="$MOCK_URL/v1" \
    CHATKIT__MODEL__NAME=mock-model \
    CHATKIT__TITLES__ENABLED=false \
    CHATKIT__METRICS__BIND=127.0.0.1:0 \
    CHATKIT__LIMITS__REQUESTS_PER_MINUTE=0 \
    CHATKIT__LOG__LEVEL="${CHATKIT_LOG_LEVEL:-warn}" \
    OPENAI_API_KEY=sk-bench-not-a-key \
    "$@" "${CK_BIN:-$BIN/chatkit-rs}" ${CHATKIT_ARGS:-} >"$out" 2>"${out%.out}.err" &
  CK_PID=$!
  PIDS+=("$CK_PID")
  CK_URL="$(wait_listening "$out" "$CK_PID" 120)"
  local i
  for ((i = 0; i < 100; i++)); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "$CK_URL/readyz")" == 200 ]] && break
    sleep 0.1
  done
  log "chatkit-rs ($name) at $CK_URL (pid $CK_PID)"
}

# server_alive NAME PID ERRFILE: true if PID still runs; otherwise logs how it ended (our child,
# so `wait` knows its status) and the tail of its stderr, and returns 1.
server_alive() {
  local name="$1" pid="$2" err="$3" status=0
  kill -0 "$pid" 2>/dev/null && return 0
  wait "$pid" 2>/dev/null || status=$?
  forget_pid "$pid"
  log "error: $name (pid $pid) exited during the run with status $status$( ((status > 128)) && echo " (signal $((status - 128)))"); last lines of its stderr:"
  tail -n 20 "$err" >&2 2>/dev/null || true
  return 1
}

# thread_cpu PID DELAY SECS OUT: after DELAY seconds, the CPU each thread of PID used over the
# next SECS seconds (utime+stime of /proc/PID/task/TID/stat), busiest first, into OUT. (top -H
# is not used: its row for the main thread shows the whole process.)
thread_cpu() {
  local pid="$1" delay="$2" secs="$3" out="$4"
  snap() {
    local t
    for t in /proc/"$pid"/task/*; do
      echo "${t##*/} $(tr ' ' _ <"$t/comm" 2>/dev/null) $(awk '{sub(/.*\) /, ""); print $12 + $13}' "$t/stat" 2>/dev/null)"
    done | sort -k1,1
  }
  sleep "$delay"
  local s0 s1
  s0="$(snap)"
  sleep "$secs"
  s1="$(snap)"
  {
    echo "CPU per thread of pid $pid over ${secs}s (percent of one core; clock ticks: $(getconf CLK_TCK)/s)"
    join <(echo "$s0") <(echo "$s1") | awk -v secs="$secs" -v hz="$(getconf CLK_TCK)" \
      '{ d = ($5 - $3) / hz / secs * 100; printf "%6.1f%%  tid %-8s %s\n", d, $1, $2 }' | sort -rn
  } >"$out"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
