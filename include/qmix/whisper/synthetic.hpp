// SPDX-License-Identifier: MIT
#pragma once

// Synthetic whisper models: the tensor names, shapes, order and storage types that
// whisper.cpp's converter (models/convert-pt-to-ggml.py) writes for each model size,
// filled with deterministic pseudo-random weights shaped like trained ones. They let the
// tests and benchmarks exercise the quantizer on every model size without downloading
// gigabytes of checkpoints.
//
// The values come from a self-contained generator (splitmix64 and integer arithmetic, one
// rounding per value), so a seed gives the same bytes on every compiler, standard library
// and CPU; std::normal_distribution would not.

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qmix/core/binary16.hpp"
#include "qmix/core/error.hpp"
#include "qmix/core/ftype.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/whisper/model_file.hpp"
#include "qmix/whisper/model_writer.hpp"

namespace qmix::whisper {

enum class model_size { tiny, base, small, medium, large };

inline constexpr std::array<std::pair<model_size, std::string_view>, 5> model_size_names{{
    {model_size::tiny, "tiny"},
    {model_size::base, "base"},
    {model_size::small, "small"},
    {model_size::medium, "medium"},
    {model_size::large, "large"},
}};

inline std::optional<model_size> parse_model_size(std::string_view text) noexcept {
    for (const auto& [size, name] : model_size_names) {
        if (name == text) return size;
    }
    return std::nullopt;
}

inline std::string_view model_size_name(model_size size) noexcept {
    for (const auto& [known, name] : model_size_names) {
        if (known == size) return name;
    }
    return "?";
}

/// Tokens in the synthetic vocabulary (the size of whisper's multilingual tiktoken table).
inline constexpr std::int32_t synthetic_vocabulary_size = 50257;
inline constexpr std::uint64_t synthetic_default_seed = 0x5eed;

struct synthetic_options {
    model_size size = model_size::tiny;
    type_id storage = type_id::f16;  ///< f16 (the converter's default) or f32 (its use-f32)
    std::uint64_t seed = synthetic_default_seed;
    std::optional<std::int32_t> layers;  ///< overrides both layer counts (small test models)
};

/// How a tensor's values are drawn: roughly normal with standard deviation `scale`
/// around `centre`, each row's scale jittered by 0.5x..1.5x when `row_jitter` is set, one
/// value in 2048 multiplied by 6..13 when `outliers` is set; or uniform in [-scale, scale].
struct value_shape {
    float scale = 0.02f;
    float centre = 0.0f;
    bool row_jitter = false;
    bool outliers = false;
    bool uniform = false;
};

struct synthetic_tensor {
    std::string name;
    type_id type = type_id::f32;
    int n_dims = 1;
    std::array<std::int64_t, max_dims> ne{{1, 1, 1, 1}};
    value_shape shape;
};

inline hyper_parameters synthetic_hyper_parameters(const synthetic_options& options) {
    struct dimensions {
        std::int32_t state, heads, layers;
    };
    static constexpr std::array<dimensions, 5> by_size{{
        {384, 6, 4},     // tiny
        {512, 8, 6},     // base
        {768, 12, 12},   // small
        {1024, 16, 24},  // medium
        {1280, 20, 32},  // large
    }};
    if (options.storage != type_id::f16 && options.storage != type_id::f32) {
        throw error("synthetic models are stored as f16 or f32, not " +
                    std::string(type_name(options.storage)));
    }
    if (options.layers && (*options.layers < 1 || *options.layers > 1024)) {
        throw error("synthetic model layer count " + std::to_string(*options.layers) +
                    " is outside 1..1024");
    }
    const dimensions d = by_size[static_cast<std::size_t>(options.size)];
    const std::int32_t layers = options.layers.value_or(d.layers);
    hyper_parameters h;
    h.n_vocab = 51865;  // the multilingual models; the English-only ones have 51864
    h.n_audio_ctx = 1500;
    h.n_audio_state = d.state;
    h.n_audio_head = d.heads;
    h.n_audio_layer = layers;
    h.n_text_ctx = 448;
    h.n_text_state = d.state;
    h.n_text_head = d.heads;
    h.n_text_layer = layers;
    h.n_mels = 80;
    // The converter writes its use_f16 flag as is: ftype 1 or 0, quantization version 0.
    h.ftype = static_cast<std::int32_t>(options.storage == type_id::f16 ? ftype::mostly_f16
                                                                        : ftype::all_f32);
    return h;
}

namespace detail {

/// splitmix64: a full-period 64-bit generator, good enough for test weights and cheap.
struct splitmix64 {
    std::uint64_t state;

