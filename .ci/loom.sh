#!/usr/bin/env bash
# Model-checks the pool's protocols with loom: the models in
# src/loom_tests/, limits::loom_models (src/limits.rs) and
# queue::levels::loom_models (src/queue/levels/loom_models.rs), run against
# the real sleep/wake, shutdown, pick-rule and dynamic-pool code built with
# `--cfg loom` (see src/sync.rs and src/queue/deque.rs).
#
#   bash .ci/loom.sh                        # every model
#   bash .ci/loom.sh model_2 --nocapture    # the models named *model_2*,
#                                           # with their interleaving counts
#
# Arguments go to the test harness (default: the three filters below).
#
# LOOM_MAX_PREEMPTIONS bounds how many times loom may preempt a thread in one
# interleaving (default 4 here). Some models cap it lower themselves: those
# with two workers and another thread at 1, the one with two pushers (1c)
# at 2, the shutdown races (2, 2b) and the pool-level dynamic-pool model at 3,
# the reserved-thread models (8, 8b: one worker, one reserved thread and the
# caller) at 1, the promotion models (9 to 9c) at 4 and 9d (two promotions)
# at 3 (see the constants in src/loom_tests/ and the models in
# src/queue/levels.rs).
# On 2 cores the models take about a minute, plus 40 s to 1.5 min for a cold
# build; models 7 and 7b (a scope's count and wake-up) take about 9 s of it,
# models 9 to 9d (promotion) about 10 s.
#
# Its own target directory (LOOM_TARGET_DIR, default target/loom) keeps the
# cfg(loom) build from invalidating the normal one.
set -euo pipefail
cd "$(dirname "$0")/.."

# Warnings are errors here too: clippy never builds the cfg(loom) code (the
# stand-in queues of src/queue/deque.rs), so this is its only lint.
export RUSTFLAGS="--cfg loom -D warnings"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-4}"
if [ "$#" -eq 0 ]; then
    set -- loom_tests:: limits::loom_models:: queue::levels::loom_models::
fi
exec cargo test --release -p priopool --lib --target-dir "${LOOM_TARGET_DIR:-target/loom}" -- "$@"
