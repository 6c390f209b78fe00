// SPDX-License-Identifier: MIT
#pragma once

// The scale searches of formats/detail/scale_search.hpp, one group of values per lane.
// Each lane performs the reference's operations in the reference's order (sums run over
// i sequentially within the lane), so its results are the scalar results bit for bit.
// A branch of the reference becomes a per-lane mask and a select; a loop that the
// reference leaves early runs on for the lanes that are done only when that cannot change
// them. Products that are then added go through lanes::mul (never fused).
//
// Levels are not carried through the trials: the winning trial is remembered by the
// parameters that produced its levels, and callers recompute the levels from those when
// they need them (only for groups whose stored scale comes out zero). That saves a blend
// of every level at every improvement.

#include <cstdint>
#include <limits>
#include <type_traits>

#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/kernels/kquants/lanes.hpp"

namespace qmix::kernels::kquants {
QMIX_ABI_BEGIN

template <class Arch, int K = 1>
struct group_search {
    using L = lanes<Arch, K>;
    using floats = typename L::floats;
    using ints = typename L::ints;
    using mask = typename L::mask;

    /// Below this magnitude a group counts as all zero (detail::group_max_eps).
    static constexpr float group_max_eps = 1e-15f;

    /// Result of scale_and_min, per lane. The levels of the kept trial are
    /// clamp(nearest_int(level_iscale * (x - level_min)), 0, nmax); flat groups get
    /// level_iscale = level_min = 0, which gives level 0 as the reference's memset does.
    struct scale_min_fit {
        floats scale;
        floats min;  ///< the reference's *the_min: the offset added back, -min
        floats level_iscale;
        floats level_min;
    };

    /// ggml's make_qkx2_quants / make_qkx3_quants (detail::search_scale_and_min) over n
    /// values per lane, with weights w.
    ///
    /// A trial's levels are clamp(nearest_int(iscale (x - min)), 0, nmax). When every value
    /// is finite, the levels are rounded in float arithmetic (nearest_level), exact for
    /// |iscale (x - min)| <= 2^21: that product is monotone in x (rounding is), so its
    /// extremes over the group are those of the smallest and the largest value, and a trial
    /// whose extremes are in range in every lane that is not flat takes that path. The same
    /// extremes say when an end of the clamp cannot act (the first trials never reach the
    /// top level, the bottom one is reached only once the offset has moved up): the trial
    /// leaves that end out. (Flat lanes end with scale 0 whatever their trials do.) Each
    /// trial subtracts min from x again: keeping the differences between trials and
    /// redoing them when a lane moved min (about half of the trials) cost more (Zen 4).
    template <int n, bool use_mad>
    static scale_min_fit scale_and_min(const floats* x, const floats* w, int nmax, float rmin,
                                       float rdelta, int nstep) {
        const floats zero(0.0f);
        offset_search<n> s;
        s.x = x;
        s.w = w;
        floats lowest = x[0];
        floats max = x[0];
        s.sum_w = w[0];
        s.sum_x = L::mul(s.sum_w, x[0]);
        for (int i = 1; i < n; ++i) {
            lowest = L::select(x[i] < lowest, x[i], lowest);
            max = L::select(x[i] > max, x[i], max);
            s.sum_w += w[i];
            s.sum_x += L::mul(w[i], x[i]);
        }
        s.min = L::select(lowest > zero, zero, lowest);
        const floats start_min = s.min;
        const mask flat = max <= s.min;

        floats iscale = L::div(floats(float(nmax)), max - s.min);
        s.fit = {L::div(floats(1.0f), iscale), zero, iscale, s.min};
        s.best_error = zero;
        for (int i = 0; i < n; ++i) {
            const floats l = level(iscale * (x[i] - s.min), 0, nmax);
            const floats diff = L::mul(s.fit.scale, l) + s.min - x[i];
            s.best_error += L::mul(w[i], error_of<use_mad>(diff));
        }

        const bool finite = L::all_finite(x, n);
        const auto top = floats(static_cast<float>(nmax));
        const floats limit(2097152.0f);  // 2^21
        const floats half(0.5f);
        using yes = std::true_type;
        using no = std::false_type;
        for (int is = 0; nstep >= 1 && is <= nstep; ++is) {
            // The trial's numerator is the same in every lane: computed once, as a scalar.
            const float numerator = rmin + strict::mul(rdelta, float(is)) + float(nmax);
            iscale = L::div(floats(numerator), max - s.min);
            if (finite) {
                const floats at_lowest = iscale * (lowest - s.min);
                const floats at_max = iscale * (max - s.min);
                if (L::all(flat || (L::abs(at_lowest) <= limit && L::abs(at_max) <= limit))) {
                    // Values below -1/2 round below 0, from nmax + 1/2 up above nmax.
                    const bool low_end = !L::none(!flat && (at_lowest < -half || at_max < -half));
                    const bool high_end =
                        !L::none(!flat && (at_lowest >= top + half || at_max >= top + half));
                    if (low_end && high_end) {
                        offset_trial<n, use_mad, yes, yes>(s, iscale, nmax);
                    } else if (low_end) {
                        offset_trial<n, use_mad, yes, no>(s, iscale, nmax);
                    } else if (high_end) {
                        offset_trial<n, use_mad, no, yes>(s, iscale, nmax);
                    } else {
                        offset_trial<n, use_mad, no, no>(s, iscale, nmax);
                    }
                    continue;
                }
            }
            offset_trial<n, use_mad, no, no, false>(s, iscale, nmax);
        }

        scale_min_fit fit = s.fit;
        fit.scale = L::select(flat, zero, fit.scale);
        // q4_1 and q5_1 store -min as it is: the sign of a zero counts.
        fit.min = L::negate(L::select(flat, start_min, s.min));
        fit.level_iscale = L::select(flat, zero, fit.level_iscale);
        fit.level_min = L::select(flat, zero, fit.level_min);
        return fit;
    }

