// SPDX-License-Identifier: MIT
#pragma once

// The vector type of the k-quant searches: float lanes that each run the scalar reference
// of one group of values, so every lane rounds exactly where the reference rounds. One
// lane vector is K xsimd batches side by side (see wide).

#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "qmix/core/config.hpp"
#include "qmix/kernels/kquants/batch_ops.hpp"

namespace qmix::kernels::kquants {
QMIX_ABI_BEGIN

/// K batches used as one vector of K times the lanes. The searches below are long chains
/// of dependent operations within a lane; running several independent batches side by
/// side lets the processor overlap those chains.
template <class B, int K>
struct wide {
    B part[K];

    struct from_parts {};

    wide() = default;
    /// Broadcast.
    template <class T, class = std::enable_if_t<std::is_arithmetic_v<T>>>
    explicit wide(T value) : wide(value, std::make_index_sequence<K>{}) {}
    template <class... P>
    explicit wide(from_parts, const P&... parts) : part{parts...} {}
    // Copies part by part: the implicit copy moves the array as a block of bytes, through
    // general registers.
    wide(const wide& other) : wide(other, std::make_index_sequence<K>{}) {}
    wide& operator=(const wide& other) {
        assign(other, std::make_index_sequence<K>{});
        return *this;
    }

  private:
    template <std::size_t... k>
    wide(const wide& other, std::index_sequence<k...>) : part{other.part[k]...} {}
    template <std::size_t... k>
    void assign(const wide& other, std::index_sequence<k...>) {
        ((part[k] = other.part[k]), ...);
    }

    template <class T, std::size_t... k>
    wide(T value, std::index_sequence<k...>) : part{((void)k, B(value))...} {}
};

/// part-wise f(a.part[k], b.part[k], ...). The parts are named by constant indices (no
/// loop over k), so the compiler keeps each part in a register of its own.
template <class F, class B, int K, class... W, std::size_t... k>
auto zip_parts(F f, std::index_sequence<k...>, const wide<B, K>& first, const W&... rest) {
    auto at = [&](auto index) { return f(first.part[index()], rest.part[index()]...); };
    using R = wide<decltype(at(std::integral_constant<std::size_t, 0>{})), K>;
    return R(typename R::from_parts{}, at(std::integral_constant<std::size_t, k>{})...);
}

template <class F, class B, int K, class... W>
auto zip(F f, const wide<B, K>& first, const W&... rest) {
    return zip_parts(f, std::make_index_sequence<K>{}, first, rest...);
}

#define QMIX_KQUANTS_WIDE_OPERATOR(op)                                         \
    template <class B, int K>                                                  \
    auto operator op(const wide<B, K>& a, const wide<B, K>& b) {               \
        return zip([](const auto& x, const auto& y) { return x op y; }, a, b); \
    }
QMIX_KQUANTS_WIDE_OPERATOR(+)
QMIX_KQUANTS_WIDE_OPERATOR(-)
QMIX_KQUANTS_WIDE_OPERATOR(*)
QMIX_KQUANTS_WIDE_OPERATOR(&)
QMIX_KQUANTS_WIDE_OPERATOR(&&)
QMIX_KQUANTS_WIDE_OPERATOR(||)
QMIX_KQUANTS_WIDE_OPERATOR(<)
QMIX_KQUANTS_WIDE_OPERATOR(>)
QMIX_KQUANTS_WIDE_OPERATOR(<=)
QMIX_KQUANTS_WIDE_OPERATOR(>=)
QMIX_KQUANTS_WIDE_OPERATOR(==)
QMIX_KQUANTS_WIDE_OPERATOR(!=)
#undef QMIX_KQUANTS_WIDE_OPERATOR

template <class B, int K>
wide<B, K> operator-(const wide<B, K>& a) {
    return zip([](const auto& x) { return -x; }, a);
}

template <class B, int K>
wide<B, K> operator!(const wide<B, K>& a) {
    return zip([](const auto& x) { return !x; }, a);
}

template <class B, int K>
wide<B, K>& operator+=(wide<B, K>& a, const wide<B, K>& b) {
    a = a + b;
    return a;
}

/// The vector type of the kernels: count = K * (lanes of one batch) float lanes. Lane j
/// lives in batch j / batch_size, so loads and stores of `count` values stay contiguous.
template <class Arch, int K = 1>
struct lanes {
    using ops = batch_ops<Arch>;
    static constexpr int batch_size = ops::count;
    static constexpr int count = K * batch_size;
    using floats = std::conditional_t<K == 1, typename ops::floats, wide<typename ops::floats, K>>;
    using ints = std::conditional_t<K == 1, typename ops::ints, wide<typename ops::ints, K>>;
    using mask = std::conditional_t<K == 1, typename ops::mask, wide<typename ops::mask, K>>;

