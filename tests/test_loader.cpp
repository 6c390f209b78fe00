// SPDX-License-Identifier: MIT
// Where a model loads: whisper.cpp's loader rules as specifications, and every output of the
// pipeline held against them.
#include <catch2/catch.hpp>

#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "qmix/whisper/info.hpp"
#include "qmix/whisper/quantize_model.hpp"
#include "qmix/whisper/synthetic.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using namespace qmix;
using namespace qmix::whisper;
using qmix::test::scratch_folder;

namespace {

tensor_entry tensor(const std::string& name, std::vector<std::int64_t> extents, type_id type) {
    tensor_entry t;
    t.name = name;
    t.type = type;
    t.n_dims = int(extents.size());
    for (std::size_t d = 0; d < extents.size(); ++d) t.ne[d] = extents[d];
    t.data_size = bytes_as(t, type);
    return t;
}

std::int32_t header(type_id type) {
    return 2000 + static_cast<std::int32_t>(*ftype_of_type(type));
}

/// A two-layer-free directory with one tensor of each role.
std::vector<tensor_entry> directory(type_id matrices, type_id conv, type_id others) {
    return {tensor("encoder.conv1.weight", {3, 80, 512}, conv),
            tensor("encoder.conv1.bias", {1, 512}, others),
            tensor("encoder.positional_embedding", {512, 1500}, others),
            tensor("encoder.blocks.0.attn.query.weight", {512, 512}, matrices),
            tensor("encoder.blocks.0.attn.query.bias", {512}, others),
            tensor("encoder.blocks.0.mlp.2.weight", {2048, 512}, matrices),
            tensor("decoder.token_embedding.weight", {512, 51865}, matrices)};
}

/// whisper.cpp's whisper_model_load, written out from its source independently of
/// qmix's loader.hpp: the type each tensor is created as (by name), then its size checks.
struct simulated_load {
    bool upstream = true;
    bool per_tensor = true;
    std::uint64_t buffers = 0;
};

simulated_load simulate_whisper_cpp(const std::vector<tensor_entry>& tensors, std::int32_t ftype) {
    static const std::regex matrix(
        R"((encoder|decoder)\.blocks\.[0-9]+\.(attn|cross_attn)\.(query|key|value|out)\.weight)"
        R"(|(encoder|decoder)\.blocks\.[0-9]+\.mlp\.[02]\.weight|decoder\.token_embedding\.weight)");
    simulated_load load;
    const auto wtype = type_of_ftype(ftype % 1000);
    if (!wtype) return {false, false, 0};
    for (const tensor_entry& t : tensors) {
        type_id created = type_id::f32;
        if (t.name == "encoder.conv1.weight" || t.name == "encoder.conv2.weight") {
            created = *wtype == type_id::f32 ? type_id::f32 : type_id::f16;
        } else if (std::regex_match(t.name, matrix)) {
            created = *wtype;
        }
        const auto& c = info(created);
        if (t.ne[0] % c.block_size != 0) return {false, false, 0};  // ggml asserts
        const std::uint64_t elements = std::uint64_t(t.element_count());
        const std::uint64_t nbytes = elements / c.block_size * c.type_size;
        load.buffers += nbytes;
        // released whisper.cpp: nelements * type_size(file type) / blck_size(created type)
        load.upstream = load.upstream && t.type == created &&
                        elements * info(t.type).type_size / c.block_size == nbytes;
        // the mixed-precision loader: another type is retyped when it fits the buffer
        const std::uint64_t file_bytes =
            std::uint64_t(row_size(t.type, t.ne[0])) * std::uint64_t(t.row_count());
        load.per_tensor =
            load.per_tensor && (t.type == created ? file_bytes == nbytes : file_bytes <= nbytes);
    }
    return load;
}

std::vector<type_id> storage_types() {
    std::vector<type_id> types;
    for (const auto& entry : type_table) {
        if (ftype_of_type(entry.id)) types.push_back(entry.id);
    }
    return types;
}

}  // namespace

TEST_CASE("released whisper.cpp loads a model whose every tensor has the type it creates",
          "[loader]") {
    for (const type_id t : {type_id::f16, type_id::q4_0, type_id::q5_k}) {
        const auto verdict = check_loaders(directory(t, type_id::f16, type_id::f32), header(t));
        CHECK(verdict.upstream.accepts());
        CHECK(verdict.per_tensor.accepts());
        CHECK(verdict.summary() == "loads in whisper.cpp (any version)");
    }
    const auto f32 =
        check_loaders(directory(type_id::f32, type_id::f32, type_id::f32), header(type_id::f32));
    CHECK(f32.upstream.accepts());
}

TEST_CASE("f32 conv weights under a quantized header load nowhere", "[loader]") {
    const auto verdict =
        check_loaders(directory(type_id::q4_0, type_id::f32, type_id::f32), header(type_id::q4_0));
    REQUIRE_FALSE(verdict.per_tensor.accepts());
    CHECK(verdict.per_tensor.refusals.front().tensor == "encoder.conv1.weight");
    CHECK_THAT(verdict.per_tensor.refusals.front().reason, Catch::Contains("larger than its f16"));
    CHECK_FALSE(verdict.upstream.accepts());
    CHECK_THAT(verdict.summary(), Catch::StartsWith("no whisper.cpp loads it"));
}

