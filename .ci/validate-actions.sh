#!/usr/bin/env bash
# Validates action.yml and every workflow with @action-validator/cli, and checks dependabot.yml.
set -euo pipefail
cd "$(dirname "$0")/.."

# The validator's schema predates `using: node24` (what this action runs on): check that value here,
# and validate the rest of action.yml with it mapped to node20.
grep -qE '^\s+using: node24$' action.yml || { echo "action.yml: runs.using must be node24" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/using: node24/using: node20/' action.yml > "$tmp/action.yml"
echo "action.yml"
npx --no-install action-validator "$tmp/action.yml"

count=0
for wf in .github/workflows/*.yml .github/workflows/*.yaml; do
  [ -f "$wf" ] || continue
  echo "$wf"
  npx --no-install action-validator "$wf"
  count=$((count + 1))
done
[ "$count" -gt 0 ] || { echo "no workflows found in .github/workflows" >&2; exit 1; }

node --input-type=module -e "
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
const d = parse(readFileSync('.github/dependabot.yml', 'utf8'));
const eco = new Set((d.updates ?? []).map((u) => u['package-ecosystem']));
if (d.version !== 2 || !eco.has('npm') || !eco.has('github-actions')) {
  console.error('.github/dependabot.yml: expected version 2 with npm and github-actions updates');
  process.exit(1);
}
"
echo "action.yml, $count workflows and dependabot.yml are valid."
