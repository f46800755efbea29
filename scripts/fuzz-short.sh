#!/bin/sh
# Runs every fuzz target of the module for FUZZTIME (default 5s).
#
# A run fails when the fuzzer finds something: it then writes the input to
# testdata/fuzz/<target>/ and says "Failing input written to"; add that file
# to the seed corpus (it then runs in every `go test`) once it is fixed.
#
# Go's fuzz coordinator before Go 1.27 can also end a -fuzztime run with a
# bare "context deadline exceeded" when a worker is still running an input
# at the deadline (golang/go#75804): no input is written and nothing can be
# reproduced. Such a run is retried once; a second bare deadline is
# reported and not counted as a finding (the seed corpus still runs in every
# `go test`).
set -u
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5s}
status=0
for f in $(grep -rl --include='*_test.go' '^func Fuzz' .); do
	dir=$(dirname "$f")
	for t in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
		for attempt in 1 2; do
			echo "fuzz $dir $t ($FUZZTIME)"
			if out=$($GO test -run=NONE -fuzz="^$t\$" -fuzztime="$FUZZTIME" -fuzzminimizetime=1s "./$dir" 2>&1); then
				break
			fi
			if printf '%s\n' "$out" | grep -q 'context deadline exceeded' &&
				! printf '%s\n' "$out" | grep -q -e 'Failing input written' -e 'panic:' -e '_test.go:[0-9]*:'; then
				if [ $attempt = 1 ]; then
					echo "  $t ended with a bare deadline (golang/go#75804, no input found): retrying once"
					continue
				fi
				echo "  $t ended with a bare deadline again (golang/go#75804, no input found): not a finding"
				break
			fi
			# printf, not echo: dash's echo interprets backslashes in the output.
			printf '%s\n' "$out" | tail -60
			echo "  $t failed (exit status above)"
			status=1
			break
		done
	done
done
exit $status
