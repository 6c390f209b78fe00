// SPDX-License-Identifier: MIT
// Fuzz target: the whisper model reader, and the quantization pipeline behind it.
//
// The input is a whole model file. It is opened with qmix::whisper::model_file in both
// access modes (mapped and read), and every tensor is touched: its data and record bytes
// are read and checked against the directory. A damaged file must end in a qmix::error,
// the same one in both modes; anything else (a crash, a sanitizer report, another
// exception type) is a finding. Files that open are then planned and quantized through
// execute_plan into a model_writer on a memory file system, and the result is read back.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "qmix/core/error.hpp"
#include "qmix/rules/rules.hpp"
#include "qmix/whisper/info.hpp"
#include "qmix/whisper/model_file.hpp"
#include "qmix/whisper/model_writer.hpp"
#include "qmix/whisper/quantize_model.hpp"

namespace {

using qmix::fuzz::fuzz_check;
using namespace qmix::whisper;

/// What a reading of the model found, to compare the two access modes.
struct reading {
    std::optional<std::string> failure;
    std::vector<std::uint64_t> data_sums;
    std::vector<std::uint64_t> record_sums;
    std::uint64_t header_sum = 0;
};

std::uint64_t checksum(const byte_view& bytes) {
    std::uint64_t sum = 0;
    for (const std::uint8_t b : bytes) sum = sum * 1099511628211ull + b;
    return sum;
}

/// Checks what the reader promises about a model it accepted.
void check_directory(const model_file& model) {
    const auto& layout = model.layout();
    fuzz_check(layout.mel_offset <= layout.vocabulary_offset &&
                   layout.vocabulary_offset <= layout.tensors_offset &&
                   layout.tensors_offset <= layout.file_size,
               "file layout out of order");
    fuzz_check(model.header_bytes().size == layout.tensors_offset, "header size");
    std::uint64_t expected_record = layout.tensors_offset;
    for (const tensor_entry& t : model.tensors()) {
        fuzz_check(t.record_offset == expected_record, "tensor records are not contiguous");
        fuzz_check(t.n_dims >= 1 && t.n_dims <= max_dims, "n_dims outside 1..4");
        for (int d = 0; d < max_dims; ++d) {
            fuzz_check(t.ne[d] >= 1, "non-positive extent");
            fuzz_check(d < t.n_dims || t.ne[d] == 1, "extent past n_dims is not 1");
        }
        fuzz_check(qmix::can_hold_row(t.type, t.ne[0]), "row length the type cannot hold");
        fuzz_check(t.data_size == qmix::row_size(t.type, t.ne[0]) * std::uint64_t(t.row_count()),
                   "data size disagrees with the extents");
        fuzz_check(t.data_offset > t.record_offset && t.data_offset <= layout.file_size &&
                       t.data_size <= layout.file_size - t.data_offset,
                   "tensor data outside the file");
        fuzz_check(model.find(t.name) == &t, "find() does not return the tensor");
        expected_record = t.data_offset + t.data_size;
    }
    fuzz_check(expected_record == layout.file_size, "bytes left after the last tensor");
}

/// Reads every tensor's record and data, and checks the record against the directory.
reading touch_everything(const model_file& model) {
    reading r;
    r.header_sum = checksum(model.header_bytes());
    for (const tensor_entry& t : model.tensors()) {
        const byte_view record = model.record(t);
        fuzz_check(record.size == 12 + 4 * std::size_t(t.n_dims) + t.name.size(), "record size");
        const auto field = [&](std::size_t i) {
            return qmix::whisper::detail::load_i32(record.data + 4 * i);
        };
        fuzz_check(field(0) == t.n_dims, "record n_dims");
        fuzz_check(field(1) == std::int32_t(t.name.size()), "record name length");
        fuzz_check(field(2) == static_cast<std::int32_t>(t.type), "record type");
        for (int d = 0; d < t.n_dims; ++d)
            fuzz_check(field(3 + std::size_t(d)) == t.ne[d], "record extent");
        fuzz_check(std::memcmp(record.data + 12 + 4 * t.n_dims, t.name.data(), t.name.size()) == 0,
                   "record name");
        model.prefetch(t);
        const byte_view data = model.data(t);
        fuzz_check(data.size == t.data_size, "data view size");
        r.data_sums.push_back(checksum(data));
        r.record_sums.push_back(checksum(record));
        model.release_part(t, 0, t.data_size / 2);
        model.release(t);
        // Released pages are read again on the next touch and must not have changed.
        fuzz_check(checksum(model.data(t)) == r.data_sums.back(), "data changed after release");
        model.release(t);
    }
    std::ostringstream text;
    print_model_info(text, model);
    return r;
}

/// Quantizes an accepted model to a type picked by the input and reads the output back.
void quantize_through(const model_file& model, std::uint8_t choice, const std::string& output) {
    static const qmix::type_id types[] = {
        qmix::type_id::q4_0,   qmix::type_id::q4_1,   qmix::type_id::q5_0, qmix::type_id::q5_1,
        qmix::type_id::q8_0,   qmix::type_id::q2_k,   qmix::type_id::q3_k, qmix::type_id::q4_k,
        qmix::type_id::q5_k,   qmix::type_id::q6_k,   qmix::type_id::f16,  qmix::type_id::f32,
        qmix::type_id::iq4_nl, qmix::type_id::iq4_xs, qmix::type_id::bf16};
    quantize_options options;
    options.default_type = types[choice % (sizeof types / sizeof types[0])];
    options.threads = 1;
    options.allow_requantize = true;
    options.compute_stats = (choice & 0x10) != 0;
    options.no_fallback = (choice & 0x20) != 0;
    if (choice & 0x40) options.rules.add(".*mlp.*=q8_0", "fuzz 1");
    if (choice & 0x80) options.rules.add("[a-z]+\\.blocks\\.0\\..*=q4_k", "fuzz 2");
    model_plan plan;
    try {
        plan = make_plan(model, options);
    } catch (const qmix::error&) {
        return;  // refused before any data was read: fine
    }
    fuzz_check(plan.tensors.size() == model.tensors().size(), "plan size");
    fuzz_check(is_valid_header_ftype(plan.header_ftype), "plan header ftype");
    {
        model_writer writer(output);
        try {
            execute_plan(model, plan, options, writer);
            writer.commit();
        } catch (const qmix::error&) {
            // Non-finite weights are refused; the writer then leaves nothing behind.
            writer.discard();
            struct stat st;
            fuzz_check(::stat(writer.temporary_path(), &st) != 0, "temporary file left behind");
            return;
        }
    }
    const model_file written(output);
    fuzz_check(written.tensors().size() == plan.tensors.size(), "output tensor count");
    fuzz_check(written.file_size() == plan.output_bytes, "output size differs from the plan");
    fuzz_check(written.hparams().ftype == plan.header_ftype, "output header ftype");
    for (std::size_t i = 0; i < plan.tensors.size(); ++i) {
        const tensor_entry& out = written.tensors()[i];
        fuzz_check(out.name == plan.tensors[i].tensor->name, "output tensor name");
        fuzz_check(out.type == plan.tensors[i].output, "output tensor type");
        fuzz_check(out.ne == plan.tensors[i].tensor->ne, "output tensor extents");
    }
    ::unlink(output.c_str());
}

/// A private folder on a memory file system for the quantized output, removed at exit.
class output_folder {
  public:
    output_folder() {
        const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        path_ = std::string(base) + "/qmix-fuzz-reader-" + std::to_string(::getpid());
        ::mkdir(path_.c_str(), 0700);
    }
    output_folder(const output_folder&) = delete;
    output_folder& operator=(const output_folder&) = delete;
    ~output_folder() {
        ::unlink(file().c_str());
        ::rmdir(path_.c_str());
    }
    std::string file() const { return path_ + "/out.bin"; }

  private:
    std::string path_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static qmix::fuzz::memory_file file("qmix-fuzz-model");
    static const output_folder folder;
    static const std::string output = folder.file();
    file.assign(data, size);

    reading mapped, read;
    std::optional<model_file> model;
    for (const auto mode : {model_file::access::map, model_file::access::read}) {
        reading& r = mode == model_file::access::map ? mapped : read;
        try {
            model_file m(file.path(), mode);
            check_directory(m);
            r = touch_everything(m);
            if (mode == model_file::access::map) model.emplace(std::move(m));
        } catch (const qmix::error& e) {
            r.failure = e.what();
        }
    }
    if (mapped.failure != read.failure) {
        qmix::fuzz::fuzz_fail("the access modes disagree: " + mapped.failure.value_or("accepted") +
                              " / " + read.failure.value_or("accepted"));
    }
    fuzz_check(mapped.data_sums == read.data_sums && mapped.record_sums == read.record_sums &&
                   mapped.header_sum == read.header_sum,
               "the access modes read different bytes");
    if (model && size > 0) quantize_through(*model, data[size - 1], output);
    return 0;
}