    static floats load(const float* p) { return load_as<floats>(p); }
    static ints load(const std::int32_t* p) { return load_as<ints>(p); }
    static void store(float* p, const floats& v) { store_as(p, v); }
    static void store(std::int32_t* p, const ints& v) { store_as(p, v); }

    static floats mul(const floats& a, const floats& b) { return apply(of_mul{}, a, b); }
    static floats div(const floats& a, const floats& b) { return apply(of_div{}, a, b); }
    static floats sqrt(const floats& a) { return apply(of_sqrt{}, a); }
    static ints nearest_int(const floats& a) { return apply(of_nearest_int{}, a); }
    static ints min(const ints& a, const ints& b) { return apply(of_min{}, a, b); }
    static ints max(const ints& a, const ints& b) { return apply(of_max{}, a, b); }
    static ints clamp(const ints& v, int lo, int hi) { return max(ints(lo), min(ints(hi), v)); }
    /// ops::nearest_level per lane: the clamped nearest integer of |value| <= 2^21, as a float.
    template <bool low_end = true, bool high_end = true>
    static floats nearest_level(const floats& a, float lo, float hi) {
        return apply(
            [lo, hi](const auto& v) {
                return ops::template nearest_level<low_end, high_end>(v, lo, hi);
            },
            a);
    }
    static floats to_float(const ints& a) { return apply(of_to_float{}, a); }
    static ints to_int(const floats& a) { return apply(of_to_int{}, a); }
    static floats abs(const floats& a) { return apply(of_abs{}, a); }
    /// -a with the sign of a zero kept (simd::negate).
    static floats negate(const floats& a) { return apply(of_negate{}, a); }
    static floats select(const mask& m, const floats& a, const floats& b) {
        return apply(of_select{}, m, a, b);
    }
    static ints select(const mask& m, const ints& a, const ints& b) {
        return apply(of_select{}, m, a, b);
    }

    /// Batch k of v (v itself when K is 1).
    template <class V>
    static auto& part(V& v, int k) {
        if constexpr (K == 1) {
            (void)k;
            return v;
        } else {
            return v.part[k];
        }
    }

    /// Whether every lane of every vector of v[0 .. n) is finite (neither NaN nor infinite).
    static bool all_finite(const floats* v, int n) {
        const floats infinity(std::numeric_limits<float>::infinity());
        mask infinite_or_nan = (abs(v[0]) == infinity) || (v[0] != v[0]);
        for (int i = 1; i < n; ++i) {
            infinite_or_nan = infinite_or_nan || (abs(v[i]) == infinity) || (v[i] != v[i]);
        }
        return none(infinite_or_nan);
    }

    static bool all(const mask& m) { return none(!m); }

    static bool none(const mask& m) {
        if constexpr (K == 1) {
            return xsimd::none(m);
        } else {
            bool result = true;
            for (int k = 0; k < K; ++k) result = result && xsimd::none(m.part[k]);
            return result;
        }
    }

