#!/usr/bin/env bash
# Keeps two rules of the tests from regressing (issue 18); scripts/test runs it first.
#
#  1. No silent skips. A test that prints why it cannot run and returns passes without
#     testing anything, so a green CI may have tested nothing. Rust tests decline through
#     their test-support module's `cannot_run(why)`, which fails under CI=true and prints
#     "SKIPPED <test>: <why>" elsewhere; Python tests through `cannot_run(reason)` of
#     tests/simulator/helpers.py or tests/system/conftest.py. Flagged: a `println!`/`eprintln!`
#     statement directly followed by `return`, and `pytest.skip`/`skipif` outside
#     `cannot_run` (unless marked `# allow-skip: <why>`).
#  2. No fixed sleeps as synchronisation: wait for the event (a socket, a file, a process
#     state, a log line) or poll with a deadline. Every `sleep(` in test code needs an
#     `allow-sleep: <why>` comment on its line or in the comment lines right above it: the
#     poll interval of a deadline loop, or time passing that is itself the behaviour under
#     test ("idle past the timeout", "nothing happens for N ms").
#
# Test code: */tests/**/*.rs, mocks/*/tests/**/*.rs, `#[cfg(test)] mod` blocks of src/
# files (rustfmt's layout: the block ends at the `}` on the `mod` line's indentation), and
# tests/**/*.py except the benchmarks in tests/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.rs' '*.py' | sort -u)

status=0
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  case "$f" in
    tests/bench/*) continue ;;
    */tests/*.rs | tests/*.py) whole=1 ;;
    *.rs) grep -q '#\[cfg(test)\]' "$f" || continue; whole=0 ;;
    *) continue ;;
  esac
  awk -v whole="$whole" -v py="$([[ $f == *.py ]] && echo 1 || echo 0)" '
    function report(msg) { printf "%s:%d: %s\n", FILENAME, FNR, msg; bad = 1 }
    BEGIN { intest = whole }
    {
      line = $0
      code = line; sub(/^[ \t]+/, "", code)
      # Where the #[cfg(test)] modules of a src/ file start and end.
      if (!whole) {
        if (pend && code ~ /^(pub(\([a-z]+\))? )?mod [A-Za-z0-9_]+ *\{/) {
          intest = 1; match(line, /^[ \t]*/); close_at = substr(line, 1, RLENGTH) "}"
        } else if (intest && line == close_at) {
          intest = 0
        }
        if (code ~ /^#\[cfg\(test\)\]/) pend = 1
        else if (code !~ /^#\[/) pend = 0
      }
      if (!intest) next
      comment = py ? (code ~ /^#/) : (code ~ /^\/\//)
      if (comment) { if (code ~ /allow-sleep:/) allow = 1; next }
      if (code == "") next
      # Rule 1 (Rust): the statement after a print is a return.
      if (after_print && code ~ /^return([ ;]|$)/)
        report("silent skip: a print followed by `return` (use the crate'"'"'s cannot_run)")
      after_print = 0
      if (!py && code ~ /^e?println!/) printing = 1
      if (printing && code ~ /;[ \t]*(\/\/.*)?$/) { printing = 0; after_print = 1 }
      # Rule 1 (Python): skips go through cannot_run.
      if (py && code ~ /^def cannot_run\(/) in_cannot_run = 1
      else if (py && line ~ /^[^ \t#]/) in_cannot_run = 0
      if (py && line ~ /pytest\.skip\(|skipif/ && line !~ /allow-skip:/ && !in_cannot_run)
        report("pytest skip outside cannot_run (or mark it `# allow-skip: <why>`)")
      # Rule 2: sleeps carry their reason.
      if (line ~ /sleep\(/ && line !~ /allow-sleep:/ && !allow)
        report("sleep without an `allow-sleep: <why>` comment (wait for the event or poll with a deadline)")
      allow = 0
    }
    END { exit bad }
  ' "$f" || status=1
done
if [ "$status" != 0 ]; then
  echo "scripts/check-tests.sh: see the rules at the top of this script" >&2
fi
exit "$status"
