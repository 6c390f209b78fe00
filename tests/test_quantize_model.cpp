// SPDX-License-Identifier: MIT
// The model quantization pipeline: plans, byte-exact output, fallbacks, errors.
#include <algorithm>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "qmix/whisper/quantize_model.hpp"
#include "qmix/whisper/synthetic.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using namespace qmix;
using namespace qmix::whisper;
using qmix::test::read_bytes;
using qmix::test::scratch_folder;

namespace {

std::string synthetic(const scratch_folder& dir, const std::string& name, model_size size,
                      type_id storage, int layers = 1) {
    synthetic_options options;
    options.size = size;
    options.storage = storage;
    options.layers = layers;
    const std::string path = dir.file(name);
    write_synthetic_model(path, options);
    return path;
}

void quantize_file(const std::string& in, const std::string& out, const quantize_options& options) {
    const model_file model(in);
    const model_plan plan = make_plan(model, options);
    model_writer writer(out);
    execute_plan(model, plan, options, writer);
    writer.commit();
}

void put_i32(std::vector<std::uint8_t>& out, std::int32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(std::uint8_t(std::uint32_t(v) >> (8 * i)));
}

/// What whisper.cpp's quantize writes for a uniform target type, built independently of the
/// pipeline: the header with ftype 2000 + ftype, every 2-D tensor outside the skip list
/// widened to f32 and quantized whole, everything else copied -- with one change where the
/// reference's file does not load: it copies an f32 model's conv weights as f32 under a
/// quantized header, and whisper.cpp creates them as f16 there and refuses the file. Those
/// two tensors are narrowed to f16 (round to nearest even), as qmix writes them.
std::vector<std::uint8_t> reference_output(const std::string& in, type_id type) {
    const model_file model(in);
    const auto header = model.header_bytes();
    std::vector<std::uint8_t> out(header.begin(), header.end());
    const std::int32_t f = 2000 + static_cast<std::int32_t>(*ftype_of_type(type));
    std::memcpy(out.data() + model_file::ftype_offset(), &f, 4);
    const std::vector<std::string> skip = {"encoder.conv1.bias", "encoder.conv2.bias",
                                           "encoder.positional_embedding",
                                           "decoder.positional_embedding"};
    for (const auto& t : model.tensors()) {
        const bool convert =
            t.n_dims == 2 && std::find(skip.begin(), skip.end(), t.name) == skip.end();
        const auto data = model.data(t);
        std::vector<std::uint8_t> payload(data.begin(), data.end());
        type_id written = t.type;
        if (convert) {
            std::vector<float> values(std::size_t(t.element_count()));
            for (std::size_t i = 0; i < values.size(); ++i) {
                if (t.type == type_id::f16) {
                    std::uint16_t h;
                    std::memcpy(&h, data.data + 2 * i, 2);
                    values[i] = half_to_float(h);
                } else {
                    std::memcpy(&values[i], data.data + 4 * i, 4);
                }
            }
            payload.assign(row_size(type, t.ne[0]) * std::size_t(t.row_count()), 0);
            quantize(type, values.data(), payload.data(), t.row_count(), t.ne[0]);
            written = type;
        }
        const bool conv = t.name == "encoder.conv1.weight" || t.name == "encoder.conv2.weight";
        if (conv && t.type == type_id::f32 && type != type_id::f32) {
            payload.clear();
            for (std::int64_t i = 0; i < t.element_count(); ++i) {
                float v;
                std::memcpy(&v, data.data + 4 * i, 4);
                const std::uint16_t h = float_to_half(v);
                payload.push_back(std::uint8_t(h & 0xff));
                payload.push_back(std::uint8_t(h >> 8));
            }
            written = type_id::f16;
        }
        put_i32(out, t.n_dims);
        put_i32(out, std::int32_t(t.name.size()));
        put_i32(out, static_cast<std::int32_t>(written));
        for (int d = 0; d < t.n_dims; ++d) put_i32(out, std::int32_t(t.ne[d]));
        out.insert(out.end(), t.name.begin(), t.name.end());
        out.insert(out.end(), payload.begin(), payload.end());
    }
    return out;
}

const tensor_plan& planned(const model_plan& plan, const std::string& name) {
    for (const auto& p : plan.tensors) {
        if (p.tensor->name == name) return p;
    }
    FAIL("no tensor " << name);
    throw;
}

}  // namespace

