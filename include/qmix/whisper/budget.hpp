// SPDX-License-Identifier: MIT
#pragma once

// Types chosen under a size budget (qmix-quantize --target-size / --target-bpw): each free
// matrix (no --tensor-type rule decides it) gets the candidate type that, over the whole
// model, gives the smallest total weighted error while the output file stays within the
// budget.
//
// The error of a tensor under a type is measured: the squared error of the dequantized
// result against the input, divided by the tensor's energy (the sum of its squared values),
// times the tensor's weight (--tensor-weight PATTERN=W, default 1). Large tensors are
// measured on evenly spaced rows (at most `sample_values` values per tensor).
//
// The choice is a multiple-choice knapsack, solved in these steps (choose_under_budget):
//   1. Lagrangian relaxation: each tensor's candidates reduced to their lower convex hull in
//      the (bytes, error) plane, and the hull steps taken in order of error saved per byte
//      while they fit. This is the optimum of the relaxed problem when the last step is taken
//      in part, which gives a lower bound on the best error any choice can reach.
//   2. Filling: while any single tensor's change of type lowers the error and fits in what
//      is left of the budget, the change that lowers it most.
//   3. Exchange: a tensor moved to a better type while another is moved to a smaller one, the
//      pair that lowers the error most, until no pair does (then filling again).
//   4. Steps 2 and 3 are also run from the choice of an exact dynamic programme over the
//      budget cut into at least 4096 steps (sizes rounded up, so that choice always fits),
//      and from every uniform choice that fits; the best result wins.
// So the result is never worse than any uniform choice that fits; tests/test_budget.cpp
// compares it with an exhaustive search.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qmix/core/error.hpp"
#include "qmix/core/ftype.hpp"
#include "qmix/formats/registry.hpp"
#include "qmix/ops.hpp"
#include "qmix/parallel.hpp"
#include "qmix/rules/regex.hpp"
#include "qmix/rules/rules.hpp"
#include "qmix/whisper/loader.hpp"
#include "qmix/whisper/model_file.hpp"
#include "qmix/whisper/quantize_model.hpp"

namespace qmix::whisper {

/// One --tensor-weight PATTERN=W: the sensitivity of the tensors whose whole name matches.
struct tensor_weight {
    std::string pattern;
    double weight = 1;
    std::string origin;
    rules::regex::program program;
};

/// Parses "PATTERN=W" (split at the last '='; W a finite number >= 0).
inline tensor_weight parse_tensor_weight(std::string_view text, std::string origin) {
    const auto equals = text.rfind('=');
    if (equals == std::string_view::npos || equals == 0) {
        throw error(origin + ": '" + std::string(text) + "' is not PATTERN=WEIGHT");
    }
    tensor_weight w;
    w.pattern = std::string(text.substr(0, equals));
    const std::string number(text.substr(equals + 1));
    char* end = nullptr;
    w.weight = std::strtod(number.c_str(), &end);
    if (number.empty() || *end != '\0' || !std::isfinite(w.weight) || w.weight < 0) {
        throw error(origin + ": the weight in '" + std::string(text) + "' is not a number >= 0");
    }
    if (w.pattern.size() > rules::max_pattern_length) {
        throw error(origin + ": the pattern is longer than " +
                    std::to_string(rules::max_pattern_length) + " characters");
    }
    try {
        w.program = rules::regex::program::compile(w.pattern);
    } catch (const error& e) {
        throw error(origin + ": bad regular expression '" + w.pattern + "': " + e.what());
    }
    w.origin = std::move(origin);
    return w;
}

struct budget_options {
    std::optional<std::uint64_t> target_bytes;  ///< the output file's size, header included
    std::optional<double> target_bpw;           ///< bits per weight of all the matrices
    std::vector<type_id> allowed;               ///< empty: every quantized storage type, and f16
    std::vector<tensor_weight> weights;         ///< first match wins; default weight 1
    std::int64_t sample_values = 1 << 16;       ///< per tensor; 0 measures every row
};

/// A type's bytes and measured relative error for one tensor.
struct type_cost {
    type_id type = type_id::f16;
    std::uint64_t bytes = 0;
    double relative_error = 0;  ///< squared error / energy (of the sampled rows)
};

struct budget_tensor {
    const tensor_entry* tensor = nullptr;
    double weight = 1;
    bool free = true;                 ///< false: a --tensor-type rule decides it
    type_id chosen = type_id::f16;    ///< the output type (the rule's, for fixed tensors)
    std::vector<type_cost> measured;  ///< every type measured (candidates first? no: any order)
    std::vector<type_id> candidates;  ///< the types the chooser may give it
    std::int64_t sampled_rows = 0;

