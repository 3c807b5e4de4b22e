#!/usr/bin/env bash
# A bounded schemathesis run over `murakkab serve`'s OpenAPI document: zero 5xx allowed.
#
# It starts a real `murakkab serve` on 127.0.0.1 with two deployments served by the instant engine
# (murakkab_lg.testing.instant_engine; synthetic profiles, labelled so), fetches /openapi.json and
# lets schemathesis generate valid and invalid requests for every operation (a few hundred cases,
# seeded). Every response must be a non-5xx that matches the documented status codes, content
# types and schemas. Exits non-zero on any failure.
#
# Usage: bash scripts/schemathesis_run.sh [MAX_EXAMPLES_PER_OPERATION]   (default 60)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
EXAMPLES="${1:-60}"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -INT "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$("$PY" - "$WORK" <<'PYEOF'
import sys
from pathlib import Path

import yaml

from murakkab_lg.backends.engines.llamacpp import free_port
from murakkab_lg.catalog.profiles import ProfileFile, write_profile_file
from murakkab_lg.testing.instant_engine import instant_deployments, synthetic_profiles

work = Path(sys.argv[1])
deps = instant_deployments(["fast", "smart"])
store = synthetic_profiles(deps, {"fast": {"classify": 0.6, "answer": 0.5}, "smart": {"classify": 0.9, "code": 0.8}})
write_profile_file(work / "profiles.json", ProfileFile(produced_by="schemathesis_run (synthetic)", profiles=tuple(store)))
(work / "serve.yaml").write_text(yaml.safe_dump({
    "deployments": [d.model_dump(mode="json") for d in deps], "profiles": ["profiles.json"],
    "engine_factory": "murakkab_lg.testing.instant_engine:engine_factory", "default": "fast",
    "warm": ["fast", "smart"],
}))
print(free_port())
PYEOF
)"

"$PY" -m murakkab_lg.cli serve --config "$WORK/serve.yaml" --port "$PORT" --log-level warning \
  >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
  if "$PY" -c "import httpx,sys; sys.exit(httpx.get('http://127.0.0.1:$PORT/health').status_code != 200)" 2>/dev/null; then
    break
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log"; exit 1; }
  sleep 0.2
done

SCHEMATHESIS="$(dirname "$PY")/schemathesis"
[ -x "$SCHEMATHESIS" ] || SCHEMATHESIS="schemathesis"
set +e
cd "$WORK"  # schemathesis keeps replay data in ./.schemathesis: keep it out of the checkout
"$SCHEMATHESIS" run "http://127.0.0.1:$PORT/openapi.json" \
  --checks all --exclude-checks "${SCHEMATHESIS_EXCLUDE:-positive_data_acceptance}" \
  --max-examples "$EXAMPLES" --seed 20250101 --workers 1 --no-color \
  --generation-database none --request-timeout 30 \
  --suppress-health-check too_slow,filter_too_much,data_too_large
RC=$?
set -e
if [ $RC -ne 0 ]; then
  echo "--- murakkab serve log ---"
  tail -50 "$WORK/serve.log"
fi
exit $RC