TEST_CASE(
    "a uniform type gives the reference tool's bytes for f16 and f32 models and any "
    "thread count",
    "[pipeline]") {
    scratch_folder dir;
    for (const type_id storage : {type_id::f16, type_id::f32}) {
        const auto in = synthetic(dir, "in.bin", model_size::base, storage);
        for (const type_id type : {type_id::q4_0, type_id::q5_1, type_id::q8_0, type_id::q4_k}) {
            INFO("storage " << type_name(storage) << ", type " << type_name(type));
            const auto expected = reference_output(in, type);
            for (unsigned threads : {1u, 3u}) {
                quantize_options options;
                options.default_type = type;
                options.threads = threads;
                quantize_file(in, dir.file("out.bin"), options);
                CHECK(read_bytes(dir.file("out.bin")) == expected);
            }
        }
    }
}

TEST_CASE("rules match whole names, the first match wins, and non-candidates are ignored",
          "[pipeline]") {
    scratch_folder dir;
    const model_file model(synthetic(dir, "in.bin", model_size::base, type_id::f16));
    quantize_options options;
    options.default_type = type_id::q4_0;
    options.rules.add(".*attn\\.query.*=q8_0", "1");
    options.rules.add(".*attn.*=q5_1", "2");
    options.rules.add("mlp=q6_k", "3");  // must match a whole name: never does
    options.rules.add(".*positional_embedding=q8_0", "4");
    const auto plan = make_plan(model, options);
    CHECK(planned(plan, "encoder.blocks.0.attn.query.weight").output == type_id::q8_0);
    CHECK(planned(plan, "encoder.blocks.0.attn.key.weight").output == type_id::q5_1);
    CHECK(planned(plan, "decoder.blocks.0.cross_attn.query.weight").output == type_id::q8_0);
    CHECK(planned(plan, "encoder.blocks.0.mlp.0.weight").output == type_id::q4_0);
    CHECK(planned(plan, "encoder.blocks.0.mlp.0.weight").why == decision::default_type);
    const auto& positional = planned(plan, "encoder.positional_embedding");
    CHECK(positional.why == decision::copied);
    CHECK(positional.ignored_rule == std::size_t(3));
    CHECK(planned(plan, "encoder.conv1.weight").why == decision::copied);  // 3-D
    CHECK(planned(plan, "encoder.blocks.0.attn.query.bias").why == decision::copied);
    CHECK(plan.mixed);
    CHECK(plan.header_ftype == 2007);  // mixed: the widest matrix type, q8_0
    REQUIRE(plan.warnings.size() == 2);
    CHECK_THAT(plan.warnings[0], Catch::Contains("mlp") && Catch::Contains("matched no"));
    CHECK_THAT(plan.warnings[1], Catch::Contains("positional") && Catch::Contains("matched no"));
}

TEST_CASE("a rule that an earlier rule always beats is reported", "[pipeline]") {
    scratch_folder dir;
    const model_file model(synthetic(dir, "in.bin", model_size::tiny, type_id::f16));
    quantize_options options;
    options.rules.add(".*weight=q8_0", "1");
    options.rules.add("decoder\\..*weight=q4_0", "2");
    const auto plan = make_plan(model, options);
    REQUIRE(plan.warnings.size() == 1);
    CHECK_THAT(plan.warnings[0], Catch::Contains("never reached") && Catch::Contains(".*weight"));
    CHECK(plan.header_ftype == 2007);  // every matrix is q8_0: its own ftype
}