    /// The levels of a scale_and_min trial, for values x of the fitted group.
    static ints scale_min_levels(floats x, floats level_iscale, floats level_min, int nmax) {
        return L::clamp(L::nearest_int(level_iscale * (x - level_min)), 0, nmax);
    }

    /// Result of symmetric, per lane. The levels of the kept trial are
    /// nmax + clamp(nearest_int(level_iscale * x), -nmax, nmax - 1), or 0 in flat lanes.
    struct symmetric_fit {
        floats scale;
        floats level_iscale;
        mask flat;
    };

    /// ggml's make_qx_quants with rmse_type 1 (detail::search_symmetric_scale): weights w,
    /// or x^2 when weighted is false.
    ///
    /// Each trial needs, per value, the level and the products w x l and w l l, rounded as
    /// the reference rounds them ((w x) l and (w l) l): w and w x are the same in every
    /// trial and are computed once. When every value is finite, the levels are rounded and
    /// clamped in float arithmetic (nearest_level), which is exact there: in a lane that is
    /// not flat, |iscale x| <= (nmax + 1) (1 + 2^-23) since |x| <= |max|. (In a flat lane
    /// the results are thrown away.)
    template <int n, bool weighted>
    static symmetric_fit symmetric(const floats* x, const floats* w, int nmax) {
        floats weights[n];
        floats weighted_x[n];
        for (int i = 0; i < n; ++i) {
            if constexpr (weighted) {
                weights[i] = w[i];
            } else {
                weights[i] = x[i] * x[i];
            }
            weighted_x[i] = weights[i] * x[i];
        }
        if (L::all_finite(x, n)) return symmetric_trials<n, true>(x, weights, weighted_x, nmax);
        return symmetric_trials<n, false>(x, weights, weighted_x, nmax);
    }

