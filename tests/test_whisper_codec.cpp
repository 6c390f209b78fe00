// SPDX-License-Identifier: MIT
// The whisper model file codec: reading, validating, writing atomically, synthetic models.

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "qmix/whisper/info.hpp"
#include "qmix/whisper/model_file.hpp"
#include "qmix/whisper/model_writer.hpp"
#include "qmix/whisper/synthetic.hpp"

#include "support.hpp"

namespace fs = std::filesystem;
using namespace qmix::whisper;
using qmix::type_id;

namespace {

using scratch_folder = qmix::test::scratch_folder;

std::vector<std::uint8_t> file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(fs::file_size(path)));
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(static_cast<std::size_t>(in.gcount()) == bytes.size());
    return bytes;
}

/// Whether two files hold the same bytes, compared a chunk at a time (the models run to
/// a hundred megabytes).
bool same_bytes(const std::string& a, const std::string& b) {
    if (fs::file_size(a) != fs::file_size(b)) return false;
    std::ifstream in_a(a, std::ios::binary), in_b(b, std::ios::binary);
    REQUIRE(in_a);
    REQUIRE(in_b);
    std::vector<char> chunk_a(1 << 20), chunk_b(1 << 20);
    while (in_a) {
        in_a.read(chunk_a.data(), static_cast<std::streamsize>(chunk_a.size()));
        in_b.read(chunk_b.data(), static_cast<std::streamsize>(chunk_b.size()));
        if (in_a.gcount() != in_b.gcount()) return false;
        if (!std::equal(chunk_a.begin(), chunk_a.begin() + in_a.gcount(), chunk_b.begin())) {
            return false;
        }
    }
    return true;
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

/// Overwrites bytes in place (the file keeps its size).
void patch(const std::string& path, std::uint64_t offset, const void* bytes, std::size_t n) {
    const int fd = ::open(path.c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, bytes, n, static_cast<off_t>(offset)) == static_cast<ssize_t>(n));
    ::close(fd);
}

void patch_i32(const std::string& path, std::uint64_t offset, std::int32_t value) {
    std::uint8_t bytes[4];
    detail::store_i32(bytes, value);
    patch(path, offset, bytes, 4);
}

synthetic_options options_for(model_size size, type_id storage, std::optional<int> layers) {
    synthetic_options options;
    options.size = size;
    options.storage = storage;
    options.layers = layers;
    return options;
}

/// Copies every part of `model` through a writer; `rebuild_header` assembles the header
/// from the parsed fields instead of copying its bytes.
void rewrite(const model_file& model, const std::string& destination, bool rebuild_header) {
    model_writer out(destination);
    if (rebuild_header) {
        out.write_header(model.hparams(), model.filters(), model.vocabulary());
    } else {
        out.write_header(model, model.hparams().ftype);
    }
    for (const tensor_entry& t : model.tensors()) {
        out.copy_tensor(model, t);
        model.release(t);
    }
    out.commit();
}

/// Opening `path` must fail with a qmix::error whose message holds every one of `parts`.
void require_error(const std::string& path, const std::vector<std::string>& parts,
                   model_file::access mode = model_file::access::map) {
    try {
        const model_file model(path, mode);
        FAIL("opened without complaint; expected an error mentioning '" << parts.front() << "'");
    } catch (const qmix::error& e) {
        const std::string message = e.what();
        INFO("message: " << message);
        CHECK_THAT(message, Catch::Contains(path));
        for (const std::string& part : parts) CHECK_THAT(message, Catch::Contains(part));
    }
}

}  // namespace