TEST_CASE("the per-tensor loader takes smaller matrices in buffers of the header's type",
          "[loader]") {
    auto tensors = directory(type_id::q4_k, type_id::f16, type_id::f32);
    tensors[3].type = type_id::q8_0;  // the attention matrix
    tensors[3].data_size = bytes_as(tensors[3], type_id::q8_0);
    const auto q8 = check_loaders(tensors, header(type_id::q8_0));
    CHECK_FALSE(q8.upstream.accepts());
    CHECK(q8.upstream.refusals.size() == 2);  // the two q4_k matrices
    CHECK(q8.per_tensor.accepts());
    std::uint64_t expected = 0;
    for (const auto& t : tensors) {
        expected += bytes_as(
            t, t.name.find("weight") != std::string::npos && t.name != "encoder.conv1.weight"
                   ? type_id::q8_0
                   : (t.name == "encoder.conv1.weight" ? type_id::f16 : type_id::f32));
    }
    CHECK(q8.buffer_bytes == expected);
    CHECK_THAT(q8.summary(), Catch::Contains("per-tensor types") && Catch::Contains("MiB"));
    // Under a q4_k header the q8_0 matrix does not fit its buffer.
    const auto q4 = check_loaders(tensors, header(type_id::q4_k));
    REQUIRE_FALSE(q4.per_tensor.accepts());
    CHECK(q4.per_tensor.refusals.front().tensor == "encoder.blocks.0.attn.query.weight");
}

TEST_CASE("a header type that cannot hold every matrix's rows loads nowhere", "[loader]") {
    auto tensors = directory(type_id::q4_0, type_id::f16, type_id::f32);
    tensors[3] = tensor("encoder.blocks.0.attn.query.weight", {384, 384}, type_id::q4_0);
    const auto verdict = check_loaders(tensors, header(type_id::q6_k));
    CHECK_FALSE(verdict.per_tensor.accepts());
    CHECK_THAT(verdict.per_tensor.refusals.front().reason, Catch::Contains("cannot hold rows"));
    // so the header of such a mix steps up to a type that holds them all
    CHECK(header_type_for({type_id::q6_k, type_id::q4_0}, {384, 1536}, type_id::q4_0) ==
          type_id::q8_0);
    CHECK(header_type_for({type_id::q6_k, type_id::q4_0}, {512, 2048}, type_id::q4_0) ==
          type_id::q6_k);
    CHECK(header_type_for({type_id::q4_k, type_id::q5_0}, {384, 1536}, type_id::q4_0) ==
          type_id::q5_0);
}

TEST_CASE("a mixed model's header avoids the types ggml's CPU backend repacks", "[loader]") {
    // Seen with the per-tensor loader on an AVX2 CPU: a q2_k matrix in a buffer created as
    // q4_0 aborts in ggml-cpu/repack.cpp (GGML_ASSERT(t->type == GGML_TYPE_Q4_0)).
    auto tensors = directory(type_id::q4_0, type_id::f16, type_id::f32);
    tensors[5].type = type_id::q2_k;
    tensors[5].data_size = bytes_as(tensors[5], type_id::q2_k);
    const auto q4_0 = check_loaders(tensors, header(type_id::q4_0));
    REQUIRE_FALSE(q4_0.per_tensor.accepts());
    CHECK_THAT(q4_0.per_tensor.refusals.front().reason, Catch::Contains("repacks"));
    CHECK(check_loaders(tensors, header(type_id::q4_1)).per_tensor.accepts());
    CHECK(header_type_for({type_id::q2_k, type_id::q4_0}, {384, 1536}, type_id::q4_0) ==
          type_id::q4_1);
    CHECK(header_type_for({type_id::q3_k, type_id::q4_k}, {512, 2048}, type_id::q4_0) ==
          type_id::q4_1);
    // A uniform model keeps its type: nothing is retyped.
    CHECK(header_type_for({type_id::q4_0}, {384}, type_id::q4_0) == type_id::q4_0);
}

TEST_CASE("a header ftype no whisper.cpp knows is refused by both loaders", "[loader]") {
    const auto verdict = check_loaders(directory(type_id::q4_0, type_id::f16, type_id::f32), 2005);
    CHECK_FALSE(verdict.upstream.accepts());
    CHECK_FALSE(verdict.per_tensor.accepts());
}

