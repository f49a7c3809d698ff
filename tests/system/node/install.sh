#!/usr/bin/env bash
# Install the Node openai SDK for the system tests outside the repository, once per lock file.
#
# Usage: tests/system/node/install.sh      prints the directory whose node_modules holds the SDK
#
# The directory is ${NEXUS_NODE_DIR:-~/.cache/nexus-trio/node}/<16 hex digits of the lock's
# sha256>: `npm ci` runs only when the lock changed (or nothing is there yet), into a staging
# directory renamed into place when complete. Needs npm only then; exits 3 when it is missing.
# Run by .ci/run and, when needed, by the session fixture of tests/system/test_node_sdk.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key=$(sha256sum "$here/package-lock.json" | cut -c1-16)
dir=${NEXUS_NODE_DIR:-$HOME/.cache/nexus-trio/node}/$key
installed() { [ -f "$dir/node_modules/openai/package.json" ]; }

if ! installed; then
    if ! command -v npm >/dev/null; then
        echo "npm not found: cannot install the Node openai SDK into $dir" >&2
        exit 3
    fi
    mkdir -p "$(dirname "$dir")"
    stage=$(mktemp -d "$dir.XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    cp "$here/package.json" "$here/package-lock.json" "$stage/"
    npm ci --prefix "$stage" --ignore-scripts --no-audit --no-fund --loglevel=error >&2
    # a concurrent install may have finished meanwhile: then its copy is as good as ours
    installed || { rm -rf "$dir"; mv -T "$stage" "$dir" 2>/dev/null || installed; }
fi
echo "$dir"
