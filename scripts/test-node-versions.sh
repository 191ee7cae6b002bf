#!/usr/bin/env bash
# `npm run test:node-versions [-- [--all] [VERSION...]]`: the tests under other Node.js versions than
# the one installed, to back package.json's `engines`. Each VERSION (default `22.13.0 22 24`: the
# lowest 22 that engines allows, the newest 22.x and the newest 24.x; a major picks its newest
# release) is the npm package `node`, which carries the official binary, installed once per exact
# version into a cache directory. npm test then runs with that node first in PATH, so npm, tsx, tap
# and every process the tests start use it. By default a representative set of test files
# (configuration, store, session lifecycle, login, the real server process, single sign-on), about a minute a
# version; `--all` runs the whole suite. Prints one line per version and exits 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

cache=${NODE_VERSIONS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fastify-session-backend/node}
files=(test/config.test.ts test/store.test.ts test/session-lifecycle.test.ts test/login.test.ts test/server-process.test.ts test/sso.test.ts)
versions=()
for arg in "$@"; do
  case $arg in
    --all) files=() ;;
    *) versions+=("$arg") ;;
  esac
done
[ ${#versions[@]} -gt 0 ] || versions=(22.13.0 22 24)
if [ ${#files[@]} -gt 0 ]; then scope="${#files[@]} test files"; else scope='all test files'; fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
results=()
failed=0

fail () {
  echo "node-versions: $1" >&2
  results+=("node $2: FAILED ($1)")
  failed=1
}

for spec in "${versions[@]}"; do
  # The newest release matching the spec; `npm view` lists several when it is a range.
  exact=$(npm view "node@$spec" version --json 2>/dev/null | tr -d '[]", ' | grep -E '^[0-9]+\.[0-9]+\.[0-9]+$' | sort -V | tail -n 1)
  if [ -z "$exact" ]; then fail "no release of the npm package node matches $spec" "$spec"; continue; fi
  dir="$cache/$exact"
  bin="$dir/node_modules/node/bin"
  if [ ! -x "$bin/node" ]; then
    echo "node-versions: installing node@$exact into $dir"
    # Into a directory of this run's own, then renamed: another run may be filling the cache too.
    mkdir -p "$cache"
    partial=$(mktemp -d "$cache/.partial-$exact-XXXXXX")
    if ! npm install --prefix "$partial" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "node@$exact" >"$logs/install-$exact.log" 2>&1; then
      cat "$logs/install-$exact.log" >&2
      rm -rf "$partial"
      fail "npm install node@$exact failed" "v$exact"; continue
    fi
    mv -T "$partial" "$dir" 2>/dev/null || rm -rf "$partial"
  fi
  # What the tests will run on: node from PATH, and tsx (tap's loader for the .ts files) under it.
  seen=$(PATH="$bin:$PATH" node --version 2>&1)
  loader=$(PATH="$bin:$PATH" node_modules/.bin/tsx -e 'process.stdout.write(process.version)' 2>&1)
  if [ "$seen" != "v$exact" ] || [ "$loader" != "v$exact" ]; then
    fail "expected v$exact, node says $seen and tsx says $loader" "v$exact"; continue
  fi

  echo "node-versions: npm test on node v$exact ($scope)"
  log="$logs/test-$exact.log"
  start=$SECONDS
  PATH="$bin:$PATH" npm test -- --disable-coverage "${files[@]}" >"$log" 2>&1
  status=$?
  took=$((SECONDS - start))
  # tap ends its TAP stream with "# { total: N, pass: N, fail: N, ... }".
  summary=$(grep -E '^# \{ total: ' "$log" | tail -n 1)
  pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
  fails=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
  if [ "$status" -ne 0 ] || [ -z "$summary" ]; then
    grep -E '^\s*not ok ' "$log" >&2
    tail -n 40 "$log" >&2
    results+=("node v$exact, $scope: FAILED, exit $status, pass ${pass:-0}, fail ${fails:-?} (${took} s)")
    failed=1
  else
    results+=("node v$exact, $scope: pass ${pass:-0}, fail ${fails:-0} (${took} s)")
  fi
done

printf '%s\n' "${results[@]}"
exit "$failed"
