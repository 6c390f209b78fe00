// SPDX-License-Identifier: MIT
// Microbenchmarks of the row kernels: every format at every kernel level this CPU runs
// (the scalar reference included), on 65536 values that stay in cache, one thread.
// Names are OP/TYPE/ARCH, e.g. quantize/q4_k/avx2, with OP one of
//   quantize          the reference quantizer (what ggml's quantize_row_*_ref does)
//   quantize_imatrix  the importance-weighted quantizer (formats that use importance)
//   dequantize        back to float
//   partner           quantizing the other operand of a dot product to the partner format
//   dot               the dot product with a partner row
// and items_per_second counting values (Google Benchmark's average over the calls), plus
// best_items_per_second, the fastest single call (timed by the time stamp counter on x86,
// as ggml times it, with best_tsc_ticks_per_value beside it). Every buffer starts on a 64-byte
// boundary, as ggml's test-quantize-perf aligns its own (a std::vector's data is only 16-byte
// aligned, and where two rows start at different offsets within a cache line, wide loads straddle
// lines). See bench/README.md for turning the JSON output into a table.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <new>
#include <random>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "qmix/qmix.hpp"

namespace {

using namespace qmix;

constexpr std::int64_t values = 65536;
constexpr std::int64_t row_length = 4096;  // a multiple of every block size
constexpr std::int64_t rows = values / row_length;

/// An allocator whose blocks start on a 64-byte (cache line) boundary.
template <class T>
struct line_aligned {
    using value_type = T;
    static constexpr std::align_val_t alignment{64};
    line_aligned() = default;
    template <class U>
    line_aligned(const line_aligned<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), alignment)); }
    void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, alignment); }
    template <class U>
    bool operator==(const line_aligned<U>&) const noexcept {
        return true;
    }
    template <class U>
    bool operator!=(const line_aligned<U>&) const noexcept {
        return false;
    }
};
template <class T>
using buffer = std::vector<T, line_aligned<T>>;

/// The values the kernels are timed on (--data). The k-quant searches take data-dependent
/// paths, so their speed depends on it.
enum class data_set {
    ggml,     ///< ggml's test-quantize-perf: 0.1 + 2 cos(i + offset), offsets 0 and 1
    gaussian  ///< whisper-like weights: normal, sigma 0.02 (the other operand sigma 1)
};

data_set chosen_data = data_set::ggml;

struct inputs {
    buffer<float> x, y, importance;
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

/// The time stamp counter, read as ggml's test-quantize-perf reads it (rdtscp waits for the
/// instructions before it); steady_clock's nanoseconds where there is no counter.
std::uint64_t tsc_now() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    unsigned int core = 0;
    return __rdtscp(&core);
#else
    return std::uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count());
#endif
}

/// Ticks of tsc_now() per second, measured once against steady_clock over 50 ms.
double tsc_hz() {
    static const double hz = [] {
        using clock = std::chrono::steady_clock;
        const auto begin = clock::now();
        const std::uint64_t first = tsc_now();
        auto end = begin;
        while (end - begin < std::chrono::milliseconds(50)) end = clock::now();
        const std::uint64_t last = tsc_now();
        return double(last - first) / std::chrono::duration<double>(end - begin).count();
    }();
    return hz;
}

/// Times every call on its own and reports the fastest as the counter
/// best_items_per_second, next to Google Benchmark's average. ggml's test-quantize-perf
/// reports its fastest call too, and on a shared machine the fastest call is the figure
/// that other programs disturb least (bench/compare_ggml.sh compares the two). Where the CPU
/// has a time stamp counter, calls are timed by it as ggml times them (a steady_clock read
/// took 33 ns against rdtscp's 23 ns on Zen 3: 1% of a 2 us call), and
/// best_tsc_ticks_per_value gives the fastest call in ticks, which compare_ggml.py sets
/// against ggml's own count.
class fastest_call {
  public:
    void start() noexcept { begin_ = tsc_now(); }
    void stop() noexcept { best_ = std::min(best_, tsc_now() - begin_); }
    void report(benchmark::State& state) const {
        count_values(state);
        if (best_ == 0 || best_ == ~std::uint64_t(0)) return;
        const double ticks = double(best_) / double(values);
        state.counters["best_tsc_ticks_per_value"] = ticks;
        state.counters["best_items_per_second"] = tsc_hz() / ticks;
    }

  private:
    std::uint64_t begin_ = 0;
    std::uint64_t best_ = ~std::uint64_t(0);
};

void add(const std::string& op, type_id type, const kernels::kernel_table& table,
         void (*body)(benchmark::State&, type_id, const kernels::kernel_table*)) {
    const std::string name =
        op + "/" + std::string(type_name(type)) + "/" + std::string(table.name);
    benchmark::RegisterBenchmark(name.c_str(), body, type, &table);
}

void quantize_plain(benchmark::State& state, type_id type, const kernels::kernel_table* table) {
    buffer<unsigned char> out(row_size(type, row_length) * rows);
    fastest_call call;
    for (auto _ : state) {
        call.start();
        quantize(*table, type, data().x.data(), out.data(), rows, row_length);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
        call.stop();
    }
    call.report(state);
}

void quantize_imatrix(benchmark::State& state, type_id type, const kernels::kernel_table* table) {
    buffer<unsigned char> out(row_size(type, row_length) * rows);
    fastest_call call;
    for (auto _ : state) {
        call.start();
        quantize(*table, type, data().x.data(), out.data(), rows, row_length,
                 data().importance.data());
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
        call.stop();
    }
    call.report(state);
}

void dequantize_rows(benchmark::State& state, type_id type, const kernels::kernel_table* table) {
    buffer<unsigned char> packed(row_size(type, row_length) * rows);
    quantize(kernels::scalar_table(), type, data().x.data(), packed.data(), rows, row_length);
    buffer<float> out(values);
    fastest_call call;
    for (auto _ : state) {
        call.start();
        dequantize(*table, type, packed.data(), out.data(), rows, row_length);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
        call.stop();
    }
    call.report(state);
}

void quantize_partner(benchmark::State& state, type_id type, const kernels::kernel_table* table) {
    const type_id partner = info(type).dot_partner;
    buffer<unsigned char> out(row_size(partner, values));
    fastest_call call;
    for (auto _ : state) {
        call.start();
        quantize(*table, partner, data().y.data(), out.data(), 1, values);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
        call.stop();
    }
    call.report(state);
}

void dot_row(benchmark::State& state, type_id type, const kernels::kernel_table* table) {
    const type_id partner = info(type).dot_partner;
    buffer<unsigned char> x(row_size(type, values)), y(row_size(partner, values));
    quantize(kernels::scalar_table(), type, data().x.data(), x.data(), 1, values);
    quantize(kernels::scalar_table(), partner, data().y.data(), y.data(), 1, values);
    fastest_call call;
    for (auto _ : state) {
        call.start();
        float result = dot(*table, type, x.data(), y.data(), values);
        benchmark::DoNotOptimize(result);
        call.stop();
    }
    call.report(state);
}

}  // namespace

int main(int argc, char** argv) {
    if (!take_data_flag(argc, argv)) return 1;
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::AddCustomContext("qmix kernel levels", kernels::available_names());
#if defined(__x86_64__) || defined(__i386__)
    benchmark::AddCustomContext("qmix call timer", "tsc");
#else
    benchmark::AddCustomContext("qmix call timer", "steady_clock");
#endif
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