    const type_cost* cost_of(type_id type) const {
        for (const auto& c : measured)
            if (c.type == type) return &c;
        return nullptr;
    }
};

/// What each uniform type gives at its own size (a plain run with that TYPE and the rules).
struct uniform_point {
    type_id type = type_id::q4_0;
    std::uint64_t output_bytes = 0;
    double matrix_bpw = 0;
    double weighted_error = 0;
};

struct budget_result {
    std::vector<budget_tensor> tensors;   ///< every matrix, in file order
    rules::rule_set rules;                ///< the user's rules, then one rule per free matrix
    std::vector<std::string> rule_lines;  ///< the rule file: the same rules as text
    std::uint64_t budget_bytes = 0;       ///< the output file may take at most this
    std::uint64_t min_bytes = 0, max_bytes = 0;  ///< reachable output sizes
    std::uint64_t output_bytes = 0;              ///< of the plan the chosen rules give
    std::int64_t matrix_values = 0;
    double matrix_bpw = 0;      ///< as written
    double weighted_error = 0;  ///< sum of weight * relative error, every matrix
    double lower_bound = 0;     ///< no choice under the budget can do better
    bool sampled = false;       ///< some tensor was measured on a sample of rows
    std::vector<uniform_point> uniform;
    double measure_seconds = 0, choose_seconds = 0;
};

// ---------------------------------------------------------------------------------------
// The chooser, on a plain table: items (tensors) each with options (bytes, error).

struct knapsack_option {
    std::uint64_t bytes = 0;
    double error = 0;
};

struct knapsack_solution {
    std::vector<std::size_t> choice;  ///< index into each item's options
    std::uint64_t bytes = 0;
    double error = 0;
    double lower_bound = 0;  ///< Lagrangian (linear relaxation) bound on the best error
    bool feasible = false;
};

namespace detail {

inline knapsack_solution evaluate(const std::vector<std::vector<knapsack_option>>& items,
                                  std::vector<std::size_t> choice) {
    knapsack_solution s;
    s.choice = std::move(choice);
    for (std::size_t i = 0; i < items.size(); ++i) {
        s.bytes += items[i][s.choice[i]].bytes;
        s.error += items[i][s.choice[i]].error;
    }
    return s;
}

/// Steps 2 and 3 of the method, from a choice that fits; returns when no single change or
/// pair of changes lowers the error within the capacity.
inline void improve(const std::vector<std::vector<knapsack_option>>& items, std::uint64_t capacity,
                    std::vector<std::size_t>& choice) {
    std::uint64_t used = 0;
    for (std::size_t i = 0; i < items.size(); ++i) used += items[i][choice[i]].bytes;
    struct move {
        std::uint64_t freed;
        double cost;
        std::size_t item, option;
    };
    for (int round = 0; round < 100000; ++round) {
        // Filling: the single change that lowers the error most and fits.
        double best_gain = 0;
        std::size_t best_item = 0, best_option = 0;
        for (std::size_t i = 0; i < items.size(); ++i) {
            const auto& cur = items[i][choice[i]];
            for (std::size_t j = 0; j < items[i].size(); ++j) {
                const auto& o = items[i][j];
                const double gain = cur.error - o.error;
                if (gain <= best_gain) continue;
                if (o.bytes > cur.bytes && o.bytes - cur.bytes > capacity - used) continue;
                best_gain = gain;
                best_item = i;
                best_option = j;
            }
        }
        if (best_gain > 0) {
            used = used - items[best_item][choice[best_item]].bytes +
                   items[best_item][best_option].bytes;
            choice[best_item] = best_option;
            continue;
        }
        // Exchange: every downgrade (bytes freed, error added), sorted by bytes freed, with
        // the two cheapest from different items in each suffix.
        std::vector<move> downs;
        for (std::size_t k = 0; k < items.size(); ++k) {
            const auto& cur = items[k][choice[k]];
            for (std::size_t c = 0; c < items[k].size(); ++c) {
                const auto& o = items[k][c];
                if (o.bytes < cur.bytes)
                    downs.push_back({cur.bytes - o.bytes, o.error - cur.error, k, c});
            }
        }
        std::sort(downs.begin(), downs.end(),
                  [](const move& a, const move& b) { return a.freed < b.freed; });
        const std::size_t none = std::numeric_limits<std::size_t>::max();
        std::vector<std::size_t> best1(downs.size() + 1, none), best2(downs.size() + 1, none);
        for (std::size_t m = downs.size(); m-- > 0;) {
            std::size_t b1 = best1[m + 1], b2 = best2[m + 1];
            const auto better = [&](std::size_t a, std::size_t b) {
                return b == none || downs[a].cost < downs[b].cost;
            };
            if (better(m, b1)) {
                if (b1 != none && downs[b1].item != downs[m].item) b2 = b1;
                b1 = m;
            } else if (downs[m].item != downs[b1].item && better(m, b2)) {
                b2 = m;
            }
            best1[m] = b1;
            best2[m] = b2;
        }
        double best_change = -1e-12;  // strictly better, beyond rounding
        std::size_t up_item = 0, up_option = 0, down = none;
        for (std::size_t i = 0; i < items.size(); ++i) {
            const auto& cur = items[i][choice[i]];
            for (std::size_t j = 0; j < items[i].size(); ++j) {
                const auto& o = items[i][j];
                if (o.error >= cur.error || o.bytes <= cur.bytes) continue;
                const std::uint64_t grow = o.bytes - cur.bytes;
                const std::uint64_t need = grow > capacity - used ? grow - (capacity - used) : 0;
                const auto first =
                    std::lower_bound(downs.begin(), downs.end(), need,
                                     [](const move& m, std::uint64_t n) { return m.freed < n; });
                const auto at = static_cast<std::size_t>(first - downs.begin());
                std::size_t pick = best1[at];
                if (pick != none && downs[pick].item == i) pick = best2[at];
                if (pick == none) continue;
                const double change = o.error - cur.error + downs[pick].cost;
                if (change < best_change) {
                    best_change = change;
                    up_item = i;
                    up_option = j;
                    down = pick;
                }
            }
        }
        if (down == none) return;
        const move& d = downs[down];
        used = used - items[up_item][choice[up_item]].bytes + items[up_item][up_option].bytes;
        used = used - items[d.item][choice[d.item]].bytes + items[d.item][d.option].bytes;
        choice[up_item] = up_option;
        choice[d.item] = d.option;
    }
}

/// An exact dynamic programme over the budget cut into steps (at least 4096, 16 per item):
/// each option's bytes above its item's smallest are rounded up to whole steps, so its
/// choice always fits; it is the best choice but for that rounding (at most one step per
/// item).
inline std::vector<std::size_t> rounded_programme(
    const std::vector<std::vector<knapsack_option>>& items, std::uint64_t capacity) {
    const std::size_t n = items.size();
    std::uint64_t base = 0;
    std::vector<std::uint64_t> least(n);
    for (std::size_t i = 0; i < n; ++i) {
        least[i] = items[i].front().bytes;
        for (const auto& o : items[i]) least[i] = std::min(least[i], o.bytes);
        base += least[i];
    }
    const std::uint64_t room = capacity - base;  // the caller checked base <= capacity
    const std::uint64_t steps = std::max<std::uint64_t>(4096, 16 * n);
    const std::uint64_t unit = std::max<std::uint64_t>(1, (room + steps - 1) / steps);
    const auto slots = static_cast<std::size_t>(room / unit) + 1;
    const double none = std::numeric_limits<double>::infinity();
    std::vector<double> best(slots, 0.0), next(slots);
    std::vector<std::uint8_t> picked(n * slots);
    for (std::size_t i = 0; i < n; ++i) {
        std::fill(next.begin(), next.end(), none);
        for (std::size_t j = 0; j < items[i].size() && j < 255; ++j) {
            const std::uint64_t extra = items[i][j].bytes - least[i];
            const auto cost = static_cast<std::size_t>((extra + unit - 1) / unit);
            for (std::size_t c = cost; c < slots; ++c) {
                const double e = best[c - cost] + items[i][j].error;
                if (e < next[c]) {
                    next[c] = e;
                    picked[i * slots + c] = static_cast<std::uint8_t>(j);
                }
            }
        }
        best.swap(next);
    }
    std::vector<std::size_t> choice(n);
    std::size_t c = slots - 1;
    for (std::size_t i = n; i-- > 0;) {
        const std::size_t j = picked[i * slots + c];
        choice[i] = j;
        const std::uint64_t extra = items[i][j].bytes - least[i];
        c -= static_cast<std::size_t>((extra + unit - 1) / unit);
    }
    return choice;
}

}  // namespace detail

/// The choice of one option per item with total bytes <= capacity and the least total
/// error this method finds (see the top of this file), plus the Lagrangian lower bound.
/// `starts` are further choices to begin the search from (used when they fit).
inline knapsack_solution choose_under_budget(
    const std::vector<std::vector<knapsack_option>>& items, std::uint64_t capacity,
    const std::vector<std::vector<std::size_t>>& starts = {}) {
    const std::size_t n = items.size();
    // 1. The lower convex hull of each item's options, from its smallest option up.
    std::vector<std::vector<std::size_t>> hulls(n);
    std::vector<std::size_t> choice(n);
    std::uint64_t used = 0;
    double total_error = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (items[i].empty()) throw error("choose_under_budget: an item without options");
        std::vector<std::size_t> order(items[i].size());
        for (std::size_t j = 0; j < order.size(); ++j) order[j] = j;
        std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
            const auto &x = items[i][a], &y = items[i][b];
            return x.bytes != y.bytes ? x.bytes < y.bytes : x.error < y.error;
        });
        auto& hull = hulls[i];
        for (const std::size_t j : order) {
            const auto& o = items[i][j];
            if (!hull.empty() && o.error >= items[i][hull.back()].error) continue;  // dominated
            while (!hull.empty() && items[i][hull.back()].bytes == o.bytes) hull.pop_back();
            while (hull.size() >= 2) {
                const auto& a = items[i][hull[hull.size() - 2]];
                const auto& b = items[i][hull.back()];
                // b lies on or above the segment from a to o: not on the lower hull.
                const double lhs = (a.error - b.error) * double(o.bytes - a.bytes);
                const double rhs = (a.error - o.error) * double(b.bytes - a.bytes);
                if (lhs <= rhs) {
                    hull.pop_back();
                } else {
                    break;
                }
            }
            hull.push_back(j);
        }
        choice[i] = hull.front();
        used += items[i][hull.front()].bytes;
        total_error += items[i][hull.front()].error;
    }
    knapsack_solution best;
    if (used > capacity) return best;  // infeasible: even the smallest options do not fit
    // Hull steps in decreasing order of error saved per byte (each item's steps are already
    // in that order, so the next step of every item competes).
    std::vector<std::size_t> position(n, 0);
    const auto slope = [&](std::size_t i) {
        const auto& a = items[i][hulls[i][position[i]]];
        const auto& b = items[i][hulls[i][position[i] + 1]];
        return (a.error - b.error) / double(b.bytes - a.bytes);
    };
    using entry = std::pair<double, std::size_t>;
    std::vector<entry> heap;
    for (std::size_t i = 0; i < n; ++i)
        if (hulls[i].size() > 1) heap.emplace_back(slope(i), i);
    std::make_heap(heap.begin(), heap.end());
    double lower_bound = total_error;
    bool stopped = false;
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end());
        const auto [s, i] = heap.back();
        heap.pop_back();
        const auto& a = items[i][hulls[i][position[i]]];
        const auto& b = items[i][hulls[i][position[i] + 1]];
        const std::uint64_t grow = b.bytes - a.bytes;
        if (grow > capacity - used) {
            if (!stopped) {  // the relaxation takes this step in part: the bound
                lower_bound = total_error - s * double(capacity - used);
                stopped = true;
            }
            continue;  // smaller steps of other items may still fit
        }
        used += grow;
        total_error -= a.error - b.error;
        ++position[i];
        choice[i] = hulls[i][position[i]];
        if (!stopped) lower_bound = total_error;
        if (position[i] + 1 < hulls[i].size()) {
            heap.emplace_back(slope(i), i);
            std::push_heap(heap.begin(), heap.end());
        }
    }
    // 2 and 3 from the hull choice, the dynamic programme's and every start that fits; the
    // best wins.
    std::vector<std::vector<std::size_t>> tries{choice};
    tries.push_back(detail::rounded_programme(items, capacity));
    for (const auto& s : starts) {
        if (s.size() == n && detail::evaluate(items, s).bytes <= capacity) tries.push_back(s);
    }
    for (auto& t : tries) {
        detail::improve(items, capacity, t);
        knapsack_solution s = detail::evaluate(items, t);
        if (!best.feasible || s.error < best.error) {
            best = std::move(s);
            best.feasible = true;
        }
    }
    best.lower_bound = std::min(lower_bound, best.error);
    return best;
}

