// SPDX-License-Identifier: MIT
#pragma once

// qmix-quantize's JSON report (--json FILE). Always valid JSON (RFC 8259): strings are
// escaped and kept valid UTF-8 (a byte that is not part of valid UTF-8 becomes U+FFFD),
// and a number that is not finite (the RMSE of a tensor holding NaN, with
// --allow-nonfinite) is written as null. The fuzz target tests/fuzz/fuzz_cli.cpp checks
// the escaping on arbitrary bytes; the command-line suites parse every report they write.

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>

#include "cli.hpp"
#include "qmix/whisper/budget.hpp"
#include "qmix/whisper/quantize_model.hpp"

namespace qmix::quantize_cli {

/// `text` as a JSON string body (RFC 8259): quotes, backslashes and control characters
/// escaped; valid UTF-8 kept; a byte that is not part of valid UTF-8 (a file name in another
/// encoding) becomes U+FFFD, the replacement character.
inline std::string json_escape(const std::string& text) {
    std::string out;
    const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t size = text.size();
    for (std::size_t i = 0; i < size;) {
        const unsigned char c = bytes[i];
        if (c == '"' || c == '\\') {
            out += '\\';
            out += char(c);
            ++i;
            continue;
        }
        if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
            ++i;
            continue;
        }
        if (c < 0x80) {
            out += char(c);
            ++i;
            continue;
        }
        // A UTF-8 sequence: its length from the lead byte, then the continuation bytes and
        // the range of the code point (no overlong forms, no surrogates, <= U+10FFFF).
        const std::size_t length = c >= 0xc2 && c <= 0xdf   ? 2
                                   : c >= 0xe0 && c <= 0xef ? 3
                                   : c >= 0xf0 && c <= 0xf4 ? 4
                                                            : 0;
        bool valid = length > 0 && i + length <= size;
        for (std::size_t k = 1; valid && k < length; ++k) valid = (bytes[i + k] & 0xc0) == 0x80;
        if (valid && length == 3) {
            const unsigned char second = bytes[i + 1];
            valid = !(c == 0xe0 && second < 0xa0) && !(c == 0xed && second >= 0xa0);
        }
        if (valid && length == 4) {
            const unsigned char second = bytes[i + 1];
            valid = !(c == 0xf0 && second < 0x90) && !(c == 0xf4 && second >= 0x90);
        }
        if (valid) {
            out.append(text, i, length);
            i += length;
        } else {
            out += "\\ufffd";
            ++i;
        }
    }
    return out;
}

/// A JSON number, or null for NaN and infinities (JSON has no such numbers).
inline std::string json_number(double value) {
    if (!std::isfinite(value)) return "null";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", value);
    return buf;
}

/// The --target-size / --target-bpw choice: budget, sizes, errors, uniform comparison,
/// every matrix's measured errors and the rule file.
inline std::string json_budget(const whisper::budget_result& b) {
    std::ostringstream out;
    out << "{\"budget_bytes\": " << b.budget_bytes << ", \"output_bytes\": " << b.output_bytes
        << ", \"min_bytes\": " << b.min_bytes << ", \"max_bytes\": " << b.max_bytes
        << ", \"matrix_bits_per_weight\": " << json_number(b.matrix_bpw)
        << ", \"weighted_error\": " << json_number(b.weighted_error)
        << ", \"lower_bound\": " << json_number(b.lower_bound)
        << ", \"sampled\": " << (b.sampled ? "true" : "false")
        << ", \"measure_seconds\": " << json_number(b.measure_seconds)
        << ", \"choose_seconds\": " << json_number(b.choose_seconds) << ",\n    \"uniform\": [";
    for (std::size_t i = 0; i < b.uniform.size(); ++i) {
        const auto& u = b.uniform[i];
        out << (i ? ", " : "") << "{\"type\": \"" << type_name(u.type)
            << "\", \"output_bytes\": " << u.output_bytes
            << ", \"matrix_bits_per_weight\": " << json_number(u.matrix_bpw)
            << ", \"weighted_error\": " << json_number(u.weighted_error) << "}";
    }
    out << "],\n    \"matrices\": [";
    for (std::size_t i = 0; i < b.tensors.size(); ++i) {
        const auto& t = b.tensors[i];
        out << (i ? "," : "") << "\n      {\"name\": \"" << json_escape(t.tensor->name)
            << "\", \"chosen\": \"" << type_name(t.chosen)
            << "\", \"free\": " << (t.free ? "true" : "false")
            << ", \"weight\": " << json_number(t.weight) << ", \"sampled_rows\": " << t.sampled_rows
            << ", \"relative_errors\": {";
        bool first = true;
        for (const auto& c : t.measured) {
            out << (first ? "" : ", ") << "\"" << type_name(c.type)
                << "\": " << json_number(c.relative_error);
            first = false;
        }
        out << "}}";
    }
    out << "],\n    \"rules\": [";
    for (std::size_t i = 0; i < b.rule_lines.size(); ++i) {
        out << (i ? ", " : "") << "\"" << json_escape(b.rule_lines[i]) << "\"";
    }
    out << "]}";
    return out.str();
}