TEST_CASE("a synthetic model has the converter's tensors, shapes, order and types", "[whisper]") {
    const hyper_parameters h =
        synthetic_hyper_parameters(options_for(model_size::tiny, type_id::f16, {}));
    CHECK(h.n_vocab == 51865);
    CHECK(h.n_audio_state == 384);
    CHECK(h.n_audio_head == 6);
    CHECK(h.n_text_layer == 4);
    CHECK(h.n_mels == 80);
    CHECK(h.ftype == 1);
    const auto tensors = synthetic_tensors(h, type_id::f16);
    REQUIRE(tensors.size() == 5 + 4 * 15 + 2 + 2 + 4 * 24 + 2);

    const auto find = [&](const std::string& name) -> const synthetic_tensor& {
        const auto at = std::find_if(tensors.begin(), tensors.end(),
                                     [&](const synthetic_tensor& t) { return t.name == name; });
        REQUIRE(at != tensors.end());
        return *at;
    };
    CHECK(tensors[0].name == "encoder.positional_embedding");
    CHECK(tensors[1].name == "encoder.conv1.weight");
    CHECK(tensors[5].name == "encoder.blocks.0.attn.query.weight");
    CHECK(tensors[7].name == "encoder.blocks.0.attn.key.weight");
    CHECK(tensors[8].name == "encoder.blocks.0.attn.value.weight");
    CHECK(tensors.back().name == "decoder.ln.bias");
    CHECK(find("encoder.blocks.0.attn_ln.bias").type == type_id::f32);
    CHECK(find("decoder.blocks.0.cross_attn.query.weight").type == type_id::f16);

    const auto& conv1 = find("encoder.conv1.weight");
    CHECK(conv1.n_dims == 3);
    CHECK(conv1.ne == std::array<std::int64_t, 4>{3, 80, 384, 1});
    CHECK(conv1.type == type_id::f16);
    const auto& conv1_bias = find("encoder.conv1.bias");
    CHECK(conv1_bias.n_dims == 2);
    CHECK(conv1_bias.ne == std::array<std::int64_t, 4>{1, 384, 1, 1});
    CHECK(conv1_bias.type == type_id::f32);
    CHECK(find("encoder.positional_embedding").ne == std::array<std::int64_t, 4>{384, 1500, 1, 1});
    CHECK(find("encoder.positional_embedding").type == type_id::f32);
    CHECK(find("decoder.positional_embedding").ne == std::array<std::int64_t, 4>{384, 448, 1, 1});
    CHECK(find("decoder.positional_embedding").type == type_id::f32);
    CHECK(find("decoder.token_embedding.weight").ne ==
          std::array<std::int64_t, 4>{384, 51865, 1, 1});
    CHECK(find("encoder.blocks.3.mlp.0.weight").ne == std::array<std::int64_t, 4>{384, 1536, 1, 1});
    CHECK(find("encoder.blocks.3.mlp.2.weight").ne == std::array<std::int64_t, 4>{1536, 384, 1, 1});

    // The decoder block: self attention, its norm, then cross attention and its norm.
    const auto index_of = [&](const std::string& name) {
        return std::find_if(tensors.begin(), tensors.end(),
                            [&](const synthetic_tensor& t) { return t.name == name; }) -
               tensors.begin();
    };
    CHECK(index_of("decoder.blocks.1.attn_ln.bias") + 1 ==
          index_of("decoder.blocks.1.cross_attn.query.weight"));
    CHECK(index_of("decoder.blocks.1.cross_attn_ln.bias") + 1 ==
          index_of("decoder.blocks.1.mlp.0.weight"));

    for (const auto& t : synthetic_tensors(h, type_id::f32)) CHECK(t.type == type_id::f32);

    const hyper_parameters large =
        synthetic_hyper_parameters(options_for(model_size::large, type_id::f16, {}));
    CHECK(large.n_vocab == 51865);
    CHECK(large.n_audio_state == 1280);
    CHECK(large.n_text_head == 20);
    CHECK(large.n_audio_layer == 32);
    const hyper_parameters two_layers =
        synthetic_hyper_parameters(options_for(model_size::medium, type_id::f32, 2));
    CHECK(two_layers.n_audio_layer == 2);
    CHECK(two_layers.n_text_layer == 2);
    CHECK(two_layers.n_text_state == 1024);
    CHECK(two_layers.ftype == 0);
    CHECK_THROWS_AS(synthetic_hyper_parameters(options_for(model_size::tiny, type_id::q4_0, {})),
                    qmix::error);
}

TEST_CASE("synthetic weights are deterministic and shaped like trained ones", "[whisper]") {
    scratch_folder folder;
    const synthetic_options options = options_for(model_size::tiny, type_id::f16, 1);
    write_synthetic_model(folder.file("a.bin"), options);
    write_synthetic_model(folder.file("b.bin"), options);
    CHECK(same_bytes(folder.file("a.bin"), folder.file("b.bin")));
    synthetic_options other_seed = options;
    other_seed.seed = 7;
    write_synthetic_model(folder.file("c.bin"), other_seed);
    CHECK_FALSE(same_bytes(folder.file("a.bin"), folder.file("c.bin")));

    const model_file model(folder.file("a.bin"));
    const auto values = [&](const std::string& name) {
        const tensor_entry* t = model.find(name);
        REQUIRE(t != nullptr);
        const byte_view bytes = model.data(*t);
        std::vector<float> out(static_cast<std::size_t>(t->element_count()));
        for (std::size_t i = 0; i < out.size(); ++i) {
            if (t->type == type_id::f32) {
                out[i] = detail::load_f32(bytes.data + 4 * i);
            } else {
                out[i] = qmix::half_to_float(
                    std::uint16_t(bytes.data[2 * i] | bytes.data[2 * i + 1] << 8));
            }
        }
        return out;
    };
    const auto stats = [](const std::vector<float>& v) {
        double sum = 0, squares = 0, largest = 0;
        for (const float x : v) {
            sum += x;
            squares += double(x) * x;
            largest = std::max(largest, double(std::abs(x)));
        }
        const double mean = sum / v.size();
        return std::array<double, 3>{mean, std::sqrt(squares / v.size() - mean * mean), largest};
    };
    const auto query = stats(values("encoder.blocks.0.attn.query.weight"));
    CHECK(std::abs(query[0]) < 0.002);
    CHECK(query[1] > 0.6 / std::sqrt(384.0));
    CHECK(query[1] < 1.4 / std::sqrt(384.0));
    CHECK(query[2] > 5 * query[1]);  // the rare outliers
    const auto norm = stats(values("encoder.blocks.0.attn_ln.weight"));
    CHECK(std::abs(norm[0] - 1.0) < 0.02);
    CHECK(norm[2] < 1.5);
    const auto bias = stats(values("encoder.blocks.0.mlp.0.bias"));
    CHECK(bias[1] < 0.05);
    CHECK(model.vocabulary().size() == std::size_t(synthetic_vocabulary_size));
    CHECK(model.vocabulary()[65] == "A");
    const auto odd =
        std::find_if(model.vocabulary().begin(), model.vocabulary().end(),
                     [](const std::string& token) { return token.empty() || token.size() > 16; });
    CHECK(odd == model.vocabulary().end());
    CHECK(model.filters().n_mel == 80);
    CHECK(model.filters().n_fft == 201);
}

