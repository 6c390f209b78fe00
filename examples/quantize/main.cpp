// SPDX-License-Identifier: MIT
// qmix-quantize: mixed-precision quantization of whisper ggml models.
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <new>
#include <optional>
#include <sstream>
#include <streambuf>
#include <string>
#include <vector>

#include "cli.hpp"
#include "qmix/io/atomic_file.hpp"
#include "qmix/io/signal_cleanup.hpp"
#include "qmix/qmix.hpp"
#include "qmix/whisper/budget.hpp"
#include "qmix/whisper/info.hpp"
#include "qmix/whisper/quantize_model.hpp"
#include "report.hpp"

namespace {

using namespace qmix;
using namespace qmix::whisper;
using namespace qmix::quantize_cli;

void print_types(std::ostream& out) {
    out << "type   bits/weight  block  bytes/block  ftype  fallback\n";
    for (const auto& t : type_table) {
        if (!rules::is_storage_type(t.id)) continue;
        const auto f = ftype_of_type(t.id);
        const auto fb = fallback_of(t.id);
        out << std::left << std::setw(7) << t.name << std::right << std::setw(11) << std::fixed
            << std::setprecision(4) << bits_per_weight(t.id) << std::setw(7) << t.block_size
            << std::setw(13) << t.type_size << std::setw(7) << static_cast<int>(*f) << "  "
            << (fb ? std::string(type_name(*fb)) : std::string("-")) << "\n";
    }
}

/// Every file the run writes (OUTPUT unless --dry-run, the --json report) is checked
/// before anything is opened for writing: none may be the input (directly, through a
/// symbolic or hard link, or another spelling of its path), none may be another, and each
/// must be a regular file or a missing one (io::resolve_output_path).
void refuse_overlapping_files(const command_line& cl) {
    struct stat in {};
    if (::stat(cl.input.c_str(), &in) != 0) {
        throw qmix::error(cl.input + ": cannot open the input model: " + std::strerror(errno));
    }
    std::vector<std::pair<std::string, std::string>> outputs;  // (role, path)
    outputs.emplace_back("OUTPUT", cl.output);
    if (!cl.json_path.empty()) outputs.emplace_back("the --json report", cl.json_path);
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        const auto& [role, path] = outputs[i];
        if (io::same_file(path, cl.input)) {
            throw qmix::error(path + " is the input model itself (" + cl.input +
                              "); refusing to overwrite it with " + role);
        }
        for (std::size_t k = 0; k < i; ++k) {
            if (io::same_file(path, outputs[k].second)) {
                throw qmix::error(path + " names both " + outputs[k].first + " and " + role +
                                  "; they need two different files");
            }
        }
        if (role != "OUTPUT" || !cl.dry_run) io::resolve_output_path(path);
    }
}

std::string mib(std::uint64_t bytes) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(2) << double(bytes) / (1024.0 * 1024.0) << " MiB";
    return s.str();
}

std::string decided_by(const tensor_plan& p, const rules::rule_set& rules) {
    switch (p.why) {
        case decision::rule:
            return rules.rules()[*p.rule].origin;
        case decision::copied:
            return p.ignored_rule ? "copied (" + p.note + "; " +
                                        rules.rules()[*p.ignored_rule].origin + " ignored)"
                                  : "copied (" + p.note + ")";
        case decision::fallback:
        case decision::kept:
        case decision::loader_type:
            return std::string(decision_name(p.why)) + " (" + p.note + ")";
        default:
            return std::string(decision_name(p.why));
    }
}

void print_table(std::ostream& out, const model_plan& plan, const quantize_result* result,
                 const rules::rule_set& rules) {
    out << std::left << std::setw(48) << "tensor" << std::setw(14) << "shape" << std::setw(14)
        << "type" << std::setw(22) << "size"
        << "decided by\n";
    for (std::size_t i = 0; i < plan.tensors.size(); ++i) {
        const auto& p = plan.tensors[i];
        const std::string types =
            std::string(type_name(p.tensor->type)) + " -> " + std::string(type_name(p.output));
        out << std::left << std::setw(48) << p.tensor->name << std::setw(14)
            << shape_text(*p.tensor) << std::setw(14) << types << std::setw(22)
            << (mib(p.tensor->data_size) + " -> " + mib(p.output_bytes)) << decided_by(p, rules);
        if (result && result->stats[i].computed) {
            out << "  rmse " << std::scientific << std::setprecision(3) << result->stats[i].rmse
                << " max " << result->stats[i].max_abs_error << std::defaultfloat;
        }
        out << "\n";
    }
}

