#!/usr/bin/env bash
# Install Claude Code and Codex CLI for the system tests outside the repository, once per lock.
#
# Usage: tests/system/agents/install.sh      prints the directory whose node_modules/.bin holds
#                                            `claude` and `codex`
#
# The directory is ${NEXUS_AGENTS_DIR:-~/.cache/nexus-trio/agents}/<16 hex digits of the lock's
# sha256>: `npm ci` runs only when the lock changed (or nothing is there yet), into a staging
# directory renamed into place when complete. Both packages carry their program as a native
# binary in a per-platform optional dependency, which `npm ci` installs. Install scripts stay
# off (--ignore-scripts) but one: Claude Code's own postinstall (install.cjs), which puts its
# native binary over the placeholder its `claude` command is until then. Both commands must
# answer `--version` before the directory is renamed into place. Needs npm only then; exits 3
# when it is missing. Run by .ci/run and, when needed, by tests/system/test_coding_agents.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key=$(sha256sum "$here/package-lock.json" | cut -c1-16)
dir=${NEXUS_AGENTS_DIR:-$HOME/.cache/nexus-trio/agents}/$key
installed() { [ -f "$dir/node_modules/.bin/claude" ] && [ -f "$dir/node_modules/.bin/codex" ]; }

if ! installed; then
    if ! command -v npm >/dev/null; then
        echo "npm not found: cannot install Claude Code and Codex CLI into $dir" >&2
        exit 3
    fi
    mkdir -p "$(dirname "$dir")"
    stage=$(mktemp -d "$dir.XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    cp "$here/package.json" "$here/package-lock.json" "$stage/"
    npm ci --prefix "$stage" --ignore-scripts --no-audit --no-fund --loglevel=error >&2
    node "$stage/node_modules/@anthropic-ai/claude-code/install.cjs" >&2
    # each command runs here, with a throwaway home: a missing native binary fails now
    home=$(mktemp -d "$stage/home.XXXXXX")
    for agent in claude codex; do
        HOME=$home CODEX_HOME=$home DISABLE_AUTOUPDATER=1 \
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
            "$stage/node_modules/.bin/$agent" --version >&2
    done
    rm -rf "$home"
    # a concurrent install may have finished meanwhile: then its copy is as good as ours
    installed || { rm -rf "$dir"; mv -T "$stage" "$dir" 2>/dev/null || installed; }
fi
echo "$dir"
