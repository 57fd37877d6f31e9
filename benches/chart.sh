#!/usr/bin/env bash
# Draws docs/benchmarks.svg from benchmark output: bars of our figures against the baselines.
#
#   benches/chart.sh CALLGRIND_OUTPUT E2E_OUTPUT > docs/benchmarks.svg
#
# CALLGRIND_OUTPUT: what `benches/callgrind.sh session baseline floor` printed (one
#   "corpus: NAME" section per corpus, rows "implementation instructions items per-item");
#   run it once per corpus (GROUPCHAT_CORPUS=traffic for the recorded one) into one file.
# E2E_OUTPUT: what `cargo bench -p groupchat-benches --bench e2e_receive` printed (its
#   markdown table "| server | receiver | CPU µs / message (median) | …").
# benches/data/ keeps the outputs the checked-in chart was drawn from.
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,12p' "$0" >&2; exit 2; }

awk -v e2e="$2" '
function label(impl) {
    if (impl == "session") return "groupchat"
    if (impl == "baseline") return "tokio-xmpp + xmpp-parsers"
    if (impl == "floor") return "quick-xml floor"
    return impl
}
# Decode: instructions per stanza, from the callgrind output (first file).
FNR == NR && /^corpus:/ { corpus = $2; next }
FNR == NR && NF == 4 && $4 ~ /^[0-9.]+$/ && ($1 == "session" || $1 == "baseline" || $1 == "floor") {
    n++; group[n] = "decode, " (corpus == "traffic" ? "recorded traffic" : "first corpus")
    name[n] = label($1); value[n] = $4; unit[n] = "instructions / stanza"; ours[n] = ($1 == "session")
    next
}
FNR == NR { next }
END {
    # End to end: CPU per message, from the e2e table (second file).
    while ((getline line < e2e) > 0) {
        if (line !~ /^\| (Prosody|ejabberd) \|/) continue
        split(line, c, "|")
        server = c[2]; recv = c[3]; cpu = c[4]
        gsub(/^ +| +$|\*/, "", server); gsub(/^ +| +$|\*/, "", recv); gsub(/^ +| +$|\*/, "", cpu)
        if (recv ~ /^sdk/) recv = "groupchat"
        n++; group[n] = "end to end, " server; name[n] = recv; value[n] = cpu
        unit[n] = "CPU µs / message"; ours[n] = (recv == "groupchat")
    }
    # Layout: one block per group, bars scaled to the largest value of the block.
    W = 760; left = 230; barmax = 420; row = 22; y = 40
    body = ""
    for (i = 1; i <= n; i++) if (value[i] > maxv[group[i]]) maxv[group[i]] = value[i]
    for (i = 1; i <= n; i++) {
        if (group[i] != last) {
            y += 14
            body = body sprintf("<text x=\"10\" y=\"%d\" class=\"h\">%s (%s, lower is better)</text>\n", y, group[i], unit[i])
            y += 10; last = group[i]
        }
        w = value[i] / maxv[group[i]] * barmax
        body = body sprintf("<text x=\"%d\" y=\"%d\" class=\"l\" text-anchor=\"end\">%s</text>\n", left - 8, y + 14, name[i])
        body = body sprintf("<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"16\" class=\"%s\"/>\n", left, y + 2, w, ours[i] ? "o" : "b")
        body = body sprintf("<text x=\"%.1f\" y=\"%d\" class=\"l\">%s</text>\n", left + w + 6, y + 14, value[i])
        y += row
    }
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, y + 20, W, y + 20
    print "<style>.h{font-weight:bold}.o{fill:#2a7ab0}.b{fill:#b8b8b8}</style>"
    print "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
    print "<text x=\"10\" y=\"24\" class=\"h\" font-size=\"14\">groupchat against its baselines (benches/chart.sh)</text>"
    printf "%s", body
    print "</svg>"
}
' "$1"