void print_summary(std::ostream& out, const model_plan& plan, const command_line& cl,
                   const quantize_result* result) {
    std::map<std::string, std::pair<std::size_t, std::uint64_t>> per_type;
    std::map<std::string, std::size_t> fallbacks;
    for (const auto& p : plan.tensors) {
        auto& entry = per_type[std::string(type_name(p.output))];
        ++entry.first;
        entry.second += p.output_bytes;
        if (p.why == decision::fallback || p.why == decision::kept) {
            fallbacks["rows of " + std::to_string(p.tensor->ne[0]) + ": " +
                      std::string(type_name(p.requested)) + " -> " +
                      std::string(type_name(p.output))]++;
        }
    }
    out << "\nsummary\n  tensors by type:";
    for (const auto& [name, e] : per_type) out << "  " << name << " " << e.first;
    out << "\n  size: " << mib(plan.input_bytes) << " -> " << mib(plan.output_bytes) << "\n";
    if (plan.candidate_values > 0) {
        const double values = double(plan.candidate_values);
        out << std::fixed << std::setprecision(3)
            << "  bits per weight of the matrices: " << plan.nominal_bits / values
            << " as requested, " << plan.actual_bits / values << " as written\n";
    }
    const std::int32_t f = plan.header_ftype % quantization_version_factor;
    out << "  header ftype: " << plan.header_ftype << " (" << type_name(*type_of_ftype(f))
        << (plan.mixed ? ", the widest type of the mixed matrices" : "") << ")\n";
    if (!fallbacks.empty()) {
        out << "  fallbacks (" << plan.count(decision::fallback) + plan.count(decision::kept)
            << " tensors):\n";
        for (const auto& [what, count] : fallbacks) out << "    " << count << " x " << what << "\n";
    }
    const std::size_t retyped = plan.count(decision::loader_type);
    if (retyped > 0) {
        out << "  " << retyped << " tensor(s) stored as whisper.cpp's loader creates them "
            << "(conv weights follow the header)\n";
    }
    out << "  where it loads: " << plan.loaders.summary() << "\n";
    if (result) {
        out << std::fixed << std::setprecision(2) << "  time: " << result->seconds << " s with "
            << resolve_threads(cl.options.threads) << " thread(s)\n";
    }
}

/// "encoder.blocks.N.mlp.0.weight" for every layer's "encoder.blocks.7.mlp.0.weight".
std::string tensor_group(const std::string& name) {
    const std::string marker = ".blocks.";
    const auto at = name.find(marker);
    if (at == std::string::npos) return name;
    auto digits = at + marker.size();
    auto end = digits;
    while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end]))) ++end;
    if (end == digits) return name;
    return name.substr(0, digits) + "N" + name.substr(end);
}

std::string budget_text(const command_line& cl) {
    std::ostringstream s;
    if (cl.budget->target_bytes) {
        s << "--target-size " << *cl.budget->target_bytes << " bytes";
    } else {
        s << "--target-bpw " << std::setprecision(6) << *cl.budget->target_bpw;
    }
    return s.str();
}

void print_budget(std::ostream& out, const budget_result& b, const command_line& cl) {
    out << "\nbudget (" << budget_text(cl) << ")\n";
    out << "  output " << mib(b.output_bytes) << " (" << b.output_bytes << " bytes) of at most "
        << mib(b.budget_bytes) << " (" << b.budget_bytes << " bytes); reachable "
        << mib(b.min_bytes) << " .. " << mib(b.max_bytes) << "\n";
    out << std::fixed << std::setprecision(3) << "  matrices: " << b.matrix_bpw
        << " bits per weight\n";
    std::size_t sampled = 0, free = 0;
    for (const auto& t : b.tensors) {
        if (t.free) ++free;
        if (t.sampled_rows > 0 && t.sampled_rows < t.tensor->row_count()) ++sampled;
    }
    out << std::scientific << std::setprecision(4) << "  weighted error: " << b.weighted_error
        << " (no choice within the budget can go below " << b.lower_bound << ")\n";
    out << "  " << free << " of " << b.tensors.size() << " matrices chosen (the others by rules); "
        << (sampled ? std::to_string(sampled) + " measured on evenly spaced rows (--budget-sample)"
                    : std::string("errors measured on every row"))
        << "\n";
    // Chosen types per group of tensors (layers folded together).
    std::map<std::string, std::map<std::string, std::size_t>> groups;
    std::vector<std::string> order;
    for (const auto& t : b.tensors) {
        const std::string g = tensor_group(t.tensor->name);
        if (!groups.count(g)) order.push_back(g);
        groups[g][std::string(type_name(t.chosen))]++;
    }
    out << "  chosen types by tensor group:\n";
    for (const auto& g : order) {
        out << "    " << std::left << std::setw(46) << g << std::right;
        bool first = true;
        for (const auto& [type, count] : groups[g]) {
            out << (first ? "" : ", ") << type << " x" << count;
            first = false;
        }
        out << "\n";
    }
    out << "  uniform types at their own size (same rules):\n"
        << "    type          size  bits/weight  weighted error\n";
    for (const auto& u : b.uniform) {
        out << "    " << std::left << std::setw(7) << type_name(u.type) << std::right
            << std::setw(13) << mib(u.output_bytes) << std::fixed << std::setprecision(3)
            << std::setw(13) << u.matrix_bpw << std::scientific << std::setprecision(4)
            << std::setw(16) << u.weighted_error
            << (u.output_bytes <= b.budget_bytes ? "  fits" : "") << "\n";
    }
    out << std::defaultfloat << std::fixed << std::setprecision(2) << "  time: measuring "
        << b.measure_seconds << " s, choosing " << b.choose_seconds << " s\n"
        << std::defaultfloat;
}