    /// The trials of symmetric, given the weights and the weighted values.
    template <int n, bool finite>
    static symmetric_fit symmetric_trials(const floats* x, const floats* w, const floats* wx,
                                          int nmax) {
        const floats zero(0.0f);
        const floats max = signed_extreme<n>(x);
        const mask flat = L::abs(max) < floats(group_max_eps);
        // The level of value = iscale x in trial `is` (the first trial counts as is = 0).
        // On the finite path a lane that is not flat has |value| <= (nmax + 0.1 is)
        // (1 + 2^-23)^2, so its rounded value reaches -nmax - 1 only when is >= 5 and
        // nmax only when is >= -5: the other trials leave that end's clamp out.
        const auto trial_level = [nmax](const floats& value, auto is) {
            constexpr int trial = decltype(is)::value;
            if constexpr (finite) {
                return L::template nearest_level<(trial >= 5), (trial >= -5)>(value, float(-nmax),
                                                                              float(nmax - 1));
            } else {
                return level(value, -nmax, nmax - 1);
            }
        };

        floats iscale = L::div(floats(float(-nmax)), max);
        floats level_iscale = iscale;
        floats sum_lx = zero;
        floats sum_l2 = zero;
        for (int i = 0; i < n; ++i) {
            const floats l = trial_level(iscale * x[i], std::integral_constant<int, 0>{});
            sum_lx += L::mul(wx[i], l);
            sum_l2 += L::mul(w[i] * l, l);
        }
        // `sum_l2 ? a : 0` of the reference: NaN counts as true, hence == rather than !=.
        floats scale = L::select(sum_l2 == zero, zero, L::div(sum_lx, sum_l2));
        floats best = scale * sum_lx;
        // The 18 trials two at a time (one pass over the values serves both), their
        // outcomes then taken in the reference's order.
        const auto take = [&](const floats& trial_iscale, const floats& trial_lx,
                              const floats& trial_l2) {
            const mask better = (trial_l2 > zero) && (trial_lx * trial_lx > best * trial_l2);
            if (L::none(better)) return;
            const floats this_scale = L::div(trial_lx, trial_l2);
            level_iscale = L::select(better, trial_iscale, level_iscale);
            scale = L::select(better, this_scale, scale);
            best = L::select(better, this_scale * trial_lx, best);
        };
        // A pair of trials (is_a, is_b) whose clamps are those of trials ka and kb.
        const auto pair = [&](int is_a, int is_b, auto ka, auto kb) {
            const floats iscale_a =
                L::div(floats(-(float(nmax) + strict::mul(0.1f, float(is_a)))), max);
            const floats iscale_b =
                L::div(floats(-(float(nmax) + strict::mul(0.1f, float(is_b)))), max);
            floats lx_a = zero;
            floats l2_a = zero;
            floats lx_b = zero;
            floats l2_b = zero;
            for (int i = 0; i < n; ++i) {
                const floats la = trial_level(iscale_a * x[i], ka);
                const floats lb = trial_level(iscale_b * x[i], kb);
                lx_a += L::mul(wx[i], la);
                l2_a += L::mul(w[i] * la, la);
                lx_b += L::mul(wx[i], lb);
                l2_b += L::mul(w[i] * lb, lb);
            }
            take(iscale_a, lx_a, l2_a);
            take(iscale_b, lx_b, l2_b);
        };
        // Trials -9 .. -1, then 1 .. 9, in pairs; the integral constants stand for their
        // clamps (see trial_level).
        for (int is = -9; is < -5; is += 2) {
            pair(is, is + 1, std::integral_constant<int, -9>{}, std::integral_constant<int, -9>{});
        }
        for (int is = -5; is < 4; is += 2) {
            const int next = is + 1 == 0 ? 1 : is + 1;
            pair(is, next, std::integral_constant<int, 0>{}, std::integral_constant<int, 0>{});
            if (next == 1) ++is;
        }
        pair(4, 5, std::integral_constant<int, 4>{}, std::integral_constant<int, 5>{});
        for (int is = 6; is < 10; is += 2) {
            pair(is, is + 1, std::integral_constant<int, 9>{}, std::integral_constant<int, 9>{});
        }
        return {L::select(flat, zero, scale), level_iscale, flat};
    }

    /// The biased levels (0 .. 2 nmax - 1) of a symmetric fit, for values x of the group.
    static ints symmetric_levels(floats x, floats level_iscale, int nmax) {
        return L::clamp(L::nearest_int(level_iscale * x), -nmax, nmax - 1) + ints(nmax);
    }