TEST_CASE("f16 and f32 are real targets", "[pipeline]") {
    scratch_folder dir;
    const auto in32 = synthetic(dir, "in32.bin", model_size::tiny, type_id::f32);
    const auto in16 = synthetic(dir, "in16.bin", model_size::tiny, type_id::f16);
    const std::string name = "encoder.blocks.0.mlp.0.weight";
    quantize_options to_f16;
    to_f16.default_type = type_id::f16;
    quantize_file(in32, dir.file("a.bin"), to_f16);
    {
        const model_file source(in32), result(dir.file("a.bin"));
        const auto& t = *result.find(name);
        CHECK(t.type == type_id::f16);
        const auto src = source.data(*source.find(name));
        const auto dst = result.data(t);
        bool all_rounded = true;
        for (std::int64_t i = 0; i < t.element_count(); ++i) {
            float v;
            std::uint16_t h;
            std::memcpy(&v, src.data + 4 * i, 4);
            std::memcpy(&h, dst.data + 2 * i, 2);
            all_rounded = all_rounded && h == float_to_half(v);
        }
        CHECK(all_rounded);
        CHECK(result.hparams().ftype == 2001);
        CHECK(result.find("encoder.conv1.weight")->type == type_id::f16);  // follows the header
    }
    quantize_options to_f32;
    to_f32.default_type = type_id::f32;
    quantize_file(in16, dir.file("b.bin"), to_f32);
    quantize_file(dir.file("b.bin"), dir.file("c.bin"), to_f16);
    // f16 -> f32 widens exactly, so narrowing again restores the original model's matrices.
    const model_file original(in16), round_trip(dir.file("c.bin"));
    const auto a = original.data(*original.find(name));
    const auto c = round_trip.data(*round_trip.find(name));
    CHECK(std::equal(a.begin(), a.end(), c.begin(), c.end()));
    CHECK(model_file(dir.file("b.bin")).hparams().ftype == 2000);
    CHECK(model_file(dir.file("b.bin")).find("encoder.conv2.weight")->type == type_id::f32);
    // f16 conv weights widened to f32 and narrowed again: the original bytes.
    const auto conv_a = original.data(*original.find("encoder.conv2.weight"));
    const auto conv_c = round_trip.data(*round_trip.find("encoder.conv2.weight"));
    CHECK(std::equal(conv_a.begin(), conv_a.end(), conv_c.begin(), conv_c.end()));

    quantize_options mixed;
    mixed.default_type = type_id::q4_0;
    mixed.rules.add(".*mlp.*=f32", "1");
    const model_file model(in16);
    CHECK(make_plan(model, mixed).header_ftype == 2000);  // an f32 matrix: all-f32 header
}

TEST_CASE("k-quants fall back on whisper tiny's 384-value rows and the file stays loadable",
          "[pipeline]") {
    scratch_folder dir;
    const auto in = synthetic(dir, "tiny.bin", model_size::tiny, type_id::f16, 2);
    quantize_options options;
    options.default_type = type_id::q4_k;
    const model_file model(in);
    const auto plan = make_plan(model, options);
    const auto& attn = planned(plan, "encoder.blocks.0.attn.query.weight");
    CHECK(attn.why == decision::fallback);
    CHECK(attn.output == type_id::q5_0);
    const auto& mlp2 = planned(plan, "encoder.blocks.0.mlp.2.weight");  // rows of 1536
    CHECK(mlp2.why == decision::default_type);
    CHECK(mlp2.output == type_id::q4_k);
    CHECK(plan.mixed);
    quantize_file(in, dir.file("out.bin"), options);
    const model_file result(dir.file("out.bin"));  // validates every tensor's size
    CHECK(result.find("encoder.blocks.0.attn.query.weight")->type == type_id::q5_0);
    CHECK(result.hparams().ftype == 2008);  // q5_0 (0.6875 bytes a value) is wider than q4_k

    options.default_type = type_id::q6_k;
    CHECK(planned(make_plan(model, options), "decoder.token_embedding.weight").output ==
          type_id::q8_0);

    options.no_fallback = true;
    CHECK_THROWS_WITH(make_plan(model, options),
                      Catch::Contains("--no-fallback") &&
                          Catch::Contains("encoder.blocks.0.attn.query.weight") &&
                          Catch::Contains("384"));
}

TEST_CASE("already-quantized candidates need --allow-requantize", "[pipeline]") {
    scratch_folder dir;
    const auto in = synthetic(dir, "in.bin", model_size::tiny, type_id::f16);
    quantize_options first;
    first.default_type = type_id::q8_0;
    quantize_file(in, dir.file("q8.bin"), first);
    const model_file q8(dir.file("q8.bin"));
    quantize_options second;
    second.default_type = type_id::q4_0;
    CHECK_THROWS_WITH(make_plan(q8, second), Catch::Contains("already quantized") &&
                                                 Catch::Contains("q8_0") &&
                                                 Catch::Contains("--allow-requantize"));
    second.allow_requantize = true;
    const auto warned = make_plan(q8, second).warnings;
    CHECK(std::count_if(warned.begin(), warned.end(), [](const std::string& w) {
              return w.find(
                         "already-quantized tensor(s) (q8_0) are widened and quantized "
                         "again (--allow-requantize)") != std::string::npos;
          }) == 1);
    quantize_file(dir.file("q8.bin"), dir.file("q4.bin"), second);
    CHECK(model_file(dir.file("q4.bin")).find("encoder.blocks.0.mlp.0.weight")->type ==
          type_id::q4_0);
    second.default_type = type_id::q8_0;  // same type: copied, nothing to widen
    CHECK_FALSE(planned(make_plan(q8, second), "encoder.blocks.0.mlp.0.weight").converts());
    CHECK(make_plan(q8, second).warnings.empty());
}

