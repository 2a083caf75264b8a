#!/usr/bin/env bash
# uploads.sh — what many large uploads at once cost chatkit-rs in memory (release build, its
# own schema in a private PostgreSQL with production durability): N clients (default 50), each
# a different user, each uploading one file of M MiB (default 20) at the same moment through
# the two-phase flow (attachments.create, then the multipart POST to the signed URL). Server
# RSS is sampled every 50 ms; every upload must be answered 200 and every byte stored.
# Writes results/uploads-latest.md.
#
# Usage: benches/uploads.sh [--clients N] [--mib M] [--out DIR] [--no-build] [--keep-tmp]
#          [--fast-pg]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENTS=50 MIB=20 NO_BUILD=0
OUT="$BENCH_DIR/results"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --clients) CLIENTS="$2"; shift 2 ;;
    --mib) MIB="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    --fast-pg) FAST_PG=1; shift ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
done
trap bench_cleanup EXIT
if [[ $NO_BUILD -eq 0 ]]; then
  log "building (release): chatkit-rs"
  (cd "$REPO_DIR" && cargo build --release -q -p chatkit-rs) || die "cargo build failed"
fi
NO_BUILD=1 bench_setup
start_pg
# No turn runs here: the model is never called.
MOCK_URL="http://127.0.0.1:9"
BYTES=$((MIB * 1048576))
start_chatkit uploads CHATKIT__ATTACHMENTS__MAX_BYTES="$BYTES" \
  CHATKIT__ATTACHMENTS__MAX_BYTES_PER_USER=0 CHATKIT__ATTACHMENTS__UPLOAD_TIMEOUT_SECS=600

FILE="$BENCH_TMP/upload.png"
python3 - "$FILE" "$BYTES" <<'PY'
import os, sys
path, size = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8))
PY

# token SUB: an HS256 JWT for SUB, valid one hour.
token() {
  python3 - "$JWT_SECRET" "$1" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
secret, sub = sys.argv[1], sys.argv[2]
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": sub, "exp": int(time.time()) + 3600}).encode())
sig = b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
}

# upload N: one client's two-phase upload; writes its HTTP status to $RUNS/status-N.
upload() {
  local n="$1" tok url
  tok="$(token "uploader-$n")"
  url="$(curl -sS -H "authorization: Bearer $tok" -H 'content-type: application/json' \
    --data "{\"type\":\"attachments.create\",\"params\":{\"name\":\"u$n.png\",\"size\":$BYTES,\"mime_type\":\"image/png\"}}" \
    "$CK_URL/chatkit" | python3 -c 'import json,sys; print(json.load(sys.stdin)["upload_descriptor"]["url"])')"
  curl -sS -o "$RUNS/answer-$n.json" -w '%{http_code}' -F "file=@$FILE;type=image/png" "$url" \
    >"$RUNS/status-$n" 2>"$RUNS/curl-$n.err" || echo "curl-failed" >"$RUNS/status-$n"
}

log "warm-up: one upload of $MIB MiB"
upload warm
[[ "$(cat "$RUNS/status-warm")" == 200 ]] || die "the warm-up upload failed: $(cat "$RUNS/answer-warm.json")"
sleep 1
BASE_KIB="$(rss_kib "$CK_PID")"

SAMPLES="$RUNS/rss.tsv"
touch "$RUNS/sampling"
( while [[ -e "$RUNS/sampling" ]]; do rss_kib "$CK_PID" >>"$SAMPLES"; sleep 0.05; done ) &
SAMPLER=$!

log "$CLIENTS clients upload $MIB MiB each, all at once"
START="$(date +%s.%N)"
CLIENT_PIDS=()
for ((i = 0; i < CLIENTS; i++)); do upload "$i" & CLIENT_PIDS+=($!); done
for pid in "${CLIENT_PIDS[@]}"; do wait "$pid" || true; done
END="$(date +%s.%N)"
rm -f "$RUNS/sampling"
wait "$SAMPLER" 2>/dev/null || true
server_alive chatkit-rs "$CK_PID" "$BENCH_TMP/logs/chatkit-uploads.err" || die "the server died"

OK=0
for ((i = 0; i < CLIENTS; i++)); do [[ "$(cat "$RUNS/status-$i")" == 200 ]] && OK=$((OK + 1)); done
STORED="$(psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d chatkit -Atqc \
  "SELECT count(*) || ' ' || coalesce(sum(size), 0) FROM bench_uploads.attachments WHERE user_id LIKE 'uploader-%' AND user_id <> 'uploader-warm' AND uploaded_at IS NOT NULL")"
PEAK_KIB="$(sort -n "$SAMPLES" | tail -1)"
SECS="$(echo "$END - $START" | bc -l)"
TOTAL_MIB=$((CLIENTS * MIB))

REPORT="$OUT/uploads-latest.md"
{
  echo "# Uploads at once: memory ($(date -u +%Y-%m-%d), $(nproc) cores, Postgres $(pg_durability))"
  echo
  echo "Command: \`benches/uploads.sh --clients $CLIENTS --mib $MIB\`"
  echo
  echo "| figure | value |"
  echo "|---|---|"
  echo "| clients (one user each), file size | $CLIENTS × $MIB MiB = $TOTAL_MIB MiB |"
  echo "| answered 200 | $OK of $CLIENTS |"
  echo "| stored (attachments, bytes) | $STORED |"
  echo "| wall time | $(printf '%.1f' "$SECS") s ($(echo "$TOTAL_MIB / $SECS" | bc -l | xargs printf '%.0f') MiB/s) |"
  echo "| server RSS before | $((BASE_KIB / 1024)) MiB |"
  echo "| server RSS peak during (50 ms samples) | $((PEAK_KIB / 1024)) MiB |"
  echo "| peak − before | $(((PEAK_KIB - BASE_KIB) / 1024)) MiB for $TOTAL_MIB MiB in flight ($(((PEAK_KIB - BASE_KIB) / CLIENTS)) KiB per upload) |"
} >"$REPORT"
cat "$REPORT"
[[ "$OK" == "$CLIENTS" ]] || die "$((CLIENTS - OK)) uploads failed (see $RUNS)"
