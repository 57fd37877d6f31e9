#!/usr/bin/env bash
# Instructions per stanza under callgrind, one implementation per valgrind run, counting only
# the work itself (`--toggle-collect` on the `measure` function of benches/callgrind.rs).
#
#   bash benches/callgrind.sh                    # every implementation
#   bash benches/callgrind.sh session baseline   # some of them
#   GROUPCHAT_CORPUS=traffic bash benches/callgrind.sh   # the recorded corpus (default: group)
#   GROUPCHAT_CORPUS=traffic GROUPCHAT_SUBSET=prosody,presence bash benches/callgrind.sh session
#       # parts of it, one after the other (`SUBSETS` in benches/src/lib.rs: prosody, ejabberd,
#       # live-message, archived-message, message-without-body, presence, iq)
#
# Profiles are left in target/callgrind/cg.CORPUS[.SUBSET].IMPL.out for `callgrind_annotate`.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(cargo bench -p groupchat-benches --bench callgrind --no-run 2>&1 |
    sed -n 's/.*Executable benches\/callgrind.rs (\(.*\))$/\1/p')
[ -x "$bin" ] || { echo "callgrind bench binary not found" >&2; exit 1; }
out=target/callgrind
mkdir -p "$out"

if [ $# -gt 0 ]; then
    impls=("$@")
else
    impls=(session session+ingest decode_stanza decode_stanza+ingest baseline baseline-read
        floor encode-ours encode-xso idle-1 idle-50 idle-500)
fi

corpus=${GROUPCHAT_CORPUS:-group}
IFS=, read -r -a subsets <<<"${GROUPCHAT_SUBSET:-}"
[ ${#subsets[@]} -gt 0 ] || subsets=("")
for subset in "${subsets[@]}"; do
    part=$corpus${subset:+.$subset}
    echo "corpus: $corpus${subset:+ (only $subset)}"
    printf '%-22s %15s %9s %12s\n' implementation instructions items per-item
    for impl in "${impls[@]}"; do
        log="$out/log.$part.$impl.txt"
        GROUPCHAT_CORPUS=$corpus GROUPCHAT_SUBSET=$subset valgrind --tool=callgrind \
            --toggle-collect='*callgrind::measure*' \
            --callgrind-out-file="$out/cg.$part.$impl.out" "$bin" "$impl" >"$log" 2>&1
        ir=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$log")
        items=$(awk -v p="$impl: " 'index($0, p) == 1 { print $2 }' "$log")
        awk -v i="$impl" -v ir="$ir" -v n="$items" \
            'BEGIN { printf "%-22s %15.0f %9d %12.1f\n", i, ir, n, ir / n }'
    done
done