TEST_CASE("reading a model and writing it back gives identical bytes", "[whisper]") {
    struct round_trip_case {
        model_size size;
        type_id storage;
        std::optional<int> layers;
    };
    const round_trip_case cases[] = {
        {model_size::tiny, type_id::f16, {}},  // one complete model
        {model_size::tiny, type_id::f32, 1},
        {model_size::base, type_id::f16, 1},
        {model_size::base, type_id::f32, 1},
    };
    for (const auto& c : cases) {
        DYNAMIC_SECTION(model_size_name(c.size) << " " << qmix::type_name(c.storage) << " layers "
                                                << c.layers.value_or(0)) {
            scratch_folder folder;
            const synthetic_options options = options_for(c.size, c.storage, c.layers);
            write_synthetic_model(folder.file("model.bin"), options);
            const std::string original = folder.file("model.bin");
            const model_file model(original);
            CHECK(model.is_mapped());
            const hyper_parameters h = synthetic_hyper_parameters(options);
            CHECK(model.hparams() == h);
            CHECK(model.file_size() == fs::file_size(original));
            const auto plan = synthetic_tensors(h, c.storage);
            REQUIRE(model.tensors().size() == plan.size());
            for (std::size_t i = 0; i < plan.size(); ++i) {
                const tensor_entry& t = model.tensors()[i];
                CHECK(t.name == plan[i].name);
                CHECK(t.type == plan[i].type);
                CHECK(t.n_dims == plan[i].n_dims);
                CHECK(t.ne == plan[i].ne);
                CHECK(t.data_size ==
                      qmix::row_size(t.type, t.ne[0]) * std::uint64_t(t.row_count()));
                CHECK(t.data_offset == t.record_offset + 12 + 4 * t.n_dims + t.name.size());
            }
            CHECK(model.header_bytes().size == model.tensors().front().record_offset);
            CHECK(model.layout().tensors_offset == model.tensors().front().record_offset);

            rewrite(model, folder.file("copied.bin"), false);
            CHECK(same_bytes(folder.file("copied.bin"), original));
            rewrite(model, folder.file("rebuilt.bin"), true);
            CHECK(same_bytes(folder.file("rebuilt.bin"), original));

            // The plain-read fallback sees the same header, records and data (checked once,
            // on the complete model).
            if (!c.layers) {
                const model_file read(folder.file("model.bin"), model_file::access::read);
                CHECK_FALSE(read.is_mapped());
                rewrite(read, folder.file("read.bin"), false);
                CHECK(same_bytes(folder.file("read.bin"), original));
                for (std::size_t i = 0; i < model.tensors().size(); i += 7) {
                    const byte_view a = model.record(model.tensors()[i]);
                    const byte_view b = read.record(read.tensors()[i]);
                    CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
                }
            }
        }
    }
}