TEST_CASE("every plan, uniform, mixed or with fallbacks, for f16 and f32 inputs, loads",
          "[loader][pipeline]") {
    scratch_folder dir;
    for (const model_size size : {model_size::tiny, model_size::base}) {
        for (const type_id storage : {type_id::f16, type_id::f32}) {
            synthetic_options options;
            options.size = size;
            options.storage = storage;
            options.layers = 1;
            const std::string in = dir.file("in.bin");
            write_synthetic_model(in, options);
            const model_file model(in);
            std::vector<quantize_options> runs;
            for (const type_id type : storage_types()) {
                quantize_options uniform;
                uniform.default_type = type;
                runs.push_back(uniform);
            }
            quantize_options mixed;  // the README's first example
            mixed.default_type = type_id::q4_k;
            mixed.rules.add("encoder\\..*=q8_0", "1");
            mixed.rules.add(".*attn.*=q5_k", "2");
            runs.push_back(mixed);
            quantize_options with_f32;
            with_f32.default_type = type_id::q4_0;
            with_f32.rules.add(".*mlp.*=f32", "1");
            runs.push_back(with_f32);
            for (const auto& run : runs) {
                INFO(model_size_name(size)
                     << " " << type_name(storage) << " -> " << type_name(run.default_type) << ", "
                     << run.rules.size() << " rule(s)");
                const model_plan plan = make_plan(model, run);
                const auto written = whisper::detail::output_directory(plan.tensors);
                const simulated_load load = simulate_whisper_cpp(written, plan.header_ftype);
                CHECK(load.per_tensor);
                CHECK(load.upstream == !plan.mixed);
                CHECK(plan.loaders.upstream.accepts() == load.upstream);
                CHECK(plan.loaders.per_tensor.accepts() == load.per_tensor);
                CHECK(plan.loaders.buffer_bytes == load.buffers);
                // The header records the widest matrix type, never a wider one than the
                // loader needs: a type between the two would be repacked (in a mixed model)
                // or could not hold some matrix's rows.
                const type_id wtype = *type_of_ftype(plan.header_ftype % 1000);
                double widest = 0;
                for (const auto& p : plan.tensors) {
                    if (p.candidate) widest = std::max(widest, bytes_per_value(p.output));
                }
                CHECK(bytes_per_value(wtype) >= widest);
                for (const type_id t : storage_types()) {
                    if (bytes_per_value(t) < widest || bytes_per_value(t) >= bytes_per_value(wtype))
                        continue;
                    INFO("narrower header possible: " << type_name(t));
                    const bool rows_fit = std::all_of(
                        plan.tensors.begin(), plan.tensors.end(), [&](const tensor_plan& p) {
                            return !p.candidate || can_hold_row(t, p.tensor->ne[0]);
                        });
                    CHECK((!rows_fit || (plan.mixed && repacked_by_ggml_cpu(t))));
                }
            }
        }
    }
}

TEST_CASE("written files hold what the plan promised: f32 inputs to q4_0, f16 and mixed",
          "[loader][pipeline]") {
    scratch_folder dir;
    synthetic_options options;
    options.size = model_size::tiny;
    options.storage = type_id::f32;
    options.layers = 1;
    const std::string in = dir.file("tiny32.bin");
    write_synthetic_model(in, options);
    for (const type_id type : {type_id::q4_0, type_id::f16, type_id::q4_k}) {
        INFO(type_name(type));
        quantize_options run;
        run.default_type = type;
        const model_file model(in);
        const model_plan plan = make_plan(model, run);
        {
            model_writer writer(dir.file("out.bin"));
            execute_plan(model, plan, run, writer);
            writer.commit();
        }
        const model_file out(dir.file("out.bin"));
        CHECK(out.hparams().ftype == plan.header_ftype);
        CHECK(out.find("encoder.conv1.weight")->type == type_id::f16);
        const simulated_load load = simulate_whisper_cpp(out.tensors(), out.hparams().ftype);
        CHECK(load.per_tensor);
        CHECK(load.upstream == (type != type_id::q4_k));  // tiny's 384-wide rows fall back
        const auto verdict = check_loaders(out.tensors(), out.hparams().ftype);
        CHECK(verdict.upstream.accepts() == load.upstream);
        CHECK(verdict.summary() == plan.loaders.summary());
    }
}

TEST_CASE("--loader upstream refuses a mixed plan, naming tensors and uniform types that work",
          "[loader][pipeline]") {
    scratch_folder dir;
    synthetic_options options;
    options.layers = 1;
    const std::string in = dir.file("tiny16.bin");
    write_synthetic_model(in, options);
    const model_file model(in);
    quantize_options run;
    run.default_type = type_id::q4_k;
    run.upstream_loader = true;
    CHECK_THROWS_WITH(make_plan(model, run), Catch::Contains("--loader upstream") &&
                                                 Catch::Contains("encoder.blocks.0.mlp.2.weight") &&
                                                 Catch::Contains("q4_0 q4_1 q5_0 q5_1 q8_0"));
    run.default_type = type_id::q5_0;
    CHECK_NOTHROW(make_plan(model, run));
}

TEST_CASE("model info names what each loader refuses in a reference tool's f32 output",
          "[loader]") {
    // What whisper.cpp's quantize writes from an f32 model: f32 conv weights, q4_0 header.
    std::ostringstream text;
    print_loaders(text, check_loaders(directory(type_id::q4_0, type_id::f32, type_id::f32),
                                      header(type_id::q4_0)));
    CHECK_THAT(text.str(), Catch::Contains("no whisper.cpp loads it") &&
                               Catch::Contains("encoder.conv1.weight: stored as f32") &&
                               Catch::Contains("created as f16"));
}