    /// ggml's make_q3_quants with do_rmse (detail::search_symmetric_scale_greedy): weights
    /// x^2, then up to five sweeps that move single levels while the fit improves. Returns
    /// the scale; with `levels_out`, also writes the biased levels (0 .. 2 nmax - 1, 0 in
    /// flat lanes; as floats).
    ///
    /// The reference stops after a sweep that changed nothing. Here a lane whose sweep
    /// changed nothing may sweep again with the others; that sweep starts from the same
    /// state, so it changes nothing either. (A caller may as well stop sweeping a lane
    /// early and go on with the others elsewhere: see greedy_start and greedy_sweep.)
    template <int n>
    static floats symmetric_greedy(const floats* x, int nmax, floats* levels_out = nullptr) {
        greedy_state<n> state;
        greedy_start(x, nmax, state);
        for (int sweep = 0; sweep < greedy_sweeps; ++sweep) {
            if (L::none(greedy_sweep(x, nmax, state))) break;
        }
        if (levels_out) {
            const mask flat = state.flat();
            const floats zero(0.0f);
            const floats bias(static_cast<float>(nmax));
            for (int i = 0; i < n; ++i) {
                levels_out[i] = L::select(flat, zero, state.levels[i] + bias);
            }
        }
        return greedy_scale(state);
    }

    /// The reference's limit on sweeps.
    static constexpr int greedy_sweeps = 5;

    /// Where the greedy search stands: the levels (-nmax .. nmax - 1) and, for each value,
    /// the two products the reference sums (x^3 l and x^2 l^2, as it rounds them), kept
    /// from one sweep to the next so that a sweep that moves nothing is a subtraction, a
    /// division and a comparison per value.
    template <int n>
    struct greedy_state {
        floats extreme;  ///< the value of largest magnitude
        floats levels[n];
        floats lx[n];  ///< x^3 l: the reference's w * x[i] * L[i]
        floats l2[n];  ///< x^2 l^2: the reference's w * L[i] * L[i]
        floats sum_lx;
        floats sum_l2;
        /// Per batch: a sweep provably moves no level in any of its lanes (see
        /// greedy_start); levels, lx and l2 of such a batch may be left unset.
        bool settled[K] = {};

        /// Lanes whose group counts as all zero.
        mask flat() const { return L::abs(extreme) < floats(group_max_eps); }

        /// The products of levels l (which a search reached) for values x.
        void set_levels(const floats* x, const floats* l) {
            for (int i = 0; i < n; ++i) {
                const floats w = x[i] * x[i];
                levels[i] = l[i];
                lx[i] = L::mul(w * x[i], l[i]);
                l2[i] = L::mul(w * l[i], l[i]);
            }
        }
    };