TEST_CASE("non-finite weights are refused with the tensor and the index", "[pipeline]") {
    scratch_folder dir;
    const auto in = synthetic(dir, "in.bin", model_size::tiny, type_id::f32);
    std::uint64_t offset = 0;
    {
        const model_file model(in);
        offset = model.find("decoder.blocks.0.mlp.0.weight")->data_offset + 4 * 1000;
    }
    {
        std::fstream f(in, std::ios::in | std::ios::out | std::ios::binary);
        const float nan = std::nanf("");
        f.seekp(std::streamoff(offset));
        f.write(reinterpret_cast<const char*>(&nan), 4);
    }
    quantize_options options;
    CHECK_THROWS_WITH(quantize_file(in, dir.file("out.bin"), options),
                      Catch::Contains("decoder.blocks.0.mlp.0.weight") &&
                          Catch::Contains("value 1000") && Catch::Contains("NaN"));
    CHECK_FALSE(fs::exists(dir.file("out.bin")));
    options.allow_nonfinite = true;
    CHECK_NOTHROW(quantize_file(in, dir.file("out.bin"), options));
}

TEST_CASE("the non-finite scan finds every infinity and NaN at every position", "[pipeline]") {
    // The scan tests several values per word; a value in any lane or in the tail must show,
    // and the largest finite values must not.
    const std::uint32_t specials32[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u,
                                        0x7f800001u};
    const std::uint32_t finite32[] = {0x7f7fffffu, 0xff7fffffu, 0x00000001u, 0x80000000u};
    const std::uint16_t specials16[] = {0x7c00u, 0xfc00u, 0x7e00u, 0xfe01u, 0x7c01u};
    const std::uint16_t finite16[] = {0x7bffu, 0xfbffu, 0x0001u, 0x8000u};
    for (std::int64_t count = 1; count <= 11; ++count) {
        for (std::int64_t at = 0; at < count; ++at) {
            for (int k = 0; k < 5; ++k) {
                std::vector<float> f32(static_cast<std::size_t>(count));
                std::vector<std::uint8_t> f16(static_cast<std::size_t>(2 * count));
                for (std::int64_t i = 0; i < count; ++i) {
                    const std::uint32_t b32 = i == at ? specials32[k] : finite32[(i + k) % 4];
                    std::memcpy(&f32[std::size_t(i)], &b32, 4);
                    const std::uint16_t b16 = i == at ? specials16[k] : finite16[(i + k) % 4];
                    f16[std::size_t(2 * i)] = std::uint8_t(b16 & 0xff);
                    f16[std::size_t(2 * i + 1)] = std::uint8_t(b16 >> 8);
                }
                CHECK(qmix::whisper::detail::any_nonfinite_f32(f32.data(), count));
                CHECK(qmix::whisper::detail::any_nonfinite_f16(f16.data(), count));
                CHECK_FALSE(qmix::whisper::detail::any_nonfinite_f32(f32.data(), at));
                CHECK_FALSE(qmix::whisper::detail::any_nonfinite_f16(f16.data(), at));
            }
        }
    }
}

TEST_CASE("statistics measure the error of what was written", "[pipeline]") {
    scratch_folder dir;
    const model_file model(synthetic(dir, "in.bin", model_size::tiny, type_id::f16));
    quantize_options options;
    options.compute_stats = true;
    options.default_type = type_id::q8_0;
    const auto plan = make_plan(model, options);
    model_writer writer(dir.file("out.bin"));
    const auto result = execute_plan(model, plan, options, writer);
    std::size_t computed = 0;
    for (std::size_t i = 0; i < plan.tensors.size(); ++i) {
        if (!result.stats[i].computed) continue;
        ++computed;
        CHECK(result.stats[i].rmse > 0);
        CHECK(result.stats[i].rmse < 1e-3);
        CHECK(result.stats[i].max_abs_error >= result.stats[i].rmse);
    }
    CHECK(computed ==
          std::size_t(std::count_if(plan.tensors.begin(), plan.tensors.end(),
                                    [](const tensor_plan& p) { return p.converts(); })));
}