TEST_CASE("the header can be copied with a new ftype", "[whisper]") {
    scratch_folder folder;
    write_synthetic_model(folder.file("model.bin"), options_for(model_size::tiny, type_id::f16, 1));
    const model_file model(folder.file("model.bin"));
    const std::int32_t q5_0 = header_ftype_value(qmix::ftype::mostly_q5_0);
    CHECK(q5_0 == 2008);
    {
        model_writer out(folder.file("q.bin"));
        out.write_header(model, q5_0);
        for (const tensor_entry& t : model.tensors()) out.copy_tensor(model, t);
        out.commit();
    }
    const model_file copy(folder.file("q.bin"));
    CHECK(copy.hparams().ftype == 2008);
    auto original = file_bytes(folder.file("model.bin"));
    auto changed = file_bytes(folder.file("q.bin"));
    REQUIRE(original.size() == changed.size());
    detail::store_i32(&original[ftype_field_offset], 2008);
    CHECK(original == changed);
    CHECK(describe_header_ftype(2008) == "mostly q5_0, quantization version 2");

    model_writer bad(folder.file("bad.bin"));
    CHECK_THROWS_WITH(bad.write_header(model, 4), Catch::Contains("header ftype 4"));
    CHECK(folder.listing() == std::set<std::string>{"model.bin", "q.bin"});
}

TEST_CASE("damaged models are rejected with precise errors", "[whisper]") {
    scratch_folder folder;
    const std::string good = folder.file("good.bin");
    write_synthetic_model(good, options_for(model_size::tiny, type_id::f16, 1));
    const model_file reference(good);
    const file_layout layout = reference.layout();
    const auto& tensors = reference.tensors();
    const tensor_entry& positional = tensors[0];  // 2-D f32
    const tensor_entry& conv1 = tensors[1];       // 3-D f16, rows of 3
    const tensor_entry& conv2 = tensors[3];
    REQUIRE(conv1.name == "encoder.conv1.weight");
    REQUIRE(conv2.name == "encoder.conv2.weight");
    const tensor_entry& embedding = *reference.find("decoder.token_embedding.weight");
    const tensor_entry& last = tensors.back();
    const std::string quoted_conv1 = "(tensor 'encoder.conv1.weight')";
    const auto at = [](std::uint64_t offset) { return "byte " + std::to_string(offset) + " "; };
    const auto at_colon = [](std::uint64_t offset) {
        return "byte " + std::to_string(offset) + ":";
    };
    // The start of vocabulary entry 1000.
    std::uint64_t entry_1000 = layout.vocabulary_offset + 4;
    for (int i = 0; i < 1000; ++i) entry_1000 += 4 + reference.vocabulary()[i].size();

    struct corruption {
        const char* what;
        std::uint64_t offset;
        std::int32_t value;
        std::vector<std::string> expected;
    };
    const std::uint64_t conv1_extents = conv1.record_offset + 12;
    const std::vector<corruption> corruptions = {
        {"bad magic", 0, 0x12345678, {"bad magic 0x12345678", "expected 0x67676d6c", "byte 0:"}},
        {"negative n_vocab", 4, -1, {"n_vocab is -1", "negative count", at_colon(4)}},
        {"negative n_text_layer", 4 + 8 * 4, -5, {"n_text_layer is -5", "expected 0 or more"}},
        {"ftype not an ftype", 44, 4, {"header ftype 4 ", "not a ggml file type", at_colon(44)}},
        {"ftype version 3", 44, 3001, {"header ftype 3001", "version 0..2"}},
        {"negative ftype", 44, -1, {"header ftype -1"}},
        {"absurd mel bands",
         layout.mel_offset,
         100000,
         {"absurd mel filter size 100000 x 201", at_colon(layout.mel_offset)}},
        {"zero mel bins", layout.mel_offset + 4, 0, {"absurd mel filter size 80 x 0"}},
        {"negative vocabulary count",
         layout.vocabulary_offset,
         -1,
         {"negative count", "vocabulary count is -1"}},
        {"vocabulary count beyond the file",
         layout.vocabulary_offset,
         0x7fffffff,
         {"vocabulary count 2147483647 needs at least 8589934588 bytes", "truncated"}},
        {"vocabulary entry longer than the file",
         entry_1000,
         0x7ffffff0,
         {"vocabulary entry 1000 is 2147483632 bytes long", at_colon(entry_1000)}},
        {"vocabulary entry of 4 GiB",
         entry_1000,
         -16,
         {"vocabulary entry 1000 is 4294967280 bytes"}},
        {"n_dims 0",
         conv1.record_offset,
         0,
         {"n_dims is 0, expected 1..4", at_colon(conv1.record_offset)}},
        {"n_dims 5", conv1.record_offset, 5, {"n_dims is 5, expected 1..4"}},
        {"negative n_dims", conv1.record_offset, -2, {"n_dims is -2"}},
        {"negative name length",
         conv1.record_offset + 4,
         -1,
         {"name length is -1, expected 1..4096", at_colon(conv1.record_offset + 4)}},
        {"name too long", conv1.record_offset + 4, 4097, {"name length is 4097, expected 1..4096"}},
        {"empty name", conv1.record_offset + 4, 0, {"name length is 0"}},
        {"unknown type id",
         conv1.record_offset + 8,
         99,
         {"unknown type id 99", quoted_conv1, at(conv1.record_offset + 8),
          "expected one of 0 (f32)"}},
        {"removed type id", conv1.record_offset + 8, 4, {"unknown type id 4", quoted_conv1}},
        {"row too short for the type",
         conv1.record_offset + 8,
         2,
         {"row length ne[0] = 3 cannot be stored as q4_0", quoted_conv1, "multiple of 32"}},
        {"row too short for a k type",
         positional.record_offset + 8,
         12,
         {"row length ne[0] = 384 cannot be stored as q4_k", "multiple of 256"}},
        {"zero extent",
         conv1_extents + 4,
         0,
         {"extent ne[1] is 0, expected a positive number", quoted_conv1, at(conv1_extents + 4)}},
        {"negative extent", conv1_extents + 8, -7, {"extent ne[2] is -7", quoted_conv1}},
        {"data past the end",
         embedding.record_offset + 16,
         0x7fffffff,
         {"runs past the end of the file", "(tensor 'decoder.token_embedding.weight')",
          at(embedding.data_offset)}},
        {"last tensor one value longer",
         last.record_offset + 12,
         385,
         {"runs past the end of the file", "(tensor 'decoder.ln.bias')", "(1536 bytes left)"}},
    };
    // One damaged copy, patched and restored for each case: regenerating the model per case
    // would dominate the run time.
    const std::string work = folder.file("work.bin");
    fs::copy_file(good, work);
    const std::vector<std::uint8_t> original = file_bytes(good);
    const auto restore = [&] { patch(work, 0, original.data(), original.size()); };
    for (const auto mode : {model_file::access::map, model_file::access::read}) {
        for (const corruption& c : corruptions) {
            INFO(c.what << (mode == model_file::access::map ? " (mapped)" : " (read)"));
            patch_i32(work, c.offset, c.value);
            require_error(work, c.expected, mode);
            patch(work, c.offset, &original[c.offset], 4);
        }
    }

    {
        INFO("extents whose element count overflows");
        for (int d = 0; d < 3; ++d) patch_i32(work, conv1_extents + 4 * d, 0x7fffffff);
        require_error(work, {"element count of extents 2147483647 x 2147483647 x 2147483647",
                             "overflows 64 bits", quoted_conv1});
        restore();
    }
    {
        INFO("extents whose byte size overflows");
        // (2^31 - 1)^2 values fit in 64 bits; four bytes each do not.
        patch_i32(work, positional.record_offset + 12, 0x7fffffff);
        patch_i32(work, positional.record_offset + 16, 0x7fffffff);
        require_error(work, {"data size of f32 extents 2147483647 x 2147483647",
                             "overflows 64 bits", "(tensor 'encoder.positional_embedding')"});
        restore();
    }
    {
        INFO("duplicate tensor names");
        // encoder.conv2.weight becomes a second encoder.conv1.weight.
        const std::uint64_t digit = conv2.record_offset + 12 + 4 * conv2.n_dims + 12;
        REQUIRE(original[digit] == '2');
        patch(work, digit, "1", 1);
        require_error(work, {"duplicate tensor name 'encoder.conv1.weight'",
                             "first record at byte " + std::to_string(conv1.record_offset),
                             at(conv2.record_offset)});
        restore();
    }
    {
        INFO("a valid quantized ftype is accepted");
        patch_i32(work, 44, 2012);
        CHECK(model_file(work).hparams().ftype == 2012);
        restore();
    }
    CHECK(file_bytes(work) == original);
}

