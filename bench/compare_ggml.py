#!/usr/bin/env python3
"""Side-by-side table of qmix-bench and ggml's test-quantize-perf, plus an SVG chart.

    python3 bench/compare_ggml.py --qmix 'q*.json' --ggml-avx2 'a*.txt' --ggml-native 'n*.txt' \
        --svg ratios.svg [--machine TEXT]

Driven by bench/compare_ggml.sh, which builds ggml, runs both programs on one core in
interleaved rounds and passes every round's output here. Each figure is the best of the
rounds in million values per second.
qmix's avx2 level is set against ggml built for AVX2 + FMA + F16C, qmix's best level
(avx512, or avx2 on a CPU without AVX-512) against ggml built with -march=native. Both
sides are the fastest single call (ggml's test-quantize-perf reports its minimum cycle
count, qmix-bench its best_items_per_second): on a shared machine the averages carry other
programs' interference. Where qmix-bench timed its calls by the time stamp counter too (x86:
best_tsc_ticks_per_value), its figure is converted with the counter frequency calibrated
from ggml's output, so each ratio is the quotient of the two programs' tick counts, the
same clock read the same way. Only the Python standard library is used.
"""
import argparse
import glob
import json
import re
import sys
from collections import defaultdict

# ggml's operation names in test-quantize-perf -> qmix-bench's.
GGML_OPS = {
    "quantize_row_q_reference": "quantize",
    "dequantize_row_q": "dequantize",
    "quantize_row_q_dot": "partner",
    "vec_dot_q": "dot",
}
OPS = ["quantize", "dequantize", "dot", "partner"]
CHART_OPS = ["quantize", "dequantize", "dot"]
TYPE_ORDER = ["f16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0",
              "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs", "bf16"]
BUILDS = ["ggml_avx2", "ggml_native"]


def pairs(rates):
    """[(qmix level, ggml build)]: avx2 against ggml's AVX2 build, and the best level qmix
    ran (avx512 where the CPU has it, else avx2) against ggml's -march=native build."""
    best = "avx512" if any(level == "avx512" for _, _, level in rates) else "avx2"
    return [("avx2", "ggml_avx2"), (best, "ggml_native")]