// ---------------------------------------------------------------------------------------
// Measuring errors.

namespace detail {

/// The types measured by default: every quantized storage type, and f16.
inline std::vector<type_id> default_candidate_types() {
    std::vector<type_id> types;
    for (const auto& t : type_table) {
        if (rules::is_storage_type(t.id) && t.is_quantized) types.push_back(t.id);
    }
    types.push_back(type_id::f16);
    return types;
}

/// A regular expression matching exactly `name`.
inline std::string literal_pattern(const std::string& name) {
    std::string out;
    for (const char c : name) {
        if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
        out += c;
    }
    return out;
}

/// Measures the relative error of `tensor` under each of `types` on evenly spaced rows
/// (all of them when the tensor has at most `sample_values` values, or that is 0).
inline std::vector<type_cost> measure_tensor(const model_file& model, const tensor_entry& tensor,
                                             const std::vector<type_id>& types,
                                             std::int64_t sample_values, unsigned threads,
                                             std::int64_t& sampled_rows) {
    const std::int64_t n = tensor.ne[0];
    const std::int64_t rows = tensor.row_count();
    std::int64_t used_rows = rows;
    if (sample_values > 0 && rows * n > sample_values) {
        used_rows = std::max<std::int64_t>(1, sample_values / n);
    }
    sampled_rows = used_rows;
    const auto row_of = [&](std::int64_t k) { return k * rows / used_rows; };
    const std::size_t in_row = row_size(tensor.type, n);
    // Per row: energy, then each type's squared error; summed in row order afterwards, so
    // the result does not depend on the thread count.
    const std::size_t width = types.size() + 1;
    std::vector<double> sums(static_cast<std::size_t>(used_rows) * width, 0.0);
    parallel_ranges(used_rows, threads, [&](std::int64_t begin, std::int64_t end) {
        std::vector<float> values(static_cast<std::size_t>(n)), back(values.size());
        std::vector<std::uint8_t> packed, input(in_row);
        for (std::int64_t k = begin; k < end; ++k) {
            // One row by positional read: memory stays one row per thread.
            model.read_data(tensor, std::uint64_t(row_of(k)) * in_row, input.data(), in_row);
            dequantize(tensor.type, input.data(), values.data(), 1, n);
            double* out = sums.data() + std::size_t(k) * width;
            double energy = 0;
            for (const float v : values) energy += double(v) * double(v);
            out[0] = energy;
            for (std::size_t t = 0; t < types.size(); ++t) {
                packed.resize(row_size(types[t], n));
                quantize(types[t], values.data(), packed.data(), 1, n);
                dequantize(types[t], packed.data(), back.data(), 1, n);
                double squared = 0;
                for (std::int64_t x = 0; x < n; ++x) {
                    const double d = double(back[std::size_t(x)]) - double(values[std::size_t(x)]);
                    squared += d * d;
                }
                out[t + 1] = squared;
            }
        }
    });
    std::vector<double> total(width, 0.0);
    for (std::int64_t k = 0; k < used_rows; ++k)
        for (std::size_t t = 0; t < width; ++t) total[t] += sums[std::size_t(k) * width + t];
    std::vector<type_cost> costs;
    for (std::size_t t = 0; t < types.size(); ++t) {
        type_cost c;
        c.type = types[t];
        c.bytes = bytes_as(tensor, types[t]);
        c.relative_error = total[0] > 0 ? total[t + 1] / total[0] : 0.0;
        costs.push_back(c);
    }
    return costs;
}

inline std::string bpw_text(double bits) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4f", bits);
    return buf;
}

}  // namespace detail

