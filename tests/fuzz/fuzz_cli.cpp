// SPDX-License-Identifier: MIT
// Fuzz target: qmix-quantize's command-line parser (examples/quantize/cli.hpp).
//
// The input is the argument list, arguments separated by NUL bytes. The parser must either
// return a request or throw its usage_error: any other exception escaping it, a crash or a
// sanitizer report is a finding. Rule files are served from memory: the names "rules.txt",
// "broken.txt" and "empty.txt" hold fixed rule files, every other name does not exist, so
// the fuzzer never reads the real file system.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../../examples/quantize/cli.hpp"
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const rule_files files;
    const std::vector<std::string> args =
        size == 0 ? std::vector<std::string>{} : qmix::fuzz::split(data, size, '\0');
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
