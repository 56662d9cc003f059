#!/usr/bin/env bash
# Instructions per job on the hot paths, counted by valgrind's callgrind,
# which repeats on a shared machine where clocks do not: each pool runs A
# (jobs spawned from outside) and B (a fan-out tree spawned from inside) at
# two sizes, one worker, in benches/instructions.rs; the difference over
# the difference in jobs is the marginal cost per job, start-up and
# shutdown cancelled out.
#
#   bash benches/callgrind.sh                 # priopool, rayon spawn, threadpool, two-channel
#   bash benches/callgrind.sh priopool        # the pools named
#
# Needs valgrind (apt-get install -y valgrind). About a minute per pool.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(cargo bench --bench instructions --no-run 2>&1 | grep -o 'target/release/deps/instructions-[0-9a-f]*' | head -1)
[ -x "$bin" ] || { echo "could not build benches/instructions.rs" >&2; exit 1; }

count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$@" 2>&1 |
        awk '/Collected :/ { gsub(",", "", $4); print $4 }'
}

# marginal <scenario> <pool> <small> <big> <jobs between them>
marginal() {
    local small big
    small=$(count "$1" "$2" "$3")
    big=$(count "$1" "$2" "$4")
    echo $(((big - small) / $5))
}

pools=("$@")
[ ${#pools[@]} -gt 0 ] || pools=("priopool" "rayon spawn" "threadpool" "two-channel")
printf '%-14s %8s %8s\n' "instr/job" "A" "B"
for pool in "${pools[@]}"; do
    a=$(marginal A "$pool" 50000 150000 100000)
    # Depth 14 to 16: 2^17 - 2^15 = 98,304 more jobs.
    b=$(marginal B "$pool" 14 16 98304)
    printf '%-14s %8s %8s\n' "$pool" "$a" "$b"
done