/// Every matrix's measured errors: what choose_types works from (the target in `budget` is
/// not used here, so one table serves many budgets).
struct error_table {
    std::vector<budget_tensor> tensors;    ///< every matrix, in file order
    std::vector<type_id> allowed;          ///< the candidate types
    std::uint64_t fixed_bytes = 0;         ///< the file without the free matrices
    std::uint64_t fixed_matrix_bytes = 0;  ///< the matrices the rules decide
    std::int64_t matrix_values = 0;
    bool sampled = false;
    double seconds = 0;
};

namespace detail {

/// Fills in the errors of a table of sizes (measure_errors with `errors` false): every
/// type measured for a matrix but its input type, which stays at no error.
inline void measure_table(const model_file& model, std::int64_t sample_values, unsigned threads,
                          error_table& table) {
    const auto start = std::chrono::steady_clock::now();
    for (budget_tensor& bt : table.tensors) {
        std::vector<type_id> types;
        for (const type_cost& c : bt.measured)
            if (c.type != bt.tensor->type) types.push_back(c.type);
        if (types.empty()) continue;
        const std::vector<type_cost> costs =
            measure_tensor(model, *bt.tensor, types, sample_values, threads, bt.sampled_rows);
        for (type_cost& c : bt.measured)
            for (const type_cost& m : costs)
                if (m.type == c.type) c.relative_error = m.relative_error;
        if (bt.sampled_rows < bt.tensor->row_count()) table.sampled = true;
    }
    table.seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace detail

/// Measures the errors of every matrix of `model` under the types it may get, with the
/// rules and settings of `options` (its rules fix their tensors' types; its default type is
/// ignored) and the candidates, weights and sampling of `budget`. With `errors` false it
/// reads no tensor data: the table has every type's size and no error (all 0), enough to
/// tell the reachable range (budget_capacity) before the measurement (measure_table).
inline error_table measure_errors(const model_file& model, const quantize_options& options,
                                  const budget_options& budget, bool errors = true) {
    const auto start = std::chrono::steady_clock::now();
    const unsigned threads = resolve_threads(options.threads);
    std::vector<type_id> allowed =
        budget.allowed.empty() ? detail::default_candidate_types() : budget.allowed;
    for (const type_id t : allowed) {
        if (t == type_id::f32) {
            throw error(
                "f32 cannot be a candidate type under a budget: f16 holds the same tensors in half "
                "the bytes");
        }
    }
    // The plan with every free matrix at f16 (which holds any row): the rules' tensors and
    // everything that is not a matrix as they will be written.
    quantize_options base_options = options;
    base_options.default_type = type_id::f16;
    base_options.upstream_loader = false;
    const model_plan base = make_plan(model, base_options);
    error_table result;
    // Which tensors are free, their weights and the types to measure for each: the
    // candidates, each uniform type's type for it (fallbacks included), or a fixed
    // tensor's own output type.
    std::vector<type_id> uniform_types;
    for (const type_id t : allowed)
        if (info(t).is_quantized) uniform_types.push_back(t);
    std::uint64_t& fixed_bytes = result.fixed_bytes;  // the file but the free matrices
    std::uint64_t& fixed_matrix_bytes = result.fixed_matrix_bytes;
    fixed_bytes = base.output_bytes;
    for (const auto& p : base.tensors) {
        if (!p.candidate) continue;
        budget_tensor bt;
        bt.tensor = p.tensor;
        bt.free = !p.rule.has_value();
        bt.chosen = p.output;
        for (const auto& w : budget.weights) {
            if (w.program.matches(p.tensor->name)) {
                bt.weight = w.weight;
                break;
            }
        }
        const std::int64_t n = p.tensor->ne[0];
        std::vector<type_id> measure;
        const auto add = [&](type_id t) {
            if (t != p.tensor->type && can_hold_row(t, n) &&
                std::find(measure.begin(), measure.end(), t) == measure.end()) {
                measure.push_back(t);
            }
        };
        if (bt.free) {
            fixed_bytes -= p.output_bytes;
            for (const type_id t : allowed) {
                if (can_hold_row(t, n)) bt.candidates.push_back(t);
                add(t);
            }
            for (const type_id t : uniform_types)
                if (!can_hold_row(t, n))
                    if (const auto fb = fallback_of(t)) add(*fb);
            if (bt.candidates.empty()) {
                std::string names;
                for (const type_id t : allowed) names += " " + std::string(type_name(t));
                throw error(detail::tensor_label(model, *p.tensor) + ": rows of " +
                            std::to_string(n) + " fit none of the allowed types (" +
                            names.substr(1) +
                            "); allow a 32-value type (q4_0 ... q8_0, iq4_nl) or f16");
            }
        } else {
            fixed_matrix_bytes += p.output_bytes;
            add(p.output);
        }
        for (const type_id t : measure) bt.measured.push_back({t, bytes_as(*p.tensor, t), 0});
        // The input type itself, unchanged: no error.
        type_cost same;
        same.type = p.tensor->type;
        same.bytes = p.tensor->data_size;
        bt.measured.push_back(same);
        result.matrix_values += p.tensor->element_count();
        result.tensors.push_back(std::move(bt));
    }
    result.allowed = allowed;
    if (errors) detail::measure_table(model, budget.sample_values, threads, result);
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

namespace detail {

/// The bytes the free matrices can take under `budget`, from the sizes in `table`: sets
/// result's budget_bytes, min_bytes and max_bytes, and throws a qmix::error naming the
/// reachable range when the budget is out of it.
inline std::uint64_t budget_capacity(const model_file& model, const budget_options& budget,
                                     const error_table& table, budget_result& result) {
    if (budget.target_bytes.has_value() == budget.target_bpw.has_value()) {
        throw error("choose_types: give exactly one of a target size and a target bpw");
    }
    const std::uint64_t fixed_bytes = table.fixed_bytes;
    const std::uint64_t fixed_matrix_bytes = table.fixed_matrix_bytes;
    std::uint64_t min_free = 0, max_free = 0;
    for (const budget_tensor& bt : table.tensors) {
        if (!bt.free) continue;
        std::uint64_t lo = std::numeric_limits<std::uint64_t>::max(), hi = 0;
        for (const type_id t : bt.candidates) {
            const type_cost* c = bt.cost_of(t);
            lo = std::min(lo, c->bytes);
            hi = std::max(hi, c->bytes);
        }
        min_free += lo;
        max_free += hi;
    }
    const double values = double(table.matrix_values);
    std::uint64_t capacity = 0;
    if (budget.target_bytes) {
        result.budget_bytes = *budget.target_bytes;
        result.min_bytes = fixed_bytes + min_free;
        result.max_bytes = fixed_bytes + max_free;
        if (*budget.target_bytes < result.min_bytes || *budget.target_bytes > result.max_bytes) {
            throw error(model.path() + ": --target-size " + std::to_string(*budget.target_bytes) +
                        " bytes is out of reach: the output can take from " +
                        std::to_string(result.min_bytes) +
                        " bytes (every free matrix at its smallest candidate type) to " +
                        std::to_string(result.max_bytes) +
                        " bytes (every free matrix at its largest)");
        }
        capacity = *budget.target_bytes - fixed_bytes;
    } else {
        const double lo = 8.0 * double(fixed_matrix_bytes + min_free) / values;
        const double hi = 8.0 * double(fixed_matrix_bytes + max_free) / values;
        const auto matrix_bytes =
            static_cast<std::uint64_t>(std::floor(*budget.target_bpw * values / 8.0));
        if (matrix_bytes < fixed_matrix_bytes + min_free ||
            matrix_bytes > fixed_matrix_bytes + max_free) {
            throw error(model.path() + ": --target-bpw " + detail::bpw_text(*budget.target_bpw) +
                        " is out of reach: the matrices can take from " + detail::bpw_text(lo) +
                        " bits per weight (every free matrix at its smallest candidate type) to " +
                        detail::bpw_text(hi) + " (every free matrix at its largest)");
        }
        capacity = matrix_bytes - fixed_matrix_bytes;
        result.budget_bytes = fixed_bytes + capacity;
        result.min_bytes = fixed_bytes + min_free;
        result.max_bytes = fixed_bytes + max_free;
    }
    return capacity;
}

}  // namespace detail

/// Chooses a type for every free matrix under the budget of `budget`, from `table`
/// (measure_errors with the same model, options and budget settings). Throws a
/// qmix::error, before anything is written, when the budget is out of reach, naming the
/// reachable range. The returned rules, given to make_plan, give a plan within the budget
/// (checked here).
inline budget_result choose_types(const model_file& model, const quantize_options& options,
                                  const budget_options& budget, const error_table& table) {
    budget_result result;
    result.rules = options.rules;
    result.tensors = table.tensors;
    result.matrix_values = table.matrix_values;
    result.sampled = table.sampled;
    result.measure_seconds = table.seconds;
    const std::vector<type_id>& allowed = table.allowed;
    std::vector<type_id> uniform_types;
    for (const type_id t : allowed)
        if (info(t).is_quantized) uniform_types.push_back(t);
    const auto mid = std::chrono::steady_clock::now();

    // The knapsack over the free tensors.
    std::vector<std::vector<knapsack_option>> items;
    std::vector<std::size_t> free_index;
    for (std::size_t k = 0; k < result.tensors.size(); ++k) {
        auto& bt = result.tensors[k];
        if (!bt.free) continue;
        free_index.push_back(k);
        std::vector<knapsack_option> options_of;
        for (const type_id t : bt.candidates) {
            const type_cost* c = bt.cost_of(t);
            options_of.push_back({c->bytes, bt.weight * c->relative_error});
        }
        items.push_back(std::move(options_of));
    }
    const std::uint64_t capacity = detail::budget_capacity(model, budget, table, result);
    const double values = double(result.matrix_values);
    // Uniform choices (every free matrix at one candidate type) as extra starting points.
    std::vector<std::vector<std::size_t>> starts;
    for (const type_id t : allowed) {
        std::vector<std::size_t> s;
        for (const std::size_t k : free_index) {
            const auto& c = result.tensors[k].candidates;
            const auto at = std::find(c.begin(), c.end(), t);
            if (at == c.end()) break;
            s.push_back(std::size_t(at - c.begin()));
        }
        if (s.size() == free_index.size()) starts.push_back(std::move(s));
    }
    const knapsack_solution solution = choose_under_budget(items, capacity, starts);
    if (!solution.feasible) throw error(model.path() + ": no choice of types fits the budget");

    // The chosen types as rules after the user's, one per free matrix.
    for (const auto& r : options.rules.rules()) {
        result.rule_lines.push_back(r.pattern + "=" + std::string(type_name(r.type)));
    }
    for (std::size_t f = 0; f < free_index.size(); ++f) {
        auto& bt = result.tensors[free_index[f]];
        bt.chosen = bt.candidates[solution.choice[f]];
        const std::string line =
            detail::literal_pattern(bt.tensor->name) + "=" + std::string(type_name(bt.chosen));
        result.rules.add(line, "budget");
        result.rule_lines.push_back(line);
    }
    double total = 0, fixed_error = 0;
    for (const auto& bt : result.tensors) {
        const double e = bt.weight * bt.cost_of(bt.chosen)->relative_error;
        total += e;
        if (!bt.free) fixed_error += e;
    }
    result.weighted_error = total;
    result.lower_bound = fixed_error + solution.lower_bound;

    quantize_options chosen = options;
    chosen.rules = result.rules;
    const model_plan plan = make_plan(model, chosen);
    result.output_bytes = plan.output_bytes;
    result.matrix_bpw = plan.actual_bits / values;
    if (result.output_bytes > result.budget_bytes) {
        throw error(model.path() + ": internal error: the chosen types take " +
                    std::to_string(result.output_bytes) + " bytes, over the budget of " +
                    std::to_string(result.budget_bytes));
    }
    // Each uniform type at its own size, as a plain run with the same rules.
    for (const type_id t : uniform_types) {
        quantize_options u = options;
        u.default_type = t;
        u.no_fallback = false;
        model_plan up;
        try {
            up = make_plan(model, u);
        } catch (const error&) {
            continue;  // e.g. --loader upstream refuses it
        }
        uniform_point point;
        point.type = t;
        point.output_bytes = up.output_bytes;
        point.matrix_bpw = up.actual_bits / values;
        std::size_t k = 0;
        for (const auto& p : up.tensors) {
            if (!p.candidate) continue;
            const auto& bt = result.tensors[k++];
            const type_cost* c = bt.cost_of(p.output);
            point.weighted_error += c ? bt.weight * c->relative_error : 0.0;
        }
        result.uniform.push_back(point);
    }
    result.choose_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - mid).count();
    return result;
}

/// measure_errors, then choose_types. A budget out of reach is refused before the
/// measurement: the reachable range depends on the types' sizes only.
inline budget_result choose_types(const model_file& model, const quantize_options& options,
                                  const budget_options& budget) {
    error_table table = measure_errors(model, options, budget, false);
    budget_result reach;
    detail::budget_capacity(model, budget, table, reach);
    detail::measure_table(model, budget.sample_values, resolve_threads(options.threads), table);
    return choose_types(model, options, budget, table);
}

}  // namespace qmix::whisper