    std::uint64_t next() noexcept {
        std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
};

/// FNV-1a, to give every tensor its own stream whatever the tensors around it.
inline std::uint64_t name_hash(std::string_view name) noexcept {
    std::uint64_t hash = 0xcbf29ce484222325ull;
    for (const char c : name) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001b3ull;
    }
    return hash;
}

/// Draws one row of values. Each row is seeded from the tensor seed and its index, so
/// the values do not depend on how the caller chunks the rows.
inline void synthetic_row(const value_shape& shape, std::uint64_t tensor_seed, std::int64_t row,
                          float* out, std::int64_t n) {
    splitmix64 random{tensor_seed ^ (static_cast<std::uint64_t>(row) * 0xd1b54a32d192ed03ull)};
    random.next();
    float scale = shape.scale;
    if (shape.row_jitter) {
        const float jitter = strict::mul(static_cast<float>(random.next() >> 40), 0x1p-24f);
        scale = scale * (0.5f + jitter);
    }
    if (shape.uniform) {
        const float step = scale * 0x1p-31f;
        for (std::int64_t i = 0; i < n; ++i) {
            const auto drawn = static_cast<std::int64_t>(random.next() >> 32) - (1ll << 31);
            out[i] = static_cast<float>(drawn) * step;
        }
        return;
    }
    // Twice the sum of three 16-bit uniforms, centred: an odd integer in +-196605 with a
    // bell-shaped distribution of standard deviation 65536 (Irwin-Hall), so the value is
    // one exact integer-to-float conversion and one multiplication.
    const float step = scale * 0x1p-16f;
    for (std::int64_t i = 0; i < n; ++i) {
        const std::uint64_t r = random.next();
        std::int32_t sum = 2 * static_cast<std::int32_t>((r & 0xffff) + ((r >> 16) & 0xffff) +
                                                         ((r >> 32) & 0xffff)) -
                           196605;
        const auto rare = static_cast<std::uint32_t>(r >> 48);
        if (shape.outliers && (rare & 0x7ff) == 0) sum *= 6 + static_cast<std::int32_t>(rare >> 13);
        out[i] = strict::mul(static_cast<float>(sum), step) + shape.centre;
    }
}

}  // namespace detail

/// The tensors whisper.cpp's converter writes for these hyper-parameters, in its order
/// (PyTorch state-dict order), with its extents (ne[0] first) and storage types.
inline std::vector<synthetic_tensor> synthetic_tensors(const hyper_parameters& h, type_id storage) {
    std::vector<synthetic_tensor> list;
    const auto add = [&](std::string name, std::vector<std::int64_t> extents, value_shape shape) {
        synthetic_tensor t;
        t.name = std::move(name);
        t.n_dims = static_cast<int>(extents.size());
        for (std::size_t d = 0; d < extents.size(); ++d) t.ne[d] = extents[d];
        t.shape = shape;
        // The converter keeps 1-D tensors, the conv biases and both positional
        // embeddings in f32 even in an f16 model.
        const bool kept_f32 =
            t.n_dims < 2 || t.name == "encoder.conv1.bias" || t.name == "encoder.conv2.bias" ||
            t.name == "encoder.positional_embedding" || t.name == "decoder.positional_embedding";
        t.type = storage == type_id::f16 && !kept_f32 ? type_id::f16 : type_id::f32;
        list.push_back(std::move(t));
    };
    const auto weights = [](std::int64_t fan_in) {
        value_shape s;
        // Kaiming-like: unit-variance inputs give unit-variance outputs.
        s.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(fan_in)));
        s.row_jitter = true;
        s.outliers = true;
        return s;
    };
    const value_shape bias{0.02f, 0.0f, false, true, false};
    const value_shape norm_weight{0.05f, 1.0f, false, false, false};
    const value_shape norm_bias{0.02f, 0.0f, false, false, false};

    const auto block = [&](const std::string& prefix, std::int64_t state, bool cross) {
        const auto attention = [&](const std::string& a) {
            add(prefix + a + ".query.weight", {state, state}, weights(state));
            add(prefix + a + ".query.bias", {state}, bias);
            add(prefix + a + ".key.weight", {state, state}, weights(state));
            add(prefix + a + ".value.weight", {state, state}, weights(state));
            add(prefix + a + ".value.bias", {state}, bias);
            add(prefix + a + ".out.weight", {state, state}, weights(state));
            add(prefix + a + ".out.bias", {state}, bias);
        };
        attention("attn");
        add(prefix + "attn_ln.weight", {state}, norm_weight);
        add(prefix + "attn_ln.bias", {state}, norm_bias);
        if (cross) {
            attention("cross_attn");
            add(prefix + "cross_attn_ln.weight", {state}, norm_weight);
            add(prefix + "cross_attn_ln.bias", {state}, norm_bias);
        }
        add(prefix + "mlp.0.weight", {state, 4 * state}, weights(state));
        add(prefix + "mlp.0.bias", {4 * state}, bias);
        add(prefix + "mlp.2.weight", {4 * state, state}, weights(4 * state));
        add(prefix + "mlp.2.bias", {state}, bias);
        add(prefix + "mlp_ln.weight", {state}, norm_weight);
        add(prefix + "mlp_ln.bias", {state}, norm_bias);
    };

    const std::int64_t audio = h.n_audio_state;
    const std::int64_t text = h.n_text_state;
    // Sinusoids in the real model: bounded by 1.
    add("encoder.positional_embedding", {audio, h.n_audio_ctx},
        value_shape{1.0f, 0.0f, false, false, true});
    add("encoder.conv1.weight", {3, h.n_mels, audio}, weights(3 * std::int64_t(h.n_mels)));
    add("encoder.conv1.bias", {1, audio}, bias);
    add("encoder.conv2.weight", {3, audio, audio}, weights(3 * audio));
    add("encoder.conv2.bias", {1, audio}, bias);
    for (std::int32_t i = 0; i < h.n_audio_layer; ++i) {
        block("encoder.blocks." + std::to_string(i) + ".", audio, false);
    }
    add("encoder.ln_post.weight", {audio}, norm_weight);
    add("encoder.ln_post.bias", {audio}, norm_bias);
    add("decoder.positional_embedding", {text, h.n_text_ctx},
        value_shape{0.01f, 0.0f, false, false, false});
    add("decoder.token_embedding.weight", {text, h.n_vocab},
        value_shape{0.03f, 0.0f, true, true, false});
    for (std::int32_t i = 0; i < h.n_text_layer; ++i) {
        block("decoder.blocks." + std::to_string(i) + ".", text, true);
    }
    add("decoder.ln.weight", {text}, norm_weight);
    add("decoder.ln.bias", {text}, norm_bias);
    return list;
}