    /// The search's first levels, against the value of largest magnitude, and their sums.
    /// The K batches side by side, each quantity a plain xsimd batch per batch (arrays
    /// indexed by constants): as `wide` values the compiler kept a copy of every product
    /// on the stack (Zen 4: q3_k quantize +19% avx2, +10% avx512 this way).
    ///
    /// A sweep moves nothing in a lane whose value of largest magnitude is positive and
    /// whose sum of x^3 l is finite: there iscale < 0 gives each level the opposite sign of
    /// its value (or 0), so every term x^3 l is <= 0; partial sums of such terms only
    /// decrease (rounding is monotone), so the sum is <= each term, and slx = sum - term
    /// is <= 0: the reference's `slx > 0` fails for every value in every sweep. (A term that
    /// is NaN or infinite makes the sum so.) A flat lane ends with scale 0 whatever its
    /// sweeps do. A batch whose lanes are all one or the other is marked settled: its
    /// sweeps are skipped, and with store_settled false its levels and products are not
    /// stored (only the sums are kept).
    template <int n, bool store_settled = true>
    QMIX_FORCE_INLINE static void greedy_start(const floats* x, int nmax, greedy_state<n>& state) {
        // The value of largest magnitude from the largest and the smallest value (one
        // maximum and one minimum per value, not a compare and two selects), the
        // sequential search where they have the same magnitude.
        batch hi[K];
        batch lo[K];
        unrolled<K>([&](auto k) { hi[k] = lo[k] = batch(0.0f); });
        for (int i = 0; i < n; ++i) {
            unrolled<K>([&](auto k) {
                const batch v = L::part(x[i], k);
                hi[k] = xsimd::max(v, hi[k]);
                lo[k] = xsimd::min(v, lo[k]);
            });
        }
        batch extreme[K];
        unrolled<K>([&](auto k) {
            const batch negated_lo = -lo[k];
            if (xsimd::any(hi[k] == negated_lo)) {
                batch amax(0.0f);
                batch e(0.0f);
                for (int i = 0; i < n; ++i) {
                    const batch v = L::part(x[i], k);
                    const batch av = B::abs(v);
                    const batch_mask bigger = av > amax;
                    amax = B::select(bigger, av, amax);
                    e = B::select(bigger, v, e);
                }
                extreme[k] = e;
            } else {
                extreme[k] = B::select(hi[k] > negated_lo, hi[k], lo[k]);
            }
        });
        batch iscale[K];
        batch sum_lx[K];
        batch sum_l2[K];
        // Candidates for settled (see above): every lane positive or flat.
        bool positive[K];
        unrolled<K>([&](auto k) {
            L::part(state.extreme, k) = extreme[k];
            iscale[k] = B::div(batch(float(-nmax)), extreme[k]);
            sum_lx[k] = sum_l2[k] = batch(0.0f);
            positive[k] = B::none(
                !((extreme[k] > batch(0.0f)) || (B::abs(extreme[k]) < batch(group_max_eps))));
        });
        // |iscale x| <= nmax (1 + 2^-23)^2 in a lane that is finite and not flat (below),
        // so the rounded value is never below -nmax: only the upper clamp can act.
        const auto level_of = [&](const batch& v, auto k) {
            return B::template nearest_level<false, true>(iscale[k] * v, float(-nmax),
                                                          float(nmax - 1));
        };
        bool store_all = store_settled;
        unrolled<K>([&](auto k) { store_all = store_all || !positive[k]; });
        if (store_all) {
            for (int i = 0; i < n; ++i) {
                unrolled<K>([&](auto k) {
                    const batch v = L::part(x[i], k);
                    const batch l = level_of(v, k);
                    const batch w = v * v;
                    const batch lx = B::mul(w * v, l);
                    const batch l2 = B::mul(w * l, l);
                    L::part(state.levels[i], k) = l;
                    L::part(state.lx[i], k) = lx;
                    L::part(state.l2[i], k) = l2;
                    sum_lx[k] += lx;
                    sum_l2[k] += l2;
                });
            }
        } else {
            // Sums only: no batch needs its levels unless its sums come out not finite,
            // and then it takes the loop below, which stores them.
            for (int i = 0; i < n; ++i) {
                unrolled<K>([&](auto k) {
                    const batch v = L::part(x[i], k);
                    const batch l = level_of(v, k);
                    const batch w = v * v;
                    sum_lx[k] += B::mul(w * v, l);
                    sum_l2[k] += B::mul(w * l, l);
                });
            }
        }
        unrolled<K>([&](auto k) {
            L::part(state.sum_lx, k) = sum_lx[k];
            L::part(state.sum_l2, k) = sum_l2[k];
        });
        // The levels above are rounded and clamped in float arithmetic (nearest_level),
        // exact where |iscale x| <= 2^21: in a lane whose values are finite, |x| <= |max|
        // makes |iscale x| <= nmax (1 + 2^-23)^2. A lane with a NaN or an infinity, or
        // whose x^2 overflows, has a sum of x^2 l^2 that is not finite: such batches take
        // the levels of the reference's nearest_int again. (A lane with max 0 or below
        // FLT_MIN may get other levels, but it is flat and its products are zero, or NaN
        // and caught here: its search ends with scale 0 and no level moved either way.)
        const batch infinity(std::numeric_limits<float>::infinity());
        unrolled<K>([&](auto k) {
            const bool finite = B::none(!(sum_l2[k] < infinity));
            // Settled also needs every sum of x^3 l finite (they are <= 0 there).
            state.settled[k] = positive[k] && finite && B::none(!(sum_lx[k] > -infinity));
            if (finite && (state.settled[k] || store_all)) return;
            state.settled[k] = false;
            batch lx_sum(0.0f);
            batch l2_sum(0.0f);
            for (int i = 0; i < n; ++i) {
                const batch v = L::part(x[i], k);
                const batch l =
                    B::to_float(B::clamp(B::nearest_int(iscale[k] * v), -nmax, nmax - 1));
                const batch w = v * v;
                const batch lx = B::mul(w * v, l);
                const batch l2 = B::mul(w * l, l);
                L::part(state.levels[i], k) = l;
                L::part(state.lx[i], k) = lx;
                L::part(state.l2[i], k) = l2;
                lx_sum += lx;
                l2_sum += l2;
            }
            L::part(state.sum_lx, k) = lx_sum;
            L::part(state.sum_l2, k) = l2_sum;
        });
    }

