#!/usr/bin/env python3
"""Turns qmix-bench's JSON output into markdown tables.

    build/bin/qmix-bench --benchmark_repetitions=3 --benchmark_format=json > bench.json
    python3 bench/table.py bench.json [--fastest] [--recorded-ggml [--floors]]

One table per operation (quantize, quantize_imatrix, dequantize, partner, dot): a row per
format, a column per kernel level (million values per second, the median of the
repetitions, or with --fastest the fastest single call in any of the inputs) and the best
level over the scalar reference. The fastest call is the steadier figure on a shared or
virtual machine; give it the outputs of several processes, since such a machine can run
slower for a while (BENCHMARKS.md, the Zen 4 notes on its two speeds). --recorded-ggml adds ggml's
figures recorded on another machine of the same kind (../shared/baselines.md) with each
level's ratio to them, --floors the project's first performance floors against those:
indicative only, since the two sides did not run together (bench/compare_ggml.sh runs both
in one run on the user's machine).
"""
import argparse
import json
import statistics
import sys
from collections import defaultdict

# ggml's test-quantize-perf on the project's reference machine (../shared/baselines.md):
# 65536 values, one thread, ggml built for AVX2 + FMA + F16C. Million values per second.
# "quantize" is ggml's reference quantizer (what qmix must reproduce byte for byte),
# "partner" the conversion of the other dot operand to q8_0 / q8_1 / q8_K / f16.
GGML = {
    "f16": {"quantize": 474, "dequantize": 725, "partner": 8904, "dot": 24873},
    "q4_0": {"quantize": 991, "dequantize": 2225, "partner": 5671, "dot": 26373},
    "q4_1": {"quantize": 1074, "dequantize": 1750, "partner": 3669, "dot": 28066},
    "q5_0": {"quantize": 431, "dequantize": 1062, "partner": 4345, "dot": 15077},
    "q5_1": {"quantize": 451, "dequantize": 1060, "partner": 2617, "dot": 16354},
    "q8_0": {"quantize": 276, "dequantize": 8609, "partner": 5686, "dot": 29356},
    "q2_k": {"quantize": 19, "dequantize": 1361, "partner": 1009, "dot": 46411},
    "q3_k": {"quantize": 237, "dequantize": 987, "partner": 1013, "dot": 28161},
    "q4_k": {"quantize": 16, "dequantize": 6810, "partner": 1011, "dot": 38108},
    "q5_k": {"quantize": 20, "dequantize": 5112, "partner": 1014, "dot": 24799},
    "q6_k": {"quantize": 41, "dequantize": 979, "partner": 1011, "dot": 29564},
}

# The floors the project set for its kernels (issue 3): (operation, formats, level, factor
# over ggml's figure).
FLOORS = [
    ("quantize", ["q8_0"], "avx2", 10.0),
    ("quantize", ["q4_0", "q4_1", "q5_0", "q5_1"], "avx2", 5.0),
    ("quantize", ["q2_k", "q3_k", "q4_k", "q5_k", "q6_k"], "avx2", 6.0),
    ("quantize", ["q2_k", "q3_k", "q4_k", "q5_k", "q6_k"], "avx512", 10.0),
    ("dequantize", ["q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q6_k", "f16"], "avx2", 3.0),
    ("dequantize", ["q8_0", "q4_k", "q5_k"], "avx2", 1.0),
    ("dot", list(GGML), "avx2", 0.9),
    ("dot", list(GGML), "avx512", 1.2),
]

OPERATIONS = ["quantize", "quantize_imatrix", "dequantize", "partner", "dot"]
TYPE_ORDER = ["f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q8_1",
              "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q8_k", "iq4_nl", "iq4_xs"]
LEVEL_ORDER = ["scalar", "sse2", "avx2", "avx512", "neon"]


DATA_SETS = {
    "ggml": "ggml's test-quantize-perf data, 0.1 + 2 cos(i) (what ggml's figures were measured on)",
    "gaussian": "Gaussian weights, sigma 0.02 (whisper-like); ggml's figures were measured on "
                "its own cosine data, so the ratios to them compare different inputs",
}


