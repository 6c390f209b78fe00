// SPDX-License-Identifier: MIT
// qmix-synth: writes a synthetic whisper ggml model with the tensor names, shapes, order and
// storage types of whisper.cpp's converter, filled with deterministic pseudo-random weights.

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include <unistd.h>

#include <chrono>

#include "qmix/io/signal_cleanup.hpp"
#include "qmix/whisper/synthetic.hpp"

namespace {

constexpr const char* usage =
    "usage: qmix-synth OUT.bin {tiny|base|small|medium|large} {f16|f32} [--seed N] "
    "[--layers N]\n"
    "Writes a synthetic whisper model laid out like whisper.cpp's converter output.\n"
    "  --seed N     seed of the pseudo-random weights (default 24301)\n"
    "  --layers N   encoder and decoder layer count, overriding the model size's\n";

std::optional<std::uint64_t> parse_number(std::string_view text) {
    if (text.empty() || text.size() > 20) return std::nullopt;
    std::uint64_t value = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
        if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
        value = value * 10 + digit;
    }
    return value;
}

int fail_usage(const std::string& what) {
    std::cerr << "qmix-synth: " << what << "\n" << usage;
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace qmix::whisper;
    if (argc >= 2 && (std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0)) {
        std::cout << usage;
        return 0;
    }
    if (argc < 4) return fail_usage("expected OUT.bin, a model size and a storage type");

    synthetic_options options;
    const std::string destination = argv[1];
    const auto size = parse_model_size(argv[2]);
    if (!size) return fail_usage(std::string("unknown model size '") + argv[2] + "'");
    options.size = *size;
    const std::string_view storage = argv[3];
    if (storage == "f16") {
        options.storage = qmix::type_id::f16;
    } else if (storage == "f32") {
        options.storage = qmix::type_id::f32;
    } else {
        return fail_usage("storage type must be f16 or f32, not '" + std::string(storage) + "'");
    }
    for (int i = 4; i < argc; ++i) {
        const std::string_view option = argv[i];
        if (option != "--seed" && option != "--layers") {
            return fail_usage("unexpected argument '" + std::string(option) + "'");
        }
        if (i + 1 >= argc) return fail_usage(std::string(option) + " needs a number");
        const auto value = parse_number(argv[++i]);
        if (!value)
            return fail_usage(std::string(option) + " needs a number, not '" + argv[i] + "'");
        if (option == "--seed") {
            options.seed = *value;
        } else if (*value < 1 || *value > 1024) {
            return fail_usage("--layers must be 1..1024");
        } else {
            options.layers = static_cast<std::int32_t>(*value);
        }
    }

    // Past a file size limit (ulimit -f) a write fails with EFBIG and is reported like a full
    // disk, instead of SIGXFSZ killing the process with its temporary file left behind.
    std::signal(SIGXFSZ, SIG_IGN);
    // Ctrl-C, SIGTERM and SIGHUP remove the temporary file before they end the process.
    qmix::io::remove_temporaries_on_termination_signals();
    try {
        const auto start = std::chrono::steady_clock::now();
        model_writer out(destination);
        write_synthetic_model(out, options);
        out.commit();
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
        std::cout << "qmix-synth: wrote " << destination << " (" << model_size_name(options.size)
                  << ", " << storage << ", " << out.bytes_written() << " bytes) in " << took.count()
                  << " s\n";
    } catch (const std::exception& e) {
        std::cerr << "qmix-synth: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