    /// One sweep of the greedy search; returns the lanes whose levels changed. One batch
    /// after the other, each skipping the trial of a value where none of its own lanes
    /// moves a level (measured faster on avx2 than the K batches side by side).
    template <int n>
    QMIX_FORCE_INLINE static mask greedy_sweep(const floats* x, int nmax, greedy_state<n>& state) {
        mask changed;
        unrolled<K>([&](auto k) { L::part(changed, k) = greedy_sweep_part<n>(x, nmax, state, k); });
        return changed;
    }

    /// A greedy search stopped after some sweeps, to go on with: the values, the levels it
    /// had reached and its two sums.
    template <int n>
    static void greedy_resume(const floats* x, const floats* levels, floats sum_lx, floats sum_l2,
                              greedy_state<n>& state) {
        state.extreme = signed_extreme<n>(x);
        state.set_levels(x, levels);
        state.sum_lx = sum_lx;
        state.sum_l2 = sum_l2;
    }

    /// The greedy search's scale once it has stopped: 0 in flat lanes.
    template <int n>
    static floats greedy_scale(const greedy_state<n>& state) {
        const floats zero(0.0f);
        const floats scale =
            L::select(state.sum_l2 > zero, L::div(state.sum_lx, state.sum_l2), zero);
        return L::select(state.flat(), zero, scale);
    }