    static floats widen(const std::int8_t* p) {
        static_assert(K == 1, "widen reads one batch");
        return ops::widen(p);
    }

    static void store_bytes(std::uint8_t* p, const ints& v) {
        static_assert(K == 1, "store_bytes writes one batch");
        ops::store_bytes(p, v);
    }

    /// Copies lane `lane` of each of the n vectors v[0 .. n) to out[0 .. n).
    template <class V, class T>
    static void extract_lane(const V* v, int n, int lane, T* out) {
        alignas(64) T values[count];
        for (int i = 0; i < n; ++i) {
            store(values, v[i]);
            out[i] = values[lane];
        }
    }

  private:
    template <class F, class... V>
    static auto apply(F f, const V&... v) {
        if constexpr (K == 1) {
            return f(v...);
        } else {
            return zip(f, v...);
        }
    }

    template <class V, class T>
    static V load_as(const T* p) {
        if constexpr (K == 1) {
            return V::load_unaligned(p);
        } else {
            return load_parts<V>(p, std::make_index_sequence<K>{});
        }
    }

    template <class V, class T, std::size_t... k>
    static V load_parts(const T* p, std::index_sequence<k...>) {
        using B = std::remove_reference_t<decltype(V{}.part[0])>;
        return V(typename V::from_parts{}, B::load_unaligned(p + k * batch_size)...);
    }

    template <class V, class T>
    static void store_as(T* p, const V& v) {
        if constexpr (K == 1) {
            v.store_unaligned(p);
        } else {
            store_parts(p, v, std::make_index_sequence<K>{});
        }
    }

    template <class V, class T, std::size_t... k>
    static void store_parts(T* p, const V& v, std::index_sequence<k...>) {
        (v.part[k].store_unaligned(p + k * batch_size), ...);
    }

    struct of_mul {
        template <class B>
        B operator()(const B& a, const B& b) const {
            return ops::mul(a, b);
        }
    };
    struct of_div {
        template <class B>
        B operator()(const B& a, const B& b) const {
            return ops::div(a, b);
        }
    };
    struct of_sqrt {
        template <class B>
        B operator()(const B& a) const {
            return ops::sqrt(a);
        }
    };
    struct of_nearest_int {
        typename ops::ints operator()(const typename ops::floats& a) const {
            return ops::nearest_int(a);
        }
    };
    struct of_min {
        template <class B>
        B operator()(const B& a, const B& b) const {
            return ops::min(a, b);
        }
    };
    struct of_max {
        template <class B>
        B operator()(const B& a, const B& b) const {
            return ops::max(a, b);
        }
    };
    struct of_to_float {
        typename ops::floats operator()(const typename ops::ints& a) const {
            return ops::to_float(a);
        }
    };
    struct of_to_int {
        typename ops::ints operator()(const typename ops::floats& a) const {
            return ops::to_int(a);
        }
    };
    struct of_negate {
        template <class B>
        B operator()(const B& a) const {
            return simd::negate(a);
        }
    };
    struct of_abs {
        template <class B>
        B operator()(const B& a) const {
            return ops::abs(a);
        }
    };
    struct of_select {
        template <class M, class B>
        B operator()(const M& m, const B& a, const B& b) const {
            return ops::select(m, a, b);
        }
    };
};

/// How many batches the scale searches run side by side (see wide): a property of the
/// instruction set's registers, isa<Arch>::search_batches (measured on Zen, ggml's
/// benchmark data, median of three: four against two gives AVX-512 10 to 13 percent on
/// every k-quant, AVX2 up to 6 percent; SSE2's sixteen registers do better with two).
template <class Arch>
inline constexpr int search_batches = isa<Arch>::search_batches;
/// The same for the search of a scale and an offset (group_search::scale_and_min).
template <class Arch>
inline constexpr int offset_search_batches = isa<Arch>::offset_search_batches;

QMIX_ABI_END
}  // namespace qmix::kernels::kquants