namespace {

/// A model of two candidate tensors: one whose rows are longer than the pipeline's piece
/// (cut at block boundaries), one of many short rows spread over several chunks.
std::string long_row_model(const scratch_folder& dir, type_id storage) {
    hyper_parameters hparams;
    hparams.n_vocab = 3;
    hparams.n_mels = 1;
    hparams.ftype =
        header_ftype_value(storage == type_id::f16 ? ftype::mostly_f16 : ftype::all_f32);
    mel_filters mel;
    mel.n_mel = 1;
    mel.n_fft = 2;
    mel.values = {0.5f, 0.25f};
    const std::string path = dir.file("long-rows.bin");
    model_writer out(path);
    out.write_header(hparams, mel, {"a", "", "token"});
    std::uint32_t state = 12345;
    auto next = [&state] {
        state = state * 1664525u + 1013904223u;
        return (float(state >> 8) / float(1 << 24) - 0.5f) * 0.1f;
    };
    const std::array<std::array<std::int64_t, max_dims>, 2> shapes{
        {{3 * 65536 + 5 * 256, 3, 1, 1}, {512, 4608, 1, 1}}};
    const char* names[] = {"decoder.blocks.0.mlp.0.weight", "decoder.blocks.0.mlp.2.weight"};
    for (std::size_t t = 0; t < shapes.size(); ++t) {
        const std::int64_t count = shapes[t][0] * shapes[t][1];
        std::vector<float> values(static_cast<std::size_t>(count));
        for (auto& v : values) v = next();
        std::vector<std::uint8_t> bytes(row_size(storage, shapes[t][0]) *
                                        std::size_t(shapes[t][1]));
        quantize(storage, values.data(), bytes.data(), shapes[t][1], shapes[t][0]);
        out.write_tensor(names[t], storage, 2, shapes[t], bytes.data(), bytes.size());
    }
    out.commit();
    return path;
}

}  // namespace

TEST_CASE("rows longer than a piece and tensors of many chunks give the whole-row bytes",
          "[pipeline]") {
    scratch_folder dir;
    for (const type_id storage : {type_id::f16, type_id::f32}) {
        const model_file model(long_row_model(dir, storage));
        for (const type_id target : {type_id::q4_0, type_id::q5_1, type_id::q8_0, type_id::q4_k,
                                     type_id::q6_k, type_id::f16}) {
            if (target == storage) continue;
            INFO(type_name(storage) << " -> " << type_name(target));
            std::vector<std::vector<std::uint8_t>> outputs;
            for (const unsigned threads : {1u, 2u, 3u}) {
                quantize_options options;
                options.default_type = target;
                options.threads = threads;
                options.compute_stats = true;
                const auto plan = make_plan(model, options);
                const std::string out_path = dir.file("out.bin");
                model_writer writer(out_path);
                const auto result = execute_plan(model, plan, options, writer);
                writer.commit();
                const model_file written(out_path);
                for (std::size_t i = 0; i < model.tensors().size(); ++i) {
                    const tensor_entry& in = model.tensors()[i];
                    const auto source = model.data(in);
                    std::vector<float> values(std::size_t(in.element_count()));
                    dequantize(in.type, source.data, values.data(), in.row_count(), in.ne[0]);
                    std::vector<std::uint8_t> expected(row_size(target, in.ne[0]) *
                                                       std::size_t(in.row_count()));
                    quantize(target, values.data(), expected.data(), in.row_count(), in.ne[0]);
                    const auto got = written.data(written.tensors()[i]);
                    REQUIRE(got.size == expected.size());
                    CHECK(std::memcmp(got.data, expected.data(), got.size) == 0);
                    // The statistics of the written values, summed row by row.
                    std::vector<float> back(values.size());
                    dequantize(target, expected.data(), back.data(), in.row_count(), in.ne[0]);
                    double squared = 0;
                    for (std::size_t v = 0; v < values.size(); ++v) {
                        const double d = double(back[v]) - double(values[v]);
                        squared += d * d;
                    }
                    const double rmse = std::sqrt(squared / double(values.size()));
                    CHECK(result.stats[i].rmse == Approx(rmse).epsilon(1e-9));
                }
                outputs.push_back(read_bytes(out_path));
            }
            CHECK(outputs[0] == outputs[1]);
            CHECK(outputs[0] == outputs[2]);
        }
    }
}