    /// ggml's make_qp_quants (detail::search_positive_scale): levels in [0, nmax] for the
    /// non-negative sub-block scales of one block per lane, weighted by w. Writes the levels
    /// as the reference stores them (uint8: a negative level wraps) and returns the scale.
    template <int n>
    static floats positive(const floats* x, const floats* w, int nmax, ints* levels_out) {
        const floats zero(0.0f);
        const ints top(nmax);
        floats max = zero;
        for (int i = 0; i < n; ++i) max = L::select(max < x[i], x[i], max);
        const mask flat = max < floats(group_max_eps);

        floats iscale = L::div(floats(float(nmax)), max);
        floats stored[n];  // the uint8 levels, as floats
        for (int i = 0; i < n; ++i) stored[i] = wrap_to_byte(L::nearest_int(iscale * x[i]));
        const floats scale = L::div(floats(1.0f), iscale);
        floats best_mse = zero;
        for (int i = 0; i < n; ++i) {
            const floats diff = x[i] - L::mul(scale, stored[i]);
            best_mse += L::mul(w[i] * diff, diff);
        }
        for (int is = -4; is <= 4; ++is) {
            if (is == 0) continue;
            const float numerator = strict::mul(0.1f, float(is)) + float(nmax);
            const floats iscale_is = L::div(floats(numerator), max);
            const floats scale_is = L::div(floats(1.0f), iscale_is);
            floats mse = zero;
            for (int i = 0; i < n; ++i) {
                const floats l = L::to_float(L::min(top, L::nearest_int(iscale_is * x[i])));
                const floats diff = x[i] - L::mul(scale_is, l);
                mse += L::mul(w[i] * diff, diff);
            }
            const mask better = mse < best_mse;
            best_mse = L::select(better, mse, best_mse);
            iscale = L::select(better, iscale_is, iscale);
        }
        floats sum_lx = zero;
        floats sum_l2 = zero;
        for (int i = 0; i < n; ++i) {
            const ints l = L::min(top, L::nearest_int(iscale * x[i]));
            stored[i] = wrap_to_byte(l);
            const floats lf = L::to_float(l);
            sum_lx += L::mul(w[i] * x[i], lf);
            sum_l2 += L::mul(w[i] * lf, lf);
        }
        for (int sweep = 0; sweep < 5; ++sweep) {
            mask changed(false);
            for (int i = 0; i < n; ++i) {
                floats slx = sum_lx - L::mul(w[i] * x[i], stored[i]);
                floats sl2 = sum_l2 - L::mul(w[i] * stored[i], stored[i]);
                const mask usable = (slx > zero) && (sl2 > zero);
                const ints new_l = L::min(top, L::nearest_int(L::div(x[i] * sl2, slx)));
                const floats new_lf = L::to_float(new_l);
                const mask moved = usable && (new_lf != stored[i]);
                slx += L::mul(w[i] * x[i], new_lf);
                sl2 += L::mul(w[i] * new_lf, new_lf);
                const mask take = moved && (slx * slx * sum_l2 > sum_lx * sum_lx * sl2);
                stored[i] = L::select(take, wrap_to_byte(new_l), stored[i]);
                sum_lx = L::select(take, slx, sum_lx);
                sum_l2 = L::select(take, sl2, sum_l2);
                changed = changed || take;
            }
            if (L::none(changed)) break;
        }
        const ints none(0);
        for (int i = 0; i < n; ++i) {
            levels_out[i] = L::select(flat, none, L::to_int(stored[i]));
        }
        const floats result = L::select(sum_l2 > zero, L::div(sum_lx, sum_l2), zero);
        return L::select(flat, zero, result);
    }

    /// The value of largest magnitude, the first one on ties (the reference's `max`).
    template <int n>
    static floats signed_extreme(const floats* x) {
        floats amax(0.0f);
        floats max(0.0f);
        for (int i = 0; i < n; ++i) {
            const floats ax = L::abs(x[i]);
            const mask bigger = ax > amax;
            amax = L::select(bigger, ax, amax);
            max = L::select(bigger, x[i], max);
        }
        return max;
    }

  private:
    /// Where scale_and_min stands between trials.
    template <int n>
    struct offset_search {
        const floats* x;
        const floats* w;
        floats sum_w;
        floats sum_x;
        floats min;  ///< the offset of the next trial (the reference's min)
        floats best_error;
        scale_min_fit fit;
    };

    /// One trial of scale_and_min at iscale: its levels, the fit of scale and offset to them,
    /// its error, kept where it is smaller. With float_levels, the levels are rounded in
    /// float arithmetic, leaving out the ends of the clamp that Low and High say cannot act.
    template <int n, bool use_mad, class Low, class High, bool float_levels = true>
    QMIX_FORCE_INLINE static void offset_trial(offset_search<n>& s, const floats& iscale,
                                               int nmax) {
        const floats zero(0.0f);
        const floats* x = s.x;
        const floats* w = s.w;
        floats levels[n];
        floats sum_l = zero;
        floats sum_l2 = zero;
        floats sum_xl = zero;
        for (int i = 0; i < n; ++i) {
            floats l;
            if constexpr (float_levels) {
                l = L::template nearest_level<Low::value, High::value>(iscale * (x[i] - s.min),
                                                                       0.0f, float(nmax));
            } else {
                l = level(iscale * (x[i] - s.min), 0, nmax);
            }
            levels[i] = l;
            const floats wl = L::mul(w[i], l);
            sum_l += wl;
            sum_l2 += L::mul(wl, l);
            sum_xl += L::mul(wl, x[i]);
        }
        const floats det = L::mul(s.sum_w, sum_l2) - L::mul(sum_l, sum_l);
        const mask solvable = det > zero;
        if (L::none(solvable)) return;
        floats this_scale = L::div(L::mul(s.sum_w, sum_xl) - L::mul(s.sum_x, sum_l), det);
        floats this_min = L::div(L::mul(sum_l2, s.sum_x) - L::mul(sum_l, sum_xl), det);
        const mask positive_min = this_min > zero;
        if (!L::none(positive_min)) {
            this_min = L::select(positive_min, zero, this_min);
            this_scale = L::select(positive_min, L::div(sum_xl, sum_l2), this_scale);
        }
        floats error = zero;
        for (int i = 0; i < n; ++i) {
            const floats diff = L::mul(this_scale, levels[i]) + this_min - x[i];
            error += L::mul(w[i], error_of<use_mad>(diff));
        }
        const mask better = solvable && (error < s.best_error);
        if (L::none(better)) return;
        s.best_error = L::select(better, error, s.best_error);
        s.fit.scale = L::select(better, this_scale, s.fit.scale);
        s.fit.level_iscale = L::select(better, iscale, s.fit.level_iscale);
        s.fit.level_min = L::select(better, s.min, s.fit.level_min);
        s.min = L::select(better, this_min, s.min);
    }