def read_ggml(paths):
    """{(op, type): million values per second} from test-quantize-perf outputs.

    test-quantize-perf prints, per operation, the minimum and the mean time stamp counter
    cycles per 32 values over its iterations and a throughput from the mean wall time. On
    a shared machine the mean carries every preemption, so the figure used is the minimum
    (the least disturbed call), like qmix-bench's CPU-time rates; the counter's frequency
    is calibrated from the same output (mean cycles over mean time, median of the entries
    long enough to time well). Best of the rounds."""
    best, frequencies = {}, []
    for path in paths:
        entries, type_name, op, entry = [], None, None, None
        with open(path) as f:
            for line in f:
                stripped = line.strip()
                if not line.startswith(" ") and stripped:
                    type_name, op = stripped.lower(), None
                elif stripped in GGML_OPS:
                    op = GGML_OPS[stripped]
                elif ":" in stripped and type_name and op:
                    label, value = (part.strip() for part in stripped.split(":", 1))
                    number_text = re.match(r"[0-9.]+", value)
                    if not number_text:
                        continue
                    if label.startswith("min cycles"):
                        entry = {"key": (op, type_name), "min": float(number_text.group())}
                    elif label.startswith("avg cycles") and entry:
                        entry["avg"] = float(number_text.group())
                    elif label.startswith("float32 throughput") and entry:
                        entry["gib"] = float(number_text.group())
                        entries.append(entry)
                        entry = None
        calibrations = sorted(e["avg"] / 32 * e["gib"] * (1 << 30) / 4
                              for e in entries if e["gib"] >= 0.5)
        if not calibrations:
            sys.exit(f"compare_ggml.py: {path}: no entry to calibrate the cycle counter with")
        tsc_hz = calibrations[len(calibrations) // 2]
        frequencies.append(tsc_hz)
        for e in entries:
            rate = tsc_hz / (e["min"] / 32) / 1e6
            best[e["key"]] = max(best.get(e["key"], 0.0), rate)
    frequencies.sort()
    return best, frequencies[len(frequencies) // 2]


def read_qmix(paths):
    """From qmix-bench JSON outputs: {(op, type, level): best million values per second} and
    {(op, type, level): fewest time stamp counter ticks per value} (empty unless qmix-bench
    timed its calls by the counter)."""
    best, ticks, data_sets = {}, {}, set()
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        context = data.get("context", {})
        data_sets.add(context.get("qmix data", "gaussian"))
        by_tsc = context.get("qmix call timer") == "tsc"
        for b in data.get("benchmarks", []):
            if b.get("run_type") == "aggregate" or "items_per_second" not in b:
                continue
            parts = b.get("run_name", b["name"]).split("/")
            if len(parts) < 3:
                continue
            key = (parts[0], parts[1], parts[2])
            # The fastest call when qmix-bench reports it (as ggml's figure is), else the
            # average rate.
            rate = b.get("best_items_per_second", b["items_per_second"])
            best[key] = max(best.get(key, 0.0), rate / 1e6)
            if by_tsc and "best_tsc_ticks_per_value" in b:
                t = b["best_tsc_ticks_per_value"]
                ticks[key] = min(ticks.get(key, t), t)
    if data_sets != {"ggml"}:
        sys.exit("compare_ggml.py: qmix-bench must run with --data=ggml (ggml's own data); "
                 "found " + ", ".join(sorted(data_sets)))
    return best, ticks


def number(v):
    return "" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")


def rows(qmix, ggml, matched):
    """[(op, type, {ggml build: (ours, theirs, ratio)})] for every figure present."""
    rates, ticks = qmix
    out = []
    for op in OPS:
        for t in TYPE_ORDER:
            cells = {}
            for level, build in matched:
                figures, tsc_hz = ggml[build]
                key = (op, t, level)
                ours = tsc_hz / ticks[key] / 1e6 if key in ticks else rates.get(key)
                theirs = figures.get((op, t))
                if ours and theirs:
                    cells[build] = (ours, theirs, ours / theirs)
            if cells:
                out.append((op, t, cells))
    return out


def markdown(table, matched):
    lines = [f"| op | type | ggml avx2 | qmix {matched[0][0]} | ratio | ggml native | "
             f"qmix {matched[1][0]} | ratio |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for op, t, cells in table:
        row = [op, t]
        for build in BUILDS:
            if build in cells:
                ours, theirs, r = cells[build]
                mark = "**" if r < 1.0 else ""
                row += [number(theirs), number(ours), f"{mark}{r:.2f}x{mark}"]
            else:
                row += ["", "", ""]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def below_one(table, matched):
    lines = []
    for op, t, cells in table:
        for level, build in matched:
            if build in cells and cells[build][2] < 1.0:
                ours, theirs, r = cells[build]
                lines.append(f"- {op} {t} {level}: {ours:,.0f} vs {theirs:,.0f} "
                             f"(ggml {build.split('_')[1]} build) = {r:.2f}x")
    return lines


def svg(table, title, matched):
    """A horizontal bar chart of ours / ggml on a log scale, one group per op and type."""
    items = [(op, t, cells) for op, t, cells in table if op in CHART_OPS]
    colours = {"ggml_avx2": "#4c78a8", "ggml_native": "#f58518"}
    bar, gap, left, width = 9, 6, 150, 560
    top = 56
    height = top + len(items) * (2 * bar + gap) + 40
    import math
    lo, hi = math.log10(0.25), math.log10(64)

    def x(r):
        v = min(max(math.log10(r), lo), hi)
        return left + (v - lo) / (hi - lo) * width

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" '
           f'height="{height}" font-family="sans-serif" font-size="11">',
           f'<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
           f'<text x="10" y="36">qmix / ggml, one thread, 65536 values, log scale; '
           f'right of the red line qmix is faster</text>']
    for tick in [0.25, 0.5, 1, 2, 4, 8, 16, 32, 64]:
        tx = x(tick)
        colour = "#d62728" if tick == 1 else "#dddddd"
        out.append(f'<line x1="{tx:.1f}" y1="{top - 6}" x2="{tx:.1f}" y2="{height - 34}" '
                   f'stroke="{colour}" stroke-width="{1.5 if tick == 1 else 1}"/>')
        out.append(f'<text x="{tx:.1f}" y="{height - 20}" text-anchor="middle">{tick:g}x</text>')
    y = top
    for op, t, cells in items:
        out.append(f'<text x="{left - 8}" y="{y + bar + 3}" text-anchor="end">{op} {t}</text>')
        for i, build in enumerate(BUILDS):
            by = y + i * bar
            if build not in cells:
                continue
            r = cells[build][2]
            x0, x1 = x(min(r, 1.0)), x(max(r, 1.0))
            out.append(f'<rect x="{x0:.1f}" y="{by}" width="{max(x1 - x0, 1):.1f}" '
                       f'height="{bar - 1}" fill="{colours[build]}"/>')
            out.append(f'<text x="{x1 + 3:.1f}" y="{by + bar - 2}" font-size="9">{r:.2f}</text>')
        y += 2 * bar + gap
    legend_y = height - 6
    out.append(f'<rect x="{left}" y="{legend_y - 9}" width="10" height="9" '
               f'fill="{colours["ggml_avx2"]}"/>')
    out.append(f'<text x="{left + 14}" y="{legend_y}">qmix {matched[0][0]} / ggml AVX2+FMA+F16C '
               f'build</text>')
    out.append(f'<rect x="{left + 260}" y="{legend_y - 9}" width="10" height="9" '
               f'fill="{colours["ggml_native"]}"/>')
    out.append(f'<text x="{left + 274}" y="{legend_y}">qmix {matched[1][0]} / ggml -march=native '
               f'build</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def expand(patterns):
    paths = []
    for p in patterns:
        found = sorted(glob.glob(p))
        if not found:
            sys.exit(f"compare_ggml.py: nothing matches {p}")
        paths += found
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qmix", nargs="+", required=True, help="qmix-bench JSON files")
    parser.add_argument("--ggml-avx2", nargs="+", required=True)
    parser.add_argument("--ggml-native", nargs="+", required=True)
    parser.add_argument("--svg", help="write the chart of ratios here")
    parser.add_argument("--machine", default="", help="a line naming the machine")
    args = parser.parse_args()
    qmix = read_qmix(expand(args.qmix))
    ggml = {"ggml_avx2": read_ggml(expand(args.ggml_avx2)),
            "ggml_native": read_ggml(expand(args.ggml_native))}
    for build, (figures, _) in ggml.items():
        if not figures:
            sys.exit(f"compare_ggml.py: no figures in the {build} output")
    matched = pairs(qmix[0])
    table = rows(qmix, ggml, matched)
    if not table:
        sys.exit("compare_ggml.py: qmix and ggml have no figure in common")
    print("Million values per second: the fastest call of each program (qmix-bench's "
          "best_items_per_second; ggml's minimum cycle count), best of the rounds; "
          "ratio = qmix / ggml (bold: below 1.0x).\n")
    print("\n".join(markdown(table, matched)))
    slow = below_one(table, matched)
    print("\nBelow 1.0x:" if slow else "\nNo ratio below 1.0x.")
    if slow:
        print("\n".join(slow))
    if args.svg:
        title = "qmix vs ggml" + (f" on {args.machine}" if args.machine else "")
        with open(args.svg, "w") as f:
            f.write(svg(table, title, matched))


if __name__ == "__main__":
    main()