/// Triangular filters over n_fft bins, narrow at the bottom and wide at the top like a mel
/// filter bank, with the area-normalised heights (a few hundredths) of the real ones.
inline mel_filters synthetic_mel_filters(std::int32_t n_mel, std::int32_t n_fft) {
    mel_filters mel;
    mel.n_mel = n_mel;
    mel.n_fft = n_fft;
    mel.values.assign(std::size_t(n_mel) * std::size_t(n_fft), 0.0f);
    // Band edges grow with the square of the band index: edge k of n_mel + 2.
    const auto edge = [&](std::int64_t k) {
        const std::int64_t span = std::int64_t(n_mel) + 1;
        return static_cast<double>(k * k * (n_fft - 1)) / static_cast<double>(span * span);
    };
    for (std::int32_t m = 0; m < n_mel; ++m) {
        const double left = edge(m), centre = edge(m + 1), right = edge(m + 2);
        const double height = 2.0 / (right - left);
        for (std::int32_t j = 0; j < n_fft; ++j) {
            const double x = j;
            double weight = 0.0;
            if (x > left && x <= centre) weight = (x - left) / (centre - left) * height;
            if (x > centre && x < right) weight = (right - x) / (right - centre) * height;
            mel.values[std::size_t(m) * std::size_t(n_fft) + std::size_t(j)] =
                static_cast<float>(weight);
        }
    }
    return mel;
}

