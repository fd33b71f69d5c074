#!/bin/sh
# Mutation testing of the core's protocol files with the simulator sweep as
# the only test: a mutant survives when seeds 0..SIM_MUTANT_SEEDS (200) of
# the default swarm sweep show no violation. Results:
# target/mutants/<file>/mutants.out/ (caught.txt, missed.txt, timeout.txt).
#
#   sim/mutants.sh                       # the four files below, in order
#   sim/mutants.sh core/src/client/inbox.rs   # one file
#   MUTANTS_ARGS=--shuffle sim/mutants.sh core/src/server/routing.rs
#                                        # a random order (for a partial run)
#
# Each mutant costs a release build of core and sim plus the sweep (about a
# minute on two cores); a mutant that hangs is cut off by --timeout. The
# baseline is skipped: cargo-mutants would run it in the mutated package
# (core), which has no such test; the sweep test passes unmutated.
set -eu
cd "$(dirname "$0")/.."
# One target directory for every run: dependencies are built once, only
# core and sim are rebuilt per mutant.
CARGO_TARGET_DIR="$(pwd)/target/mutants-target"
export CARGO_TARGET_DIR
files=${*:-"core/src/client/inbox.rs core/src/server/member.rs core/src/server/events.rs core/src/server/routing.rs"}
for f in $files; do
    out="target/mutants/$(basename "$f" .rs)"
    mkdir -p "$out"
    cargo mutants --package switchboard-core --file "$f" \
        --test-package switchboard-sim --profile release --cargo-arg=--config=profile.release.debug=0 \
        --cargo-arg=--test=mutants_sweep \
        --baseline skip --jobs 1 --timeout "${MUTANT_TIMEOUT:-150}" --build-timeout 600 \
        --output "$out" ${MUTANTS_ARGS:-} \
        -- -- --ignored || true
    echo "== $f: $(cat "$out/mutants.out/caught.txt" 2>/dev/null | wc -l) caught," \
        "$(cat "$out/mutants.out/missed.txt" 2>/dev/null | wc -l) missed," \
        "$(cat "$out/mutants.out/timeout.txt" 2>/dev/null | wc -l) timeout," \
        "$(cat "$out/mutants.out/unviable.txt" 2>/dev/null | wc -l) unviable"
done