    using B = lanes<Arch>;  ///< one xsimd batch
    using batch = typename B::floats;
    using batch_mask = typename B::mask;

    template <int n, class Part>
    QMIX_FORCE_INLINE static batch_mask greedy_sweep_part(const floats* x, int nmax,
                                                          greedy_state<n>& state, Part k) {
        if (state.settled[k]) return batch_mask(false);
        const batch zero(0.0f);
        batch sum_lx = L::part(state.sum_lx, k);
        batch sum_l2 = L::part(state.sum_l2, k);
        batch_mask changed(false);
        for (int i = 0; i < n; ++i) {
            const batch v = L::part(x[i], k);
            const batch level_i = L::part(state.levels[i], k);
            const batch slx = sum_lx - L::part(state.lx[i], k);
            const batch sl2 = sum_l2 - L::part(state.l2[i], k);
            const batch new_l =
                B::to_float(B::clamp(B::nearest_int(B::div(v * sl2, slx)), -nmax, nmax - 1));
            // Most levels stay where they are: skip the trial when no lane moves one.
            const batch_mask differs = new_l != level_i;
            if (B::none(differs)) continue;
            const batch_mask moved = (slx > zero) && differs;
            if (B::none(moved)) continue;
            const batch w = v * v;
            const batch new_lx = B::mul(w * v, new_l);
            const batch new_l2 = B::mul(w * new_l, new_l);
            const batch trial_lx = slx + new_lx;
            const batch trial_l2 = sl2 + new_l2;
            const batch_mask take = moved && (trial_l2 > zero) &&
                                    (trial_lx * trial_lx * sum_l2 > sum_lx * sum_lx * trial_l2);
            L::part(state.levels[i], k) = B::select(take, new_l, level_i);
            L::part(state.lx[i], k) = B::select(take, new_lx, L::part(state.lx[i], k));
            L::part(state.l2[i], k) = B::select(take, new_l2, L::part(state.l2[i], k));
            sum_lx = B::select(take, trial_lx, sum_lx);
            sum_l2 = B::select(take, trial_l2, sum_l2);
            changed = changed || take;
        }
        L::part(state.sum_lx, k) = sum_lx;
        L::part(state.sum_l2, k) = sum_l2;
        return changed;
    }

    /// clamp(nearest_int(value), lo, hi) as a float.
    static floats level(floats value, int lo, int hi) {
        return L::to_float(L::clamp(L::nearest_int(value), lo, hi));
    }

    template <bool use_mad>
    static floats error_of(floats diff) {
        if constexpr (use_mad) {
            return L::abs(diff);
        } else {
            return diff * diff;
        }
    }

    /// The value a level takes once stored in a uint8 (modulo 256), as a float.
    static floats wrap_to_byte(ints l) { return L::to_float(l & ints(0xFF)); }
};

QMIX_ABI_END
}  // namespace qmix::kernels::kquants
