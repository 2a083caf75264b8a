#!/usr/bin/env bash
# The container image end to end (run by .ci/run, as root): built by .ci/build-image with
# podman, run against a throwaway PostgreSQL on a loopback port and the bundled mock model
# (host network, loopback addresses only), talked to (healthz, readyz, a threads.create
# answered), stopped with SIGTERM (exit 0), the image removed. Ends with
# "image: N passed, N failed".
#
# usage: tests/package/image.sh [--no-build]
# Runtime flags: runc, and rlimits within the host's (this sandbox refuses crun in hybrid
# cgroup mode, and raising RLIMIT_NOFILE/NPROC); podman's defaults work on ordinary hosts.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

source tests/package/lib.sh
tap_start image
[ "$(id -u)" = 0 ] || fail "needs root (the throwaway PostgreSQL runs as postgres)"
command -v podman >/dev/null || fail "podman is not installed"

run_flags=(--runtime runc --network host --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
name=chatkit-image-test-$$
work=$(mktemp -d /var/tmp/chatkit-image-test.XXXXXX)
chmod 755 "$work"
pg_bin=$(pg_config --bindir)
image=
mock_pid=
cleanup() {
  podman stop --time 60 "$name" >/dev/null 2>&1 || true
  podman rm --force "$name" >/dev/null 2>&1 || true
  [ -z "$image" ] || podman rmi --force "$image" >/dev/null 2>&1 || true
  [ -z "$mock_pid" ] || { kill -TERM "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true; }
  if [ -f "$work/pg/postmaster.pid" ]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" stop -D "$work/pg" -m fast -w >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

image=$(.ci/build-image "$@" | tail -1)
size=$(podman image inspect --format '{{.Size}}' "$image")
[ "$(podman image inspect --format '{{.Config.User}}' "$image")" = 65532:65532 ] || fail "the image runs as 65532"
ok "built $image ($((size / 1024 / 1024)) MiB, user 65532)"

# A throwaway PostgreSQL on a loopback port.
pg_port=$(free_port)
install -d -o postgres -m 0700 "$work/pg"
runuser -u postgres -- "$pg_bin/initdb" -D "$work/pg" -U chatkit --auth=trust --no-sync >/dev/null
runuser -u postgres -- "$pg_bin/pg_ctl" start -D "$work/pg" -l "$work/pg/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories='$work/pg' -c fsync=off" >/dev/null

mock_bin="$CARGO_TARGET_DIR/debug/mock-llm"
[ -x "$mock_bin" ] || cargo build -q -p mock-llm --bin mock-llm
"$mock_bin" --port 0 > "$work/mock.out" 2>/dev/null &
mock_pid=$!
for _ in $(seq 1 100); do grep -q listening "$work/mock.out" && break; sleep 0.1; done
mock=$(sed -n 's|^listening on http://||p' "$work/mock.out")
[ -n "$mock" ] || fail "the mock model did not start"

podman run "${run_flags[@]}" --name "$name" \
  -e CHATKIT__DATABASE__URL="host=127.0.0.1 port=$pg_port user=chatkit dbname=postgres" \
  -e CHATKIT__AUTH__JWT_SECRET=image-test-secret-image-test-secret-0123456 \
  -e CHATKIT__MODEL__BASE_URL="http://$mock/v1" \
  -e CHATKIT__SERVER__BIND=127.0.0.1:0 -e CHATKIT__METRICS__BIND=127.0.0.1:0 \
  "$image" > "$work/server.out" 2> "$work/server.log" &
podman_pid=$!
for _ in $(seq 1 600); do
  grep -q listening "$work/server.out" 2>/dev/null && break
  kill -0 "$podman_pid" 2>/dev/null || break
  sleep 0.1
done
addr=$(sed -n 's|^listening on http://||p' "$work/server.out")
[ -n "$addr" ] || { tail -20 "$work/server.log" >&2; fail "the container did not start"; }
ok "the container serves on $addr against PostgreSQL on 127.0.0.1:$pg_port"

token=$(podman run "${run_flags[@]}" --rm -e CHATKIT__AUTH__JWT_SECRET=image-test-secret-image-test-secret-0123456 \
  "$image" dev-token --sub alice)
talk_to "$addr" "$token" "$work/turn.sse"
ok "healthz, readyz, a threads.create answered by the mock model"

podman stop --time 60 "$name" >/dev/null
status=$(podman inspect --format '{{.State.ExitCode}}' "$name")
[ "$status" = 0 ] || fail "SIGTERM: exit $status"
ok "podman stop (SIGTERM): exit 0"

tap_done