TEST_CASE("truncated models are rejected at every structural boundary", "[whisper]") {
    scratch_folder folder;
    const std::string good = folder.file("good.bin");
    write_synthetic_model(good, options_for(model_size::tiny, type_id::f16, 1));
    const model_file reference(good);
    const file_layout layout = reference.layout();

    // Cut points inside a structure (must fail) and at the end of a tensor (a smaller but
    // well-formed file: the format has no tensor count, so such a cut cannot be noticed).
    std::set<std::uint64_t> cuts = {0,
                                    1,
                                    3,
                                    4,
                                    6,
                                    layout.mel_offset + 2,
                                    layout.mel_offset + 4,
                                    layout.mel_offset + 8,
                                    layout.mel_offset + 1000,
                                    layout.vocabulary_offset - 1,
                                    layout.vocabulary_offset,
                                    layout.vocabulary_offset + 3};
    for (std::uint64_t field = 4; field < layout.mel_offset; field += 4) cuts.insert(field);
    std::uint64_t entry = layout.vocabulary_offset + 4;
    for (std::size_t i = 0; i < reference.vocabulary().size(); ++i) {
        if (i < 64 || i % 4999 == 0) {
            cuts.insert(entry);
            cuts.insert(entry + 2);
            cuts.insert(entry + 4);
            cuts.insert(entry + 4 + reference.vocabulary()[i].size() / 2);
        }
        entry += 4 + reference.vocabulary()[i].size();
    }
    REQUIRE(entry == layout.tensors_offset);
    std::set<std::uint64_t> clean_ends = {layout.tensors_offset};
    for (const tensor_entry& t : reference.tensors()) {
        const std::uint64_t r = t.record_offset;
        for (const std::uint64_t field :
             {r + 1, r + 4, r + 8, r + 12, r + 14, r + 16, t.data_offset - t.name.size(),
              t.data_offset - 1, t.data_offset, t.data_offset + 1, t.data_offset + t.data_size / 2,
              t.data_offset + t.data_size - 1}) {
            cuts.insert(field);
        }
        cuts.insert(r);
        clean_ends.insert(t.data_offset + t.data_size);
    }
    // And a sample of arbitrary offsets.
    detail::splitmix64 random{42};
    for (int i = 0; i < 150; ++i) cuts.insert(random.next() % layout.file_size);

    const std::string work = folder.file("work.bin");
    fs::copy_file(good, work);
    std::size_t rejected = 0, accepted = 0;
    // From the longest cut down, so that each step only shrinks the file.
    for (auto cut = cuts.rbegin(); cut != cuts.rend(); ++cut) {
        REQUIRE(::truncate(work.c_str(), static_cast<off_t>(*cut)) == 0);
        INFO("cut at " << *cut);
        if (clean_ends.count(*cut) != 0) {
            const model_file model(work);
            CHECK(model.layout().file_size == *cut);
            ++accepted;
            continue;
        }
        const auto mode = rejected % 5 == 0 ? model_file::access::read : model_file::access::map;
        try {
            const model_file model(work, mode);
            FAIL("a model cut at byte " << *cut << " was accepted");
        } catch (const qmix::error& e) {
            const std::string message = e.what();
            INFO(message);
            CHECK_THAT(message, Catch::Contains(work));
            CHECK_THAT(message, Catch::Contains("truncated") || Catch::Contains("bad magic") ||
                                    Catch::Contains("absurd mel filter size"));
            CHECK_THAT(message, Catch::Contains("byte "));
            ++rejected;
        }
    }
    CHECK(rejected > 500);
    CHECK(accepted >= 1);
    // A constructor that throws must not leave its mapping behind.
    std::ifstream maps("/proc/self/maps");
    std::string mapping;
    while (std::getline(maps, mapping)) CHECK_THAT(mapping, !Catch::Contains(work));

    // The messages name what was being read (cuts again from the longest down).
    fs::remove(work);
    fs::copy_file(good, work);
    const tensor_entry& t = reference.tensors()[3];
    // Late enough that the token count still fits in the bytes left.
    std::uint64_t entry_30000 = layout.vocabulary_offset + 4;
    for (int i = 0; i < 30000; ++i) entry_30000 += 4 + reference.vocabulary()[i].size();
    const std::vector<std::pair<std::uint64_t, std::vector<std::string>>> named_cuts = {
        {t.data_offset + 10,
         {"runs past the end of the file", "(tensor '" + t.name + "')", "(10 bytes left)"}},
        {t.data_offset - 2, {"bytes of tensor name"}},
        {t.record_offset + 9, {"bytes of tensor record type id"}},
        {entry_30000 + 2,
         {"truncated: expected 4 bytes of vocabulary entry 30000 length but only 2 are left",
          "byte " + std::to_string(entry_30000) + ":"}},
        {layout.vocabulary_offset + 50,
         {"truncated: vocabulary count 50257 needs at least 201028 bytes but only 46"}},
        {20, {"bytes of n_audio_layer", "byte 20:"}},
        {2, {"truncated: expected 4 bytes of magic but only 2 are left", "byte 0:"}},
    };
    for (const auto& [cut, parts] : named_cuts) {
        REQUIRE(::truncate(work.c_str(), static_cast<off_t>(cut)) == 0);
        require_error(work, parts);
    }
}

