# Shared by deb.sh and image.sh (sourced): numbered checks ending with the one summary line
# "NAME: N passed, N failed", and the conversation every installed server must hold.

# tap_start NAME: the summary line's name; the count starts at 0.
tap_start() {
  tap_name=$1
  passed=0
}

ok() {
  passed=$((passed + 1))
  echo "ok $passed - $*"
}

fail() {
  echo "not ok - $*" >&2
  echo "$tap_name: $passed passed, 1 failed"
  exit 1
}

tap_done() {
  echo "$tap_name: $passed passed, 0 failed"
}

# talk_to ADDR TOKEN OUT: /healthz and /readyz answer 200, and a threads.create streams an
# assistant message (the stream is left in OUT).
talk_to() {
  local addr=$1 token=$2 out=$3
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/healthz")" = 200 ] || fail "GET /healthz"
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/readyz")" = 200 ] || fail "GET /readyz"
  curl -sN "http://$addr/chatkit" -H "Authorization: Bearer $token" \
    -d '{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"Hello!"}],"attachments":[],"inference_options":{}}}}' \
    >"$out"
  grep -q '"type":"assistant_message"' "$out" ||
    fail "threads.create was not answered: $(head -c 2000 "$out")"
}