/// The chosen types as a --tensor-type-file: the user's rules first, then one per matrix.
void print_rule_file(std::ostream& out, const budget_result& b, const command_line& cl) {
    out << "# qmix-quantize " << budget_text(cl) << ": " << b.output_bytes
        << " bytes, weighted error " << std::scientific << std::setprecision(6) << b.weighted_error
        << std::defaultfloat << "\n"
        << "# the same file: qmix-quantize --tensor-type-file THIS_FILE INPUT OUTPUT f16\n";
    for (const auto& line : b.rule_lines) out << line << "\n";
}

// The input is memory-mapped. When another program truncates it while we read, touching a
// page past its new end raises SIGBUS, which would otherwise kill us with a core dump and
// leave the temporary output behind. A handler may only write and exit, so its message is
// composed before the input is opened and kept here for the rest of the run.
std::string input_changed_message;
const char* volatile input_changed_text = nullptr;
volatile std::size_t input_changed_length = 0;

extern "C" void on_input_changed(int) {
    if (const char* text = input_changed_text) {
        if (::write(STDERR_FILENO, text, input_changed_length) < 0) {
            // Nothing more can be done from here; the exit status still says it failed.
        }
    }
    io::remove_registered_temporaries();
    ::_exit(exit_failure);
}

void install_input_changed_handler(const std::string& input) {
    input_changed_message = "qmix-quantize: error: " + input +
                            ": the input changed while it was being read (truncated by another "
                            "program?); nothing was written\n";
    input_changed_length = input_changed_message.size();
    input_changed_text = input_changed_message.c_str();
    struct sigaction action {};
    action.sa_handler = on_input_changed;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGBUS, &action, nullptr);
}

/// A one-line progress bar on a terminal.
class progress_bar {
  public:
    explicit progress_bar(bool enabled) : enabled_(enabled), start_(clock::now()) {}
    void update(std::uint64_t done, std::uint64_t total) {
        if (!enabled_ || total == 0) return;
        const auto now = clock::now();
        if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        const double fraction = double(done) / double(total);
        const double elapsed = std::chrono::duration<double>(now - start_).count();
        const double left = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0;
        const int width = 30;
        const int filled = int(fraction * width);
        std::fprintf(stderr, "\r[%.*s%*s] %5.1f%%  %s / %s  %.1f s left   ", filled,
                     "##############################", width - filled, "", 100 * fraction,
                     mib(done).c_str(), mib(total).c_str(), left);
        if (done >= total) std::fprintf(stderr, "\n");
    }

  private:
    using clock = std::chrono::steady_clock;
    bool enabled_;
    clock::time_point start_;
    clock::time_point last_{};
};