TEST_CASE("a writer that fails before commit leaves nothing behind", "[whisper]") {
    scratch_folder folder;
    const std::string destination = folder.file("out.bin");
    const hyper_parameters h =
        synthetic_hyper_parameters(options_for(model_size::tiny, type_id::f16, 1));
    const mel_filters mel = synthetic_mel_filters(80, 201);
    const std::vector<std::string> vocabulary = {"a", "bc", ""};
    const std::vector<std::uint8_t> data(384 * 4 * 2);

    SECTION("destroyed without commit") {
        {
            model_writer out(destination);
            CHECK_THAT(out.temporary_path(), Catch::StartsWith(folder.file(".out.bin.qmix-")));
            out.write_header(h, mel, vocabulary);
            out.begin_tensor("x", type_id::f32, 2, {384, 2, 1, 1});
            out.write_data(data.data(), 100);
            CHECK(fs::exists(out.temporary_path()));
            CHECK(folder.listing().size() == 1);
        }
        CHECK(folder.listing().empty());
    }
    SECTION("too many bytes for a tensor") {
        model_writer out(destination);
        out.write_header(h, mel, vocabulary);
        out.begin_tensor("x", type_id::f32, 2, {384, 2, 1, 1});
        out.write_data(data.data(), 3000);
        CHECK_THROWS_WITH(
            out.write_data(data.data(), 100),
            Catch::Contains(destination) && Catch::Contains("tensor 'x'") &&
                Catch::Contains("3100 bytes of data arrived but it holds exactly 3072"));
        CHECK(folder.listing().empty());  // removed at the failure, not only at destruction
        CHECK_THROWS_AS(out.commit(), qmix::error);
        CHECK(folder.listing().empty());
    }
    SECTION("too few bytes for a tensor") {
        model_writer out(destination);
        out.write_header(h, mel, vocabulary);
        out.begin_tensor("x", type_id::f16, 1, {384, 1, 1, 1});
        out.write_data(data.data(), 700);
        CHECK_THROWS_WITH(
            out.end_tensor(),
            Catch::Contains("only 700 bytes of data arrived but it holds exactly 768"));
        CHECK(folder.listing().empty());
    }
    SECTION("commit inside a tensor") {
        model_writer out(destination);
        out.write_header(h, mel, vocabulary);
        out.begin_tensor("x", type_id::f16, 1, {384, 1, 1, 1});
        CHECK_THROWS_WITH(out.commit(), Catch::Contains("commit called inside tensor 'x'"));
        CHECK(folder.listing().empty());
    }
    SECTION("invalid tensors") {
        struct bad_tensor {
            std::string name;
            type_id type;
            int n_dims;
            std::array<std::int64_t, 4> ne;
            std::string expected;
        };
        const bad_tensor cases[] = {
            {"q", type_id::q4_k, 2, {384, 4, 1, 1}, "a row of 384 values cannot be stored as q4_k"},
            {"q", static_cast<type_id>(5), 1, {32, 1, 1, 1}, "unknown type id 5"},
            {"", type_id::f32, 1, {32, 1, 1, 1}, "name length 0"},
            {std::string(4097, 'n'), type_id::f32, 1, {32, 1, 1, 1}, "name length 4097"},
            {"q", type_id::f32, 1, {32, 2, 1, 1}, "ne[1] = 2 must be 1 past n_dims"},
            {"q", type_id::f32, 2, {32, 0, 1, 1}, "ne[1] = 0 is outside"},
            {"q", type_id::f32, 5, {32, 1, 1, 1}, "n_dims 5"},
            {"q", type_id::f32, 4, {1 << 30, 1 << 30, 1 << 30, 1 << 30}, "overflows 64 bits"},
        };
        for (const bad_tensor& c : cases) {
            model_writer out(destination);
            out.write_header(h, mel, vocabulary);
            CHECK_THROWS_WITH(out.begin_tensor(c.name, c.type, c.n_dims, c.ne),
                              Catch::Contains(c.expected));
            CHECK(folder.listing().empty());
        }
        model_writer out(destination);
        out.write_header(h, mel, vocabulary);
        out.write_tensor("same", type_id::f32, 1, {32, 1, 1, 1}, data.data(), 128);
        CHECK_THROWS_WITH(out.begin_tensor("same", type_id::f32, 1, {32, 1, 1, 1}),
                          Catch::Contains("already written"));
        CHECK(folder.listing().empty());
    }
    SECTION("invalid headers") {
        hyper_parameters bad = h;
        bad.ftype = 5;
        model_writer out(destination);
        CHECK_THROWS_WITH(out.write_header(bad, mel, vocabulary),
                          Catch::Contains("header ftype 5"));
        model_writer out2(destination);
        mel_filters short_mel = mel;
        short_mel.values.pop_back();
        CHECK_THROWS_WITH(out2.write_header(h, short_mel, vocabulary),
                          Catch::Contains("mel filters hold 16079 values"));
        model_writer out3(destination);
        CHECK_THROWS_WITH(out3.begin_tensor("x", type_id::f32, 1, {32, 1, 1, 1}),
                          Catch::Contains("begin_tensor called before the header"));
        CHECK(folder.listing().empty());
    }
    SECTION("a write error names the file") {
        // A file size limit stands in for a full disk: write() then fails with EFBIG.
        struct rlimit saved;
        REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
        const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
        struct rlimit limited = saved;
        limited.rlim_cur = 1 << 20;
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &limited) == 0);
        std::string message;
        try {
            model_writer out(destination, 1 << 16);
            out.write_header(h, mel, vocabulary);
            const std::vector<std::uint8_t> big(4 << 20);
            out.write_tensor("big", type_id::f32, 1, {1 << 20, 1, 1, 1}, big.data(), big.size());
            out.commit();
        } catch (const qmix::error& e) {
            message = e.what();
        }
        ::setrlimit(RLIMIT_FSIZE, &saved);
        std::signal(SIGXFSZ, old_handler);
        CHECK_THAT(message, Catch::Contains(destination) && Catch::Contains("writing failed") &&
                                Catch::Contains(std::strerror(EFBIG)));
        CHECK(folder.listing().empty());
    }
    SECTION("a destination folder that does not exist") {
        CHECK_THROWS_WITH(model_writer(folder.file("missing/out.bin")),
                          Catch::Contains("cannot create a temporary file in") &&
                              Catch::Contains("missing/out.bin"));
    }
}

