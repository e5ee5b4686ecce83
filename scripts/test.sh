#!/usr/bin/env bash
# The test suite, from a clean clone: installs what is missing (idempotent), then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The browser test drives Debian's Chromium through Playwright; without them it skips with a reason.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "note: chromium could not be installed; the browser test will skip"
fi
. .venv/bin/activate
set +e
python -m pytest -p no:cacheprovider -rs "$@"
rc=$?
set -e
# pytest's 5 means "no tests collected": never a pass.
exit $rc
