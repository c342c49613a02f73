#!/usr/bin/env bash
# Validates action.yml and every workflow with @action-validator/cli.
set -euo pipefail
cd "$(dirname "$0")/.."
# The validator's schema predates `using: node24` (what GitHub runs this action with):
# check that value here, and validate the rest of action.yml with it mapped to node20.
grep -qE '^\s+using: node24$' action.yml || { echo "action.yml must use node24"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/using: node24/using: node20/' action.yml > "$tmp/action.yml"
npx --no-install action-validator "$tmp/action.yml"
for wf in .github/workflows/*.yml; do
  [ -f "$wf" ] || continue
  npx --no-install action-validator "$wf"
done
node -e "require('yaml').parse(require('fs').readFileSync('.github/dependabot.yml', 'utf8'))"
echo "action.yml and workflows are valid."