inline std::string json_report(const whisper::model_plan& plan, const command_line& cl,
                               const whisper::quantize_result* result,
                               const whisper::budget_result* budget = nullptr) {
    const rules::rule_set& rules = budget ? budget->rules : cl.options.rules;
    std::ostringstream out;
    out << "{\n  \"input\": \"" << json_escape(cl.input) << "\",\n  \"output\": \""
        << json_escape(cl.output) << "\",\n  \"default_type\": \""
        << type_name(cl.options.default_type)
        << "\",\n  \"dry_run\": " << (cl.dry_run ? "true" : "false")
        << ",\n  \"header_ftype\": " << plan.header_ftype
        << ",\n  \"mixed\": " << (plan.mixed ? "true" : "false")
        << ",\n  \"loads_upstream\": " << (plan.loaders.upstream.accepts() ? "true" : "false")
        << ",\n  \"loads_per_tensor\": " << (plan.loaders.per_tensor.accepts() ? "true" : "false")
        << ",\n  \"loader_buffer_bytes\": " << plan.loaders.buffer_bytes
        << ",\n  \"input_bytes\": " << plan.input_bytes
        << ",\n  \"output_bytes\": " << plan.output_bytes;
    if (result) out << ",\n  \"seconds\": " << json_number(result->seconds);
    out << ",\n  \"warnings\": [";
    for (std::size_t i = 0; i < plan.warnings.size(); ++i) {
        out << (i ? ", " : "") << "\"" << json_escape(plan.warnings[i]) << "\"";
    }
    out << "]";
    if (budget) out << ",\n  \"budget\": " << json_budget(*budget);
    out << ",\n  \"tensors\": [\n";
    for (std::size_t i = 0; i < plan.tensors.size(); ++i) {
        const auto& p = plan.tensors[i];
        out << "    {\"name\": \"" << json_escape(p.tensor->name) << "\", \"shape\": [";
        for (int d = 0; d < p.tensor->n_dims; ++d) out << (d ? ", " : "") << p.tensor->ne[d];
        out << "], \"input_type\": \"" << type_name(p.tensor->type) << "\", \"output_type\": \""
            << type_name(p.output) << "\", \"decision\": \"" << decision_name(p.why) << "\"";
        if (p.rule) out << ", \"rule\": \"" << json_escape(rules.rules()[*p.rule].origin) << "\"";
        out << ", \"input_bytes\": " << p.tensor->data_size
            << ", \"output_bytes\": " << p.output_bytes;
        if (result && result->stats[i].computed) {
            out << ", \"rmse\": " << json_number(result->stats[i].rmse)
                << ", \"max_abs_error\": " << json_number(result->stats[i].max_abs_error);
        }
        out << "}" << (i + 1 < plan.tensors.size() ? "," : "") << "\n";
    }
    out << "  ]\n}\n";
    return out.str();
}

}  // namespace qmix::quantize_cli
