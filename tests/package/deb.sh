#!/usr/bin/env bash
# The Debian package end to end (run by .ci/run, as root): built by .ci/build-deb, installed
# with dpkg -i, the unit checked by systemd-analyze verify, then the installed binary started
# the way the unit starts it (its User, WorkingDirectory, EnvironmentFile, ExecStartPre and
# ExecStart lines read from the installed unit; no systemd runs here) with the installed
# configuration and the embedded PostgreSQL in /var/lib/chatkit-rs, talked to (healthz,
# readyz, a threads.create answered by the bundled mock model), stopped with SIGTERM, and
# removed with dpkg -r / --purge. Ends with "package: N passed, N failed".
#
# usage: tests/package/deb.sh [--no-build]   (--no-build: package the release binary as it is)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

source tests/package/lib.sh
tap_start package
[ "$(id -u)" = 0 ] || fail "dpkg -i needs root"

unit=/lib/systemd/system/chatkit-rs.service
work=$(mktemp -d)
chmod 755 "$work"
server_pid=
mock_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  # An embedded PostgreSQL left behind by a killed server.
  local data=/var/lib/chatkit-rs/chatkit-data/postgres
  if [ -f "$data/postmaster.pid" ]; then
    runuser -u chatkit-rs -- "$(pg_config --bindir)/pg_ctl" stop -D "$data" -m immediate >/dev/null 2>&1 || true
  fi
  [ -z "$mock_pid" ] || { kill -TERM "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true; }
  dpkg --purge chatkit-rs >/dev/null 2>&1 || true
  rm -rf /var/lib/chatkit-rs "$work"
  if getent passwd chatkit-rs >/dev/null; then deluser --system --quiet chatkit-rs >/dev/null 2>&1 || true; fi
  if getent group chatkit-rs >/dev/null; then delgroup --system --quiet chatkit-rs >/dev/null 2>&1 || true; fi
}
# A real installation is never replaced; one a test run left behind (its secret in the
# environment file) is removed first.
if dpkg -s chatkit-rs >/dev/null 2>&1 &&
  ! grep -q package-test-secret /etc/chatkit-rs/environment 2>/dev/null; then
  fail "chatkit-rs is installed on this machine: the package test would replace it"
fi
trap cleanup EXIT
cleanup
work=$(mktemp -d) && chmod 755 "$work"

# --- build and install -----------------------------------------------------------------------
deb=$(.ci/build-deb "$@" "$work/out" | tail -1)
[ -f "$deb" ] || fail "build-deb made no package"
info=$(dpkg-deb --info "$deb")
grep -q "Depends: .*libc6" <<<"$info" || fail "the package depends on libc6: $info"
ok "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

dpkg -i "$deb" > "$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; fail "dpkg -i"; }
for path in /usr/bin/chatkit-rs /etc/chatkit-rs/default.toml /etc/chatkit-rs/environment "$unit" \
  /usr/share/doc/chatkit-rs/README.md /usr/share/doc/chatkit-rs/nginx-two-instances.conf; do
  [ -f "$path" ] || fail "dpkg -i installed no $path"
done
cmp -s /etc/chatkit-rs/default.toml config/default.toml || fail "/etc/chatkit-rs/default.toml is config/default.toml"
ok "dpkg -i installed the binary, /etc/chatkit-rs/default.toml, the unit and the docs"

shell=$(getent passwd chatkit-rs | cut -d: -f7)
uid=$(id -u chatkit-rs)
[ "$uid" -ne 0 ] && [ "$uid" -lt 1000 ] || fail "chatkit-rs is a system user (uid $uid)"
[ "$shell" = /usr/sbin/nologin ] || fail "chatkit-rs has no login shell ($shell)"
[ "$(stat -c '%U:%G %a' /var/lib/chatkit-rs)" = "chatkit-rs:chatkit-rs 750" ] ||
  fail "/var/lib/chatkit-rs: $(stat -c '%U:%G %a' /var/lib/chatkit-rs)"
[ "$(stat -c '%U:%G %a' /etc/chatkit-rs/environment)" = "root:chatkit-rs 640" ] ||
  fail "/etc/chatkit-rs/environment: $(stat -c '%U:%G %a' /etc/chatkit-rs/environment)"
ok "postinst made the system user chatkit-rs (uid $uid, nologin), its data directory and the secrets file 0640"

# --- the unit ---------------------------------------------------------------------------------
verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $verify"
# Only complaints about this unit count (the host's other units are none of our business).
if grep -i "chatkit-rs" <<<"$verify"; then fail "systemd-analyze verify: $verify"; fi
directive() { sed -n "s/^$1=//p" "$unit"; }
for line in "User=chatkit-rs" "Restart=on-failure" "NoNewPrivileges=yes" "ProtectSystem=strict" \
  "ProtectHome=yes" "PrivateTmp=yes" "ReadWritePaths=/var/lib/chatkit-rs"; do
  grep -qx "$line" "$unit" || fail "the unit has $line"
done
ok "systemd-analyze verify passes; non-root user, Restart=on-failure, hardening"

