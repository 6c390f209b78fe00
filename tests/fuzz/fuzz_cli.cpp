// SPDX-License-Identifier: MIT
// Fuzz target: qmix-quantize's command-line parser (examples/quantize/cli.hpp).
//
// The input is the argument list, arguments separated by NUL bytes. The parser must either
// return a request or throw its usage_error: any other exception escaping it, a crash or a
// sanitizer report is a finding. Rule files are served from memory: the names "rules.txt",
// "broken.txt" and "empty.txt" hold fixed rule files, every other name does not exist, so
// the fuzzer never reads the real file system.
//
// Every argument also goes through the JSON report's string escaping (report.hpp): the
// result must be a valid JSON string body (RFC 8259, valid UTF-8) for any bytes.

#include <cctype>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../../examples/quantize/cli.hpp"
#include "../../examples/quantize/report.hpp"
#include "fuzz_support.hpp"

namespace {

using qmix::fuzz::fuzz_check;
namespace cli = qmix::quantize_cli;

class rule_files {
  public:
    rule_files() {
        add("rules.txt", "# attention precise\n.*attn.*=q8_0\n\n  encoder\\..*=q5_k  \r\n");
        add("broken.txt", ".*=q4_0\nbroken line\n");
        add("empty.txt", "");
    }

    void load(qmix::rules::rule_set& rules, const std::string& path) const {
        const auto found = files_.find(path);
        if (found == files_.end()) throw qmix::error(path + ": cannot open the rule file");
        rules.add_file(found->second->path());
    }

  private:
    void add(const std::string& name, const std::string& text) {
        auto file = std::make_unique<qmix::fuzz::memory_file>("qmix-fuzz-cli-rules");
        file->assign(text);
        files_.emplace(name, std::move(file));
    }

    std::map<std::string, std::unique_ptr<qmix::fuzz::memory_file>> files_;
};

/// A JSON string body as RFC 8259 allows it: no raw control character, quote or lone
/// backslash, escapes well formed, valid UTF-8 (no overlong forms, no surrogates).
bool valid_json_string_body(const std::string& body) {
    const auto* b = reinterpret_cast<const unsigned char*>(body.data());
    const std::size_t n = body.size();
    for (std::size_t i = 0; i < n;) {
        const unsigned char c = b[i];
        if (c < 0x20 || c == '"') return false;
        if (c == '\\') {
            if (i + 1 >= n) return false;
            if (b[i + 1] == 'u') {
                if (i + 6 > n) return false;
                for (std::size_t k = i + 2; k < i + 6; ++k) {
                    if (!std::isxdigit(b[k])) return false;
                }
                i += 6;
            } else if (std::strchr("\"\\/bfnrt", b[i + 1]) != nullptr && b[i + 1] != 0) {
                i += 2;
            } else {
                return false;
            }
            continue;
        }
        if (c < 0x80) {
            ++i;
            continue;
        }
        const std::size_t length = c >= 0xc2 && c <= 0xdf   ? 2
                                   : c >= 0xe0 && c <= 0xef ? 3
                                   : c >= 0xf0 && c <= 0xf4 ? 4
                                                            : 0;
        if (length == 0) return false;
        std::uint32_t code = c & (0x7f >> length);
        if (i + length > n) return false;
        for (std::size_t k = 1; k < length; ++k) {
            if ((b[i + k] & 0xc0) != 0x80) return false;
            code = (code << 6) | (b[i + k] & 0x3f);
        }
        const std::uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
        if (code < least[length] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
            return false;
        }
        i += length;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const rule_files files;
    const std::vector<std::string> args =
        size == 0 ? std::vector<std::string>{} : qmix::fuzz::split(data, size, '\0');
    for (const auto& arg : args) {
        fuzz_check(valid_json_string_body(cli::json_escape(arg)), "json_escape: invalid JSON");
    }
    // Patterns that hit known limits of std::regex itself are not what this target is for.
    for (std::size_t i = 0; i < args.size(); ++i) {
        const bool pattern =
            args[i].rfind("--tensor-type=", 0) == 0 || (i > 0 && args[i - 1] == "--tensor-type");
        if (pattern && qmix::fuzz::std_regex_hazard(args[i])) return 0;
    }
    const auto load = [](qmix::rules::rule_set& rules, const std::string& path) {
        files.load(rules, path);
    };

    cli::parsed_command parsed;
    try {
        parsed = cli::parse_command_line(args, load);
    } catch (const cli::usage_error& e) {
        fuzz_check(e.what()[0] != '\0', "usage error without a message");
        return 0;
    }

    if (parsed.what != cli::request::quantize) return 0;
    const cli::command_line& line = parsed.line;
    fuzz_check(line.options.threads <= 1024, "thread count above 1024 accepted");
    fuzz_check(qmix::rules::is_storage_type(line.options.default_type), "default type");
    for (const auto& r : line.options.rules.rules()) {
        fuzz_check(qmix::rules::is_storage_type(r.type), "rule type");
        fuzz_check(!r.pattern.empty(), "empty rule pattern accepted");
    }
    std::size_t flags = 0;
    for (const auto& source : line.rule_sources) flags += source.first == "flag" ? 1 : 0;
    fuzz_check(line.options.rules.size() >= flags, "a --tensor-type rule went missing");
    return 0;
}