int run(const command_line& cl) {
    refuse_overlapping_files(cl);
    if (!cl.dry_run) install_input_changed_handler(cl.input);
    const model_file model(cl.input);
    // With a budget, the chosen types become rules (after the user's) and the run goes on
    // exactly as a run with those rules.
    quantize_options options = cl.options;
    std::optional<budget_result> budget;
    if (cl.budget) {
        budget = choose_types(model, cl.options, *cl.budget);
        options.rules = budget->rules;
    }
    const model_plan plan = make_plan(model, options);
    const budget_result* chosen = budget ? &*budget : nullptr;
    const bool terminal = ::isatty(STDERR_FILENO) != 0;
    const bool table_first = !cl.quiet && (cl.dry_run || cl.verbose || !terminal);
    for (const auto& w : plan.warnings) std::cerr << "warning: " << w << "\n";
    // Every file is created (as a temporary beside it) before the work starts, so that an
    // unwritable path fails at once, and all are committed together at the end.
    std::optional<io::atomic_file> report;
    if (!cl.json_path.empty()) report.emplace(cl.json_path);
    if (cl.dry_run) {
        if (!cl.quiet) {
            print_table(std::cout, plan, nullptr, options.rules);
            print_summary(std::cout, plan, cl, nullptr);
            if (chosen) print_budget(std::cout, *chosen, cl);
        }
        if (report) {
            report->write(json_report(plan, cl, nullptr, chosen));
            report->commit();
        }
        if (chosen) {
            if (!cl.quiet) std::cout << "\nthe chosen types as a rule file:\n";
            print_rule_file(std::cout, *chosen, cl);
        }
        if (!cl.quiet) std::cout << "dry run: nothing written\n";
        return 0;
    }
    model_writer writer(cl.output);
    progress_bar bar(terminal && !cl.quiet && !cl.verbose);
    const quantize_result result = execute_plan(
        model, plan, options, writer,
        [&](std::size_t, std::uint64_t done, std::uint64_t total) { bar.update(done, total); });
    if (report) {
        report->write(json_report(plan, cl, &result, chosen));
        io::commit_together({&writer.finished_file(), &*report});
    } else {
        writer.commit();
    }
    if (table_first || (cl.options.compute_stats && !cl.quiet)) {
        print_table(std::cout, plan, &result, options.rules);
    }
    if (!cl.quiet) print_summary(std::cout, plan, cl, &result);
    if (!cl.quiet && chosen) print_budget(std::cout, *chosen, cl);
    if (!cl.quiet) {
        std::cout << "wrote " << cl.output;
        if (report) std::cout << " and " << cl.json_path;
        std::cout << "\n";
    }
    return 0;
}

/// Standard output through write(2), remembering the first error: a reader that closed
/// the pipe (`| head -1`) is no failure of the run, any other error (a full disk behind
/// `> file`) is.
class standard_output : public std::streambuf {
  public:
    standard_output() { setp(buffer_, buffer_ + sizeof buffer_); }
    int error_code() const noexcept { return error_; }

  protected:
    int_type overflow(int_type c) override {
        if (!drain()) return traits_type::eof();
        if (!traits_type::eq_int_type(c, traits_type::eof())) {
            *pptr() = traits_type::to_char_type(c);
            pbump(1);
        }
        return traits_type::not_eof(c);
    }
    int sync() override { return drain() ? 0 : -1; }

  private:
    bool drain() {
        const char* data = pbase();
        std::size_t size = static_cast<std::size_t>(pptr() - pbase());
        setp(buffer_, buffer_ + sizeof buffer_);
        while (size > 0 && error_ == 0) {
            const ssize_t done = ::write(STDOUT_FILENO, data, size);
            if (done < 0 && errno == EINTR) continue;
            if (done < 0) error_ = errno;
            if (done <= 0) break;
            data += done;
            size -= static_cast<std::size_t>(done);
        }
        return error_ == 0;
    }

    char buffer_[1 << 14];
    int error_ = 0;
};

int run_command(int argc, char** argv) {
    try {
        const parsed_command command = parse_command_line(argc, argv);
        switch (command.what) {
            case request::help:
                std::cout << usage_text();
                return 0;
            case request::version:
                std::cout << "qmix-quantize " << QMIX_VERSION_STRING << "\n";
                return 0;
            case request::list_types:
                print_types(std::cout);
                return 0;
            case request::info: {
                const model_file model(command.info_model);
                print_model_info(std::cout, model);
                return 0;
            }
            case request::quantize:
                break;
        }
        return run(command.line);
    } catch (const usage_error& e) {
        std::cerr << "qmix-quantize: " << e.what() << "\n";
        return exit_usage;
    } catch (const std::bad_alloc&) {
        // The temporary output, if any, is gone already: the writer removed it on unwinding.
        std::cerr << "qmix-quantize: error: out of memory (std::bad_alloc)\n";
        return exit_failure;
    } catch (const std::exception& e) {
        std::cerr << "qmix-quantize: error: " << e.what() << "\n";
        return exit_failure;
    }
}

}  // namespace

int main(int argc, char** argv) {
    // Past a file size limit (ulimit -f) a write should fail with EFBIG, reported and
    // cleaned up like a full disk, rather than kill the process with SIGXFSZ.
    std::signal(SIGXFSZ, SIG_IGN);
    // A closed pipe on stdout or stderr is an EPIPE error to handle, not a death by SIGPIPE.
    std::signal(SIGPIPE, SIG_IGN);
    // Ctrl-C, SIGTERM and SIGHUP remove every temporary output before they end the process.
    io::remove_temporaries_on_termination_signals();
    static standard_output out;
    std::streambuf* const previous = std::cout.rdbuf(&out);
    int status = run_command(argc, argv);
    std::cout.flush();
    std::cout.rdbuf(previous);
    if (out.error_code() != 0 && out.error_code() != EPIPE && status == 0) {
        std::cerr << "qmix-quantize: error: writing to standard output failed: "
                  << std::strerror(out.error_code()) << "\n";
        status = exit_failure;
    }
    return status;
}
