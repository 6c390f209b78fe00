// SPDX-License-Identifier: MIT
// Microbenchmarks of the row kernels: every format at every kernel level this CPU runs
// (the scalar reference included), on 65536 values that stay in cache, one thread.
// Names are OP/TYPE/ARCH, e.g. quantize/q4_k/avx2, with OP one of
//   quantize          the reference quantizer (what ggml's quantize_row_*_ref does)
//   quantize_imatrix  the importance-weighted quantizer (formats that use importance)
//   dequantize        back to float
//   partner           quantizing the other operand of a dot product to the partner format
//   dot               the dot product with a partner row
// and items_per_second counting values. See bench/README.md for turning the JSON output
// into a table.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "qmix/qmix.hpp"

namespace {

using namespace qmix;

constexpr std::int64_t values = 65536;
constexpr std::int64_t row_length = 4096;  // a multiple of every block size
constexpr std::int64_t rows = values / row_length;

/// The values the kernels are timed on (--data). The k-quant searches take data-dependent
/// paths, so their speed depends on it.
enum class data_set {
    ggml,     ///< ggml's test-quantize-perf: 0.1 + 2 cos(i + offset), offsets 0 and 1
    gaussian  ///< whisper-like weights: normal, sigma 0.02 (the other operand sigma 1)
};

data_set chosen_data = data_set::ggml;

struct inputs {
    std::vector<float> x, y, importance;
    inputs() : x(values), y(values), importance(row_length) {
        std::mt19937 rng(12345);
        if (chosen_data == data_set::ggml) {
            for (std::int64_t i = 0; i < values; ++i) {
                x[std::size_t(i)] = float(0.1 + 2 * std::cos(float(i)));
                y[std::size_t(i)] = float(0.1 + 2 * std::cos(float(i) + 1.0f));
            }
        } else {
            std::normal_distribution<float> gauss(0.0f, 0.02f);
            for (auto& v : x) v = gauss(rng);
            for (auto& v : y) v = gauss(rng) * 50.0f;
        }
        std::uniform_real_distribution<float> weight(0.0f, 1.0f);
        for (auto& v : importance) v = weight(rng);
    }
};

const inputs& data() {
    static const inputs d;
    return d;
}

/// Takes --data=ggml|gaussian out of argv (Google Benchmark rejects flags it does not
/// know). Returns false on a bad value.
bool take_data_flag(int& argc, char** argv) {
    const std::string prefix = "--data=";
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg.rfind(prefix, 0) != 0) {
            argv[kept++] = argv[i];
            continue;
        }
        const std::string value = arg.substr(prefix.size());
        if (value == "ggml") {
            chosen_data = data_set::ggml;
        } else if (value == "gaussian") {
            chosen_data = data_set::gaussian;
        } else {
            std::fprintf(stderr, "qmix-bench: --data takes ggml or gaussian, not '%s'\n",
                         value.c_str());
            return false;
        }
    }
    argc = kept;
    return true;
}

void count_values(benchmark::State& state) {
    state.SetItemsProcessed(std::int64_t(state.iterations()) * values);
}

void add(const std::string& op, type_id type, const kernels::kernel_table& table,
         void (*body)(benchmark::State&, type_id, const kernels::kernel_table*)) {
    const std::string name =
        op + "/" + std::string(type_name(type)) + "/" + std::string(table.name);
    benchmark::RegisterBenchmark(name.c_str(), body, type, &table);
}

void quantize_plain(benchmark::State& state, type_id type, const kernels::kernel_table* table) {
    std::vector<unsigned char> out(row_size(type, row_length) * rows);
    for (auto _ : state) {
        quantize(*table, type, data().x.data(), out.data(), rows, row_length);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    count_values(state);
}

void quantize_imatrix(benchmark::State& state, type_id type, const kernels::kernel_table* table) {
    std::vector<unsigned char> out(row_size(type, row_length) * rows);
    for (auto _ : state) {
        quantize(*table, type, data().x.data(), out.data(), rows, row_length,
                 data().importance.data());
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    count_values(state);
}

void dequantize_rows(benchmark::State& state, type_id type, const kernels::kernel_table* table) {
    std::vector<unsigned char> packed(row_size(type, row_length) * rows);
    quantize(kernels::scalar_table(), type, data().x.data(), packed.data(), rows, row_length);
    std::vector<float> out(values);
    for (auto _ : state) {
        dequantize(*table, type, packed.data(), out.data(), rows, row_length);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    count_values(state);
}

void quantize_partner(benchmark::State& state, type_id type, const kernels::kernel_table* table) {
    const type_id partner = info(type).dot_partner;
    std::vector<unsigned char> out(row_size(partner, values));
    for (auto _ : state) {
        quantize(*table, partner, data().y.data(), out.data(), 1, values);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    count_values(state);
}

void dot_row(benchmark::State& state, type_id type, const kernels::kernel_table* table) {
    const type_id partner = info(type).dot_partner;
    std::vector<unsigned char> x(row_size(type, values)), y(row_size(partner, values));
    quantize(kernels::scalar_table(), type, data().x.data(), x.data(), 1, values);
    quantize(kernels::scalar_table(), partner, data().y.data(), y.data(), 1, values);
    for (auto _ : state) {
        float result = dot(*table, type, x.data(), y.data(), values);
        benchmark::DoNotOptimize(result);
    }
    count_values(state);
}

}  // namespace

int main(int argc, char** argv) {
    if (!take_data_flag(argc, argv)) return 1;
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::AddCustomContext("qmix kernel levels", kernels::available_names());
    benchmark::AddCustomContext("qmix data", chosen_data == data_set::ggml ? "ggml" : "gaussian");
    for (const type_info& t : type_table) {
        for (const kernels::kernel_table* table : kernels::available_tables()) {
            add("quantize", t.id, *table, quantize_plain);
            if (t.uses_importance) add("quantize_imatrix", t.id, *table, quantize_imatrix);
            add("dequantize", t.id, *table, dequantize_rows);
            if (t.has_dot) {
                add("partner", t.id, *table, quantize_partner);
                add("dot", t.id, *table, dot_row);
            }
        }
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
