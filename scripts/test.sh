#!/usr/bin/env bash
# `make test`: the whole suite, in two pytest runs at once.
#
# Usage: scripts/test.sh PYTHON INSTALL_REST [PYTEST_ARGS...]
# INSTALL_REST is the command that installs what only the rest of the suite needs (Debian
# packages, the browser SDK); the Python environment and the weights are ready before.
#
# The sampled Qwen test (tests/test_judge_qwen.py, one question per bank, ~4-5 CPU minutes on
# one thread) needs nothing but Python and the weights, so it starts first, while INSTALL_REST
# downloads (on a fresh machine a minute or two of mostly waiting on the network). It runs
# beside the rest at the lowest CPU priority: the rest spends most of the two cores' time
# waiting (real-time audio, browsers), and the Qwen test soaks that up, as the scoring worker
# does beside live interviews, so it adds no wall time. The exhaustive check of the judge,
# every question of every bank, is bench/demo_order.py (~36 CPU minutes), outside the suite.
# Its output is printed when both are done; the exit status fails if either failed.
# Each run prints its 25 slowest tests (--durations), so drift shows in CI logs.
# With PYTEST_ARGS (make test PYTEST_ARGS=...): INSTALL_REST, then one plain pytest run.
set -uo pipefail
python=$1
install_rest=$2
shift 2
if [ $# -gt 0 ]; then
	$install_rest || exit 1
	exec "$python" -m pytest -q -ra --durations=25 "$@"
fi

base=$(mktemp -d -t interviewer-qwen-test.XXXXXX)
nice -n 19 "$python" -m pytest -q -ra --durations=25 -m qwen_sample -p no:cacheprovider \
	--basetemp "$base/tmp" >"$base/log" 2>&1 &
qwen_pid=$!
trap 'kill "$qwen_pid" 2>/dev/null; rm -rf "$base"' EXIT

if ! $install_rest; then
	echo "== failed to install what the suite needs ($install_rest)"
	exit 1
fi
# Two pytest workers, a test file each at a time: most of the suite waits on the clock (real-time
# audio, browsers), so two files at once nearly halve the wall time (25.6 -> 12.5 min here).
"$python" -m pytest -q -ra --durations=25 -n 2 --dist loadfile -m "not qwen_sample"
main=$?

echo "== waiting for the sampled Qwen test (started beside the suite, at nice 19)"
wait "$qwen_pid"
qwen=$?
cat "$base/log"
if [ "$main" -ne 0 ] || [ "$qwen" -ne 0 ]; then
	echo "== failed: the suite exited $main, the sampled Qwen test $qwen"
	exit 1
fi
