#!/usr/bin/env bash
# mypy over the one import package. Its services live in top-level folders (collector/,
# aggregator/, api/) that setuptools maps into trace_insights; mypy cannot follow that mapping,
# so it checks a tree of symlinks laid out as the package is installed, and the paths it
# reports are mapped back to the repository's.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/trace_insights"
for entry in trace_insights/*; do
  ln -s "$root/$entry" "$tree/trace_insights/"
done
for service in collector aggregator api; do
  ln -s "$root/$service" "$tree/trace_insights/$service"
done
cd "$tree"
status=0
"$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" -p trace_insights >"$tree/out" || status=$?
sed -E 's#^trace_insights/(collector|aggregator|api)/#\1/#' "$tree/out"
exit $status
