#!/bin/sh
# The long fuzzing run (issue 13): every target up to 10 million executions
# (or --seconds); the minimized corpus is written back to test/fuzz/corpus/
# (commit it), crashes and hangs go to test/fuzz/crashes/.
# Prints per target: executions, executions/s, coverage (blocks, features),
# corpus, crashes, hangs, slowest input, heap peak/end.
#   test/fuzz/long-run.sh [--execs N] [--seconds S] [--jobs J] [--targets a,b]
set -eu
cd "$(dirname "$0")/../.."
[ -f dist/test/fuzz/fuzz.js ] || npx tsc -p tsconfig.json
exec node dist/test/fuzz/fuzz.js --execs 10000000 --seconds 7200 --save "$@"