TEST_CASE("commit replaces the destination atomically", "[whisper]") {
    scratch_folder folder;
    const std::string destination = folder.file("model.bin");
    write_file(destination, "the old model");
    REQUIRE(::chmod(destination.c_str(), 0640) == 0);
    write_synthetic_model(folder.file("source.bin"),
                          options_for(model_size::tiny, type_id::f16, 1));
    const model_file source(folder.file("source.bin"));

    model_writer out(destination);
    out.write_header(source, source.hparams().ftype);
    for (const tensor_entry& t : source.tensors()) out.copy_tensor(source, t);
    // Everything is written, but until commit the old model is what readers see.
    CHECK(fs::exists(out.temporary_path()));
    const auto old_bytes = file_bytes(destination);
    CHECK(std::string(old_bytes.begin(), old_bytes.end()) == "the old model");
    CHECK(folder.listing().size() == 3);

    out.commit();
    CHECK(out.committed());
    CHECK_FALSE(fs::exists(out.temporary_path()));
    CHECK(folder.listing() == std::set<std::string>{"model.bin", "source.bin"});
    CHECK(file_bytes(destination) == file_bytes(folder.file("source.bin")));
    struct stat status;
    REQUIRE(::stat(destination.c_str(), &status) == 0);
    CHECK((status.st_mode & 07777) == 0640);
    CHECK_THROWS_AS(out.commit(), qmix::error);
}

