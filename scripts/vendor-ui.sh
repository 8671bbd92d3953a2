#!/usr/bin/env bash
# Fetches the dashboard's vendored libraries from the npm registry at the pinned versions and
# checks each tarball against the integrity hash npm publishes (docs/ui.md says why vendored).
# Run by hand when a version changes; the files are committed, so nothing is fetched at build
# or run time.
set -euo pipefail
cd "$(dirname "$0")/.."
fetch() {  # name version sha512-integrity files...
  local name=$1 version=$2 integrity=$3
  shift 3
  local dir="api/static/vendor/$name-$version" tmp
  tmp=$(mktemp -d)
  curl -fsSL -o "$tmp/package.tgz" "https://registry.npmjs.org/$name/-/$name-$version.tgz"
  local got="sha512-$(openssl dgst -sha512 -binary "$tmp/package.tgz" | base64 -w0)"
  if [ "$got" != "$integrity" ]; then
    echo "$name $version: integrity $got, expected $integrity" >&2
    exit 1
  fi
  tar -xzf "$tmp/package.tgz" -C "$tmp"
  mkdir -p "$dir"
  for file in "$@"; do cp "$tmp/package/$file" "$dir/"; done
  rm -rf "$tmp"
  echo "$dir: $*"
}
fetch uplot 1.6.32 \
  "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==" \
  dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE
