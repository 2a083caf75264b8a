#!/usr/bin/env bash
# Creates, once, the Python venv holding the official ChatKit SDK (requirements.txt beside this
# script) and prints the path of its python on stdout; everything else goes to stderr.
#
#   PY=$(tests/sdk_validator/ensure_venv.sh) && "$PY" tests/sdk_validator/validate.py
#
# The venv lives at ${CHATKIT_SDK_VENV:-/var/tmp/chatkit-sdk-venv}. It is reused while the
# stamp file inside it holds the sha256 of requirements.txt, and rebuilt from scratch when the
# requirements change. Safe to call from several processes at once (one builds under flock, the
# others wait and then reuse it). Python: ${PYTHON:-python3}, 3.10 or newer.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
venv="${CHATKIT_SDK_VENV:-/var/tmp/chatkit-sdk-venv}"
py="$venv/bin/python"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

is_ready() {
    [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]
}

# Fast path: the stamp is written last and atomically, so no lock is needed to trust it.
if is_ready; then
    echo "$py"
    exit 0
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if is_ready; then # another process built it while we waited
    echo "$py"
    exit 0
fi

if [[ -e "$venv" ]]; then
    # Stale or half-built: rebuild, but never delete a directory that is not a venv.
    if [[ -n "$(ls -A "$venv")" && ! -f "$venv/pyvenv.cfg" ]]; then
        echo "ensure_venv.sh: $venv exists and is not a venv; set CHATKIT_SDK_VENV elsewhere" >&2
        exit 1
    fi
    rm -rf "$venv"
fi

echo "ensure_venv.sh: creating $venv (openai-chatkit and pinned dependencies)" >&2
"${PYTHON:-python3}" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
    echo "ensure_venv.sh: ${PYTHON:-python3} is older than 3.10 (openai-chatkit needs >= 3.10)" >&2
    exit 1
}
"${PYTHON:-python3}" -m venv "$venv" >&2
# --no-deps + pip check: requirements.txt is the full pinned closure; if a dependency is ever
# missing from it, fail loudly instead of letting pip pick an unpinned version.
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$req" >&2
"$venv/bin/pip" check --disable-pip-version-check >&2
"$py" -c 'import chatkit.types' >&2

echo "$want" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
echo "$py"
