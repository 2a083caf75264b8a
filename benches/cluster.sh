#!/usr/bin/env bash
# Cluster figures, in one run against one Postgres and one mock model:
#   1. throughput of one instance (direct) vs three instances behind nginx round robin
#      (config/nginx-cluster.conf), same chatkit-load settings;
#   2. hand-over latency: time to the first response byte of a turn whose thread was last
#      served by another instance (the lease moves: notify, release, acquire, reload) vs a
#      turn on the instance that already owns the thread, p50/p99 over N turns each.
# Output: benches/results/cluster-latest.md. Loopback only; everything started is stopped.
#
#   benches/cluster.sh [--concurrency 64] [--duration 20] [--warmup 5] [--handovers 200]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CONCURRENCY=64 DURATION=20 WARMUP=5 HANDOVERS=200 NO_BUILD=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --handovers) HANDOVERS="$2"; shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    --fast-pg) FAST_PG=1; shift ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
NGINX="$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)"
[[ -x "$NGINX" ]] || die "nginx is needed (apt-get install nginx-light)"

trap bench_cleanup EXIT
trap 'exit 130' INT TERM
[[ $NO_BUILD -eq 1 ]] || build_all
bench_tmp
OUT="$BENCH_DIR/results"
mkdir -p "$OUT" "$BENCH_TMP/runs"
JWT_SECRET="$(openssl rand -hex 32)"
LOAD=(--concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" --threads 1 --timeout 60)

start_mock 8 0
start_pg

# ---- 1a. one instance ----
start_chatkit solo CHATKIT__CLUSTER__INSTANCE_ID=solo
SOLO_PID=$CK_PID SOLO_URL=$CK_URL
log "---- one instance: chatkit-load ${LOAD[*]}"
"$BIN/chatkit-load" "${LOAD[@]}" --label one --json "$BENCH_TMP/runs/one.json" --server-pid "$SOLO_PID" --url "$SOLO_URL/chatkit" --jwt-secret "$JWT_SECRET" >&2
stop_pid "$SOLO_PID"; forget_pid "$SOLO_PID"

# ---- 1b. three instances behind nginx ----
NODE_PIDS=() NODE_URLS=()
for n in 1 2 3; do
  start_chatkit "node$n" CHATKIT__CLUSTER__INSTANCE_ID="node-$n" CHATKIT__DATABASE__SCHEMA=bench_cluster
  NODE_PIDS+=("$CK_PID") NODE_URLS+=("$CK_URL")
done
NGINX_PORT="$(free_port)"
UPSTREAMS=""
for u in "${NODE_URLS[@]}"; do UPSTREAMS+="        server ${u#http://};"$'\n'; done
mkdir -p "$BENCH_TMP/nginx"
python3 - "$REPO_DIR/config/nginx-cluster.conf" "$BENCH_TMP/nginx/nginx.conf" "$BENCH_TMP/nginx" "127.0.0.1:$NGINX_PORT" "$UPSTREAMS" <<'PY'
import sys
src, dst, prefix, listen, upstreams = sys.argv[1:]
text = open(src).read().replace("{{PREFIX}}", prefix).replace("{{LISTEN}}", listen).replace("{{UPSTREAMS}}", upstreams)
open(dst, "w").write(text)
PY
"$NGINX" -p "$BENCH_TMP/nginx" -c "$BENCH_TMP/nginx/nginx.conf" -g 'daemon off;' >/dev/null 2>&1 &
PIDS+=($!)
for ((i = 0; i < 50; i++)); do curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/healthz" && break; sleep 0.1; done
log "---- three instances behind nginx: chatkit-load ${LOAD[*]}"
"$BIN/chatkit-load" "${LOAD[@]}" --label three --json "$BENCH_TMP/runs/three.json" --pid "nodes=$(IFS=,; echo "${NODE_PIDS[*]}")" --url "http://127.0.0.1:$NGINX_PORT/chatkit" --jwt-secret "$JWT_SECRET" >&2

# ---- 2. hand-over latency ----
TOKEN="$("$BIN/chatkit-rs" dev-token --sub handover-user --ttl 3600 2>/dev/null || true)"
[[ -n "$TOKEN" ]] || TOKEN="$(CHATKIT__AUTH__JWT_SECRET="$JWT_SECRET" "$BIN/chatkit-rs" dev-token --sub handover-user --ttl 3600)"
create='{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"hi"}],"attachments":[],"inference_options":{}}}}'
THREAD="$(curl -sN "${NODE_URLS[0]}/chatkit" -H "Authorization: Bearer $TOKEN" -d "$create" | grep -o '"thr_[0-9a-f]*"' | head -1 | tr -d '"')"
[[ -n "$THREAD" ]] || die "could not create the hand-over thread"
msg() { printf '{"type":"threads.add_user_message","params":{"thread_id":"%s","input":{"content":[{"type":"input_text","text":"ping %s"}],"attachments":[],"inference_options":{}}}}' "$THREAD" "$1"; }
ttfb() { curl -sN -o /dev/null -w '%{time_starttransfer}\n' "$1/chatkit" -H "Authorization: Bearer $TOKEN" -d "$(msg "$2")"; }
: >"$BENCH_TMP/runs/same.txt"; : >"$BENCH_TMP/runs/handover.txt"
log "---- hand-over latency: $HANDOVERS turns on the owner, $HANDOVERS turns alternating owners"
for ((i = 0; i < HANDOVERS; i++)); do ttfb "${NODE_URLS[0]}" "s$i" >>"$BENCH_TMP/runs/same.txt"; done
for ((i = 0; i < HANDOVERS; i++)); do ttfb "${NODE_URLS[$(( (i % 2) + 1 ))]}" "h$i" >>"$BENCH_TMP/runs/handover.txt"; done

python3 - "$BENCH_TMP/runs" "$OUT/cluster-latest.md" "$CONCURRENCY" "$DURATION" "$WARMUP" "$HANDOVERS" <<'PY'
import json, sys, time, subprocess
runs, out, conc, dur, warm, n = sys.argv[1:]
one = json.load(open(f"{runs}/one.json")); three = json.load(open(f"{runs}/three.json"))
def tps(r):
    return r["turns"]["per_sec"]
def pct(path):
    xs = sorted(float(x) * 1000 for x in open(path) if x.strip())
    q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
    return q(0.5), q(0.99), len(xs)
s50, s99, sn = pct(f"{runs}/same.txt"); h50, h99, hn = pct(f"{runs}/handover.txt")
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
t1, t3 = tps(one), tps(three)
lines = [
    "# chatkit-rs cluster benchmark", "",
    f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, rev {rev}; one Postgres, one mock (8 tokens, no delay); closed loop, concurrency {conc}, {dur} s after {warm} s warm-up.", "",
    "| setup | turns/s |", "|---|---|",
    f"| one instance, direct | {t1:.1f} |" if t1 is not None else "| one instance | see one.json |",
    f"| three instances behind nginx round robin | {t3:.1f} |" if t3 is not None else "| three instances | see three.json |",
    "", f"Ratio three/one: {t3 / t1:.2f} (all processes share the same 2 cores)." if t1 and t3 else "",
    "", "| turn | time to first byte p50 ms | p99 ms | turns |", "|---|---|---|---|",
    f"| on the instance that owns the thread | {s50:.2f} | {s99:.2f} | {sn} |",
    f"| on another instance (hand-over) | {h50:.2f} | {h99:.2f} | {hn} |",
    "", f"Hand-over cost (difference of medians): {h50 - s50:.2f} ms.",
]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
