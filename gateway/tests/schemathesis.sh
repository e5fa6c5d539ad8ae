#!/usr/bin/env bash
# Fuzzes a running gateway from its own OpenAPI document with schemathesis (from PyPI), with
# every check but one: zero 5xx, status codes, content types, headers and bodies as
# documented, schema-invalid data refused, authentication enforced. The one left out,
# positive_data_acceptance, asks that every schema-valid request be accepted: a webhook URL
# is refused (422) when its host resolves to a private or special-purpose address or to
# nothing, which no schema can say.
#
#   gateway/tests/schemathesis.sh BASE_URL TOKEN [MORE st run OPTIONS…]
#
# The virtual environment lives under target/ (created on first use). Exit code 3 means
# python3/pip/venv are unavailable; any other non-zero code is a failure.
set -euo pipefail
base_url=${1:?base url}
token=${2:?bearer token}
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="${CARGO_TARGET_DIR:-$root/target}/schemathesis-venv"
version=4.32.5
examples=${SCHEMATHESIS_MAX_EXAMPLES:-25}

command -v python3 >/dev/null || { echo "python3 is not installed"; exit 3; }
if [ ! -x "$venv/bin/st" ] || ! "$venv/bin/pip" show schemathesis 2>/dev/null | grep -q "^Version: $version$"; then
  python3 -m venv "$venv" || { echo "python3 cannot create a venv"; exit 3; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version" || { echo "pip cannot install schemathesis"; exit 3; }
fi

# schemathesis keeps a cache in its working directory: keep it under target/, out of the tree.
cd "$venv"
# `use_after_free` is left out: DELETE /agents/{id} retires an agent, and a retired agent stays
# readable (status `retired`, with its history) as the audit needs; it is never matched again.
exec "$venv/bin/st" run "$base_url/openapi.json" \
  --url "$base_url" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --exclude-checks positive_data_acceptance,use_after_free \
  --max-examples "$examples" \
  --request-timeout 20 \
  --seed 1 \
  --no-color \
  "${@:3}"