def read_rates(paths, fastest=False):
    """({(op, type, level): million values per second}, {data sets}): the median aggregate
    when the run had repetitions, else the median of the runs found; with fastest, the
    largest best_items_per_second of any run found."""
    medians, samples, data_sets = {}, defaultdict(list), set()
    for path in paths:
        with (sys.stdin if path == "-" else open(path)) as f:
            data = json.load(f)
        # Runs from before --data existed have no "qmix data" context: they used gaussian.
        data_sets.add(data.get("context", {}).get("qmix data", "gaussian"))
        for b in data.get("benchmarks", []):
            name = b.get("run_name", b["name"])
            if fastest:
                if b.get("run_type") != "aggregate" and "best_items_per_second" in b:
                    samples[name].append(b["best_items_per_second"] / 1e6)
                continue
            if "items_per_second" not in b:
                continue
            rate = b["items_per_second"] / 1e6
            if b.get("run_type") == "aggregate":
                if b.get("aggregate_name") == "median":
                    medians[name] = rate
            else:
                samples[name].append(rate)
    rates = {}
    for name in set(medians) | set(samples):
        parts = name.split("/")
        if len(parts) < 3:
            continue
        key = (parts[0], parts[1], parts[2])
        if fastest:
            rates[key] = max(samples[name])
        else:
            rates[key] = medians[name] if name in medians else statistics.median(samples[name])
    return rates, data_sets


def ordered(values, order):
    return sorted(values, key=lambda v: (order.index(v) if v in order else len(order), v))


def number(value):
    if value is None:
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def ratio(value):
    return "" if value is None else f"{value:.2f}x"


def table(rates, op, recorded_ggml):
    types = ordered({t for (o, t, _) in rates if o == op}, TYPE_ORDER)
    levels = ordered({l for (o, _, l) in rates if o == op}, LEVEL_ORDER)
    if not types:
        return []
    vector = [l for l in levels if l != "scalar"]
    with_ggml = recorded_ggml and op in ("quantize", "dequantize", "partner", "dot")
    header = ["type"] + levels + ["best / scalar"]
    if with_ggml:
        header += ["ggml"] + [f"{l} / ggml" for l in vector]
    lines = [f"### {op} (million values per second)", "",
             "| " + " | ".join(header) + " |",
             "| --- |" + " ---: |" * (len(header) - 1)]
    for t in types:
        row = [t] + [number(rates.get((op, t, l))) for l in levels]
        scalar = rates.get((op, t, "scalar"))
        best = max((rates[(op, t, l)] for l in vector if (op, t, l) in rates), default=None)
        row.append(ratio(best / scalar) if best and scalar else "")
        if with_ggml:
            ggml = GGML.get(t, {}).get(op)
            row.append(number(ggml))
            for l in vector:
                ours = rates.get((op, t, l))
                row.append(ratio(ours / ggml) if ours and ggml else "")
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def floors(rates):
    lines = ["### floors (ours / ggml, one thread)", "",
             "| operation | type | level | floor | measured | met |",
             "| --- | --- | --- | ---: | ---: | --- |"]
    for op, types, level, factor in FLOORS:
        for t in types:
            ours, ggml = rates.get((op, t, level)), GGML.get(t, {}).get(op)
            if ours is None or ggml is None:
                continue
            measured = ours / ggml
            lines.append(f"| {op} | {t} | {level} | {factor:g}x | {measured:.2f}x | "
                         f"{'yes' if measured >= factor else '**no**'} |")
    return lines + [""]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", help="qmix-bench JSON output files ('-' for stdin)")
    parser.add_argument("--recorded-ggml", action="store_true",
                        help="add ggml's figures recorded on another machine "
                             "(../shared/baselines.md) and the ratios to them; a ratio between "
                             "two runs is only indicative: bench/compare_ggml.sh measures both "
                             "sides in one run")
    parser.add_argument("--fastest", action="store_true",
                        help="the fastest single call (best_items_per_second) over all the "
                             "inputs instead of the median")
    parser.add_argument("--floors", action="store_true",
                        help="add the floors table (against the recorded figures)")
    args = parser.parse_args()
    rates, data_sets = read_rates(args.json, args.fastest)
    if not rates:
        sys.exit("table.py: no OP/TYPE/LEVEL benchmarks with "
                 + ("best_items_per_second" if args.fastest else "items_per_second")
                 + " in the input")
    if len(data_sets) > 1:
        sys.exit("table.py: the inputs were measured on different data (--data): "
                 + ", ".join(sorted(data_sets)))
    (data_set,) = data_sets
    out = [f"Input data (`qmix-bench --data={data_set}`): {DATA_SETS.get(data_set, data_set)}.", ""]
    for op in OPERATIONS:
        out += table(rates, op, args.recorded_ggml)
    if args.floors:
        out += floors(rates)
    print("\n".join(out))


if __name__ == "__main__":
    main()