/// Byte strings standing in for BPE tokens: the 256 single bytes, then 2..16-byte
/// lower-case words, half of them with a leading space as in GPT-2's vocabulary.
inline std::vector<std::string> synthetic_vocabulary(
    std::uint64_t seed, std::int32_t count = synthetic_vocabulary_size) {
    std::vector<std::string> tokens;
    tokens.reserve(static_cast<std::size_t>(count > 0 ? count : 0));
    detail::splitmix64 random{seed ^ 0x766f636162756c61ull};
    for (std::int32_t i = 0; i < count; ++i) {
        if (i < 256) {
            tokens.emplace_back(1, static_cast<char>(i));
            continue;
        }
        std::uint64_t r = random.next();
        const std::size_t length = 2 + r % 15;
        r /= 15;
        std::string token;
        token.reserve(length);
        if (r & 1) token += ' ';
        r >>= 1;
        while (token.size() < length) {
            if (r < 26) r = random.next();
            token += static_cast<char>('a' + r % 26);
            r /= 26;
        }
        tokens.push_back(std::move(token));
    }
    return tokens;
}

/// Writes the header and every tensor of a synthetic model to `out` (commit is the
/// caller's, so that it can expose out.temporary_path() to a signal handler meanwhile).
/// Memory use is a few hundred kilobytes whatever the model size: values are drawn and
/// written a chunk of rows at a time.
inline void write_synthetic_model(model_writer& out, const synthetic_options& options) {
    const hyper_parameters h = synthetic_hyper_parameters(options);
    out.write_header(h, synthetic_mel_filters(h.n_mels, 201), synthetic_vocabulary(options.seed));

    constexpr std::int64_t chunk_values = 1 << 16;
    std::vector<float> values;
    std::vector<std::uint8_t> bytes;
    for (const synthetic_tensor& t : synthetic_tensors(h, options.storage)) {
        out.begin_tensor(t.name, t.type, t.n_dims, t.ne);
        const std::uint64_t tensor_seed =
            detail::splitmix64{options.seed ^ detail::name_hash(t.name)}.next();
        const std::int64_t row_length = t.ne[0];
        const std::int64_t rows = t.ne[1] * t.ne[2] * t.ne[3];
        const std::int64_t rows_per_chunk =
            row_length >= chunk_values ? 1 : chunk_values / row_length;
        for (std::int64_t first = 0; first < rows; first += rows_per_chunk) {
            const std::int64_t count =
                rows - first < rows_per_chunk ? rows - first : rows_per_chunk;
            const auto n = static_cast<std::size_t>(count * row_length);
            values.resize(n);
            for (std::int64_t r = 0; r < count; ++r) {
                detail::synthetic_row(t.shape, tensor_seed, first + r,
                                      values.data() + r * row_length, row_length);
            }
            // Serialise little-endian whatever the host order.
            if (t.type == type_id::f16) {
                bytes.resize(n * 2);
                for (std::size_t i = 0; i < n; ++i) {
                    const std::uint16_t half = float_to_half(values[i]);
                    bytes[2 * i] = std::uint8_t(half);
                    bytes[2 * i + 1] = std::uint8_t(half >> 8);
                }
            } else {
                bytes.resize(n * 4);
                for (std::size_t i = 0; i < n; ++i) {
                    detail::store_u32(&bytes[4 * i], binary16::bits_of(values[i]));
                }
            }
            out.write_data(bytes.data(), bytes.size());
        }
        out.end_tensor();
    }
}

/// Writes a synthetic model to `path` and commits it.
inline void write_synthetic_model(const std::string& path, const synthetic_options& options) {
    model_writer out(path);
    write_synthetic_model(out, options);
    out.commit();
}

}  // namespace qmix::whisper