# --- started as the unit starts it ------------------------------------------------------------
mock_bin="$CARGO_TARGET_DIR/debug/mock-llm"
[ -x "$mock_bin" ] || cargo build -q -p mock-llm --bin mock-llm
"$mock_bin" --port 0 > "$work/mock.out" 2>/dev/null &
mock_pid=$!
for _ in $(seq 1 100); do grep -q listening "$work/mock.out" && break; sleep 0.1; done
mock=$(sed -n 's|^listening on http://||p' "$work/mock.out")
[ -n "$mock" ] || fail "the mock model did not start"

# What an operator writes into the secrets file (loopback ports the test picks: port 0).
cat >> /etc/chatkit-rs/environment <<EOF
CHATKIT__AUTH__JWT_SECRET=package-test-secret-package-test-secret-0123
CHATKIT__MODEL__BASE_URL=http://$mock/v1
CHATKIT__SERVER__BIND=127.0.0.1:0
CHATKIT__METRICS__BIND=127.0.0.1:0
EOF
# systemd's view: the unit's user and working directory, no new privileges, a clean
# environment plus the EnvironmentFile's assignments. It execs: call it in a subshell, `( … )`
# or `… &` (whose pid is then the server's own: setpriv leaves no process in between).
as_unit() {
  local -a env=(PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
  while IFS= read -r line; do
    case "$line" in '' | '#'*) ;; *=*) env+=("$line") ;; esac
  done < "$(directive EnvironmentFile | sed 's/^-//')"
  local user
  user=$(directive User)
  cd "$(directive WorkingDirectory)"
  exec setpriv --reuid="$user" --regid="$(directive Group)" --init-groups --no-new-privs \
    env -i "${env[@]}" "$@"
}
# shellcheck disable=SC2046 # the unit's command line, split as systemd splits it (no quotes)
(as_unit $(directive ExecStartPre)) > "$work/check.out" 2>&1 || { cat "$work/check.out" >&2; fail "ExecStartPre (check-config)"; }
grep -q "configuration is valid" "$work/check.out" || fail "check-config: $(cat "$work/check.out")"
ok "ExecStartPre: check-config of the installed configuration, as chatkit-rs"

# shellcheck disable=SC2046
as_unit $(directive ExecStart) > "$work/server.out" 2> "$work/server.log" &
server_pid=$!
for _ in $(seq 1 600); do
  grep -q listening "$work/server.out" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
addr=$(sed -n 's|^listening on http://||p' "$work/server.out")
[ -n "$addr" ] || { tail -20 "$work/server.log" >&2; fail "the installed server did not start"; }
[ "$(stat -c %U /var/lib/chatkit-rs/chatkit-data/postgres)" = chatkit-rs ] ||
  fail "the embedded PostgreSQL is in /var/lib/chatkit-rs, owned by chatkit-rs"
ok "ExecStart: serving on $addr, the embedded PostgreSQL in /var/lib/chatkit-rs/chatkit-data as chatkit-rs"

token=$(as_unit /usr/bin/chatkit-rs --config /etc/chatkit-rs/default.toml dev-token --sub alice)
talk_to "$addr" "$token" "$work/turn.sse"
grep -q '"type":"thread.created"' "$work/turn.sse" ||
  fail "threads.create was not answered: $(head -c 2000 "$work/turn.sse")"
listed=$(curl -s "http://$addr/chatkit" -H "Authorization: Bearer $token" -d '{"type":"threads.list","params":{}}')
[ "$(jq '.data | length' <<<"$listed")" = 1 ] || fail "threads.list: $listed"
ok "healthz, readyz, a threads.create answered by the mock model and stored"

kill -TERM "$server_pid"
for _ in $(seq 1 600); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$server_pid" 2>/dev/null && fail "SIGTERM did not stop the server within 60 s"
wait "$server_pid" || fail "the server exited with $? on SIGTERM"
server_pid=
[ ! -f /var/lib/chatkit-rs/chatkit-data/postgres/postmaster.pid ] || fail "the embedded PostgreSQL still runs"
ok "SIGTERM: exit 0, the embedded PostgreSQL stopped"

# --- removal ----------------------------------------------------------------------------------
dpkg -r chatkit-rs > "$work/dpkg-r.log" 2>&1 || { cat "$work/dpkg-r.log" >&2; fail "dpkg -r"; }
[ ! -e /usr/bin/chatkit-rs ] && [ ! -e "$unit" ] || fail "dpkg -r left the binary or the unit"
[ -f /etc/chatkit-rs/default.toml ] || fail "dpkg -r keeps the configuration (conffiles)"
dpkg --purge chatkit-rs > "$work/dpkg-purge.log" 2>&1 || { cat "$work/dpkg-purge.log" >&2; fail "dpkg --purge"; }
[ ! -e /etc/chatkit-rs/default.toml ] || fail "dpkg --purge left /etc/chatkit-rs/default.toml"
ok "dpkg -r removes the binary and the unit, --purge the configuration"

tap_done