TEST_CASE("a model can be rewritten over the file it is read from", "[whisper]") {
    scratch_folder folder;
    const std::string path = folder.file("model.bin");
    write_synthetic_model(path, options_for(model_size::tiny, type_id::f16, 1));
    const auto original = file_bytes(path);
    for (const auto mode : {model_file::access::map, model_file::access::read}) {
        const model_file model(path, mode);
        model_writer out(path);
        out.write_header(model, header_ftype_value(qmix::ftype::mostly_f16));
        for (const tensor_entry& t : model.tensors()) {
            out.copy_tensor(model, t);
            model.release(t);
        }
        out.commit();
        // The reader still sees the old file's bytes after the rename.
        const byte_view last = model.data(model.tensors().back());
        CHECK(std::equal(
            last.begin(), last.end(),
            original.begin() + static_cast<std::ptrdiff_t>(model.tensors().back().data_offset)));
    }
    const model_file rewritten(path);
    CHECK(rewritten.hparams().ftype == 2001);
    CHECK(rewritten.tensors().size() ==
          synthetic_tensors(rewritten.hparams(), type_id::f16).size());
}

TEST_CASE("the inspection view lists hyper-parameters, tensors and totals", "[whisper]") {
    scratch_folder folder;
    write_synthetic_model(folder.file("model.bin"), options_for(model_size::tiny, type_id::f16, 1));
    const model_file model(folder.file("model.bin"));
    std::ostringstream out;
    print_model_info(out, model);
    const std::string text = out.str();
    CHECK_THAT(text, Catch::Contains("n_audio_state  384\n"));
    CHECK_THAT(text, Catch::Contains("ftype          1 (mostly f16, quantization version 0)"));
    CHECK_THAT(text, Catch::Contains("mel filters    80 x 201"));
    CHECK_THAT(text, Catch::Contains("vocabulary     50257 tokens"));
    CHECK_THAT(text, Catch::Contains("encoder.conv1.weight"));
    CHECK_THAT(text, Catch::Contains("3 x 80 x 384"));
    CHECK_THAT(text, Catch::Contains("384 x 51865"));
    std::uint64_t total = 0;
    for (const tensor_entry& t : model.tensors()) total += t.data_size;
    CHECK_THAT(text, Catch::Contains("total ") && Catch::Contains(std::to_string(total)));
    CHECK_THAT(text, Catch::Contains("f16 ") && Catch::Contains("100.0%"));
}
