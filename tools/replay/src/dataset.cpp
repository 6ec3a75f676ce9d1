#include "dataset.hpp"

#include <cctype>
#include <charconv>
#include <fstream>
#include <stdexcept>
#include <string_view>

namespace sluice::replay {
namespace {

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

std::vector<std::string_view> split_fields(std::string_view line) {
    std::vector<std::string_view> fields;
    for (;;) {
        const auto comma = line.find(',');
        fields.push_back(line.substr(0, comma));
        if (comma == std::string_view::npos) {
            return fields;
        }
        line.remove_prefix(comma + 1);
    }
}

// Parses exactly `digits` decimal digits.
std::optional<int> fixed_digits(std::string_view text, std::size_t digits) {
    if (text.size() != digits) {
        return std::nullopt;
    }
    int value = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || ptr != text.data() + text.size() || text.front() == '-' ||
        text.front() == '+') {
        return std::nullopt;
    }
    return value;
}

// Date is YYYY/MM/DD and Time HH:MM:SS, as in the data set.
std::optional<std::chrono::sys_seconds> parse_timestamp(std::string_view date,
                                                        std::string_view time) {
    using namespace std::chrono;
    if (date.size() != 10 || date[4] != '/' || date[7] != '/' || time.size() != 8 ||
        time[2] != ':' || time[5] != ':') {
        return std::nullopt;
    }
    const auto y = fixed_digits(date.substr(0, 4), 4);
    const auto mo = fixed_digits(date.substr(5, 2), 2);
    const auto d = fixed_digits(date.substr(8, 2), 2);
    const auto h = fixed_digits(time.substr(0, 2), 2);
    const auto mi = fixed_digits(time.substr(3, 2), 2);
    const auto s = fixed_digits(time.substr(6, 2), 2);
    if (!y || !mo || !d || !h || !mi || !s || *h > 23 || *mi > 59 || *s > 59) {
        return std::nullopt;
    }
    const year_month_day ymd{year{*y}, month{static_cast<unsigned>(*mo)},
                             day{static_cast<unsigned>(*d)}};
    if (!ymd.ok()) {
        return std::nullopt;
    }
    return sys_days{ymd} + hours{*h} + minutes{*mi} + seconds{*s};
}

std::string iso_timestamp(std::string_view date, std::string_view time) {
    std::string ts(date);
    ts[4] = '-';
    ts[7] = '-';
    ts.append("T").append(time);
    return ts;
}

struct Columns {
    std::size_t count = 0;
    std::size_t date = 0;
    std::size_t time = 0;
    std::array<std::size_t, kSensorCount> sensors{};
};

Columns locate_columns(std::string_view header, const std::string& path) {
    const auto names = split_fields(header);
    const auto find = [&](std::string_view name) -> std::optional<std::size_t> {
        for (std::size_t i = 0; i < names.size(); ++i) {
            if (names[i] == name) {
                return i;
            }
        }
        return std::nullopt;
    };
    Columns columns;
    columns.count = names.size();
    std::string missing;
    const auto locate = [&](std::string_view name, std::size_t& index) {
        if (const auto found = find(name)) {
            index = *found;
        } else {
            missing.append(missing.empty() ? "" : ", ").append(name);
        }
    };
    locate("Date", columns.date);
    locate("Time", columns.time);
    for (std::size_t i = 0; i < kSensorCount; ++i) {
        locate(kSensors[i].column, columns.sensors[i]);
    }
    if (!missing.empty()) {
        throw std::runtime_error("'" + path + "' is not the occupancy data set: its header lacks " +
                                 missing);
    }
    return columns;
}

// Returns the reason the row is malformed, or an empty string after filling `row`.
std::string parse_row(std::string_view line, const Columns& columns, Row& row) {
    const auto fields = split_fields(line);
    if (fields.size() != columns.count) {
        return "expected " + std::to_string(columns.count) + " fields, found " +
               std::to_string(fields.size());
    }
    const auto date = fields[columns.date];
    const auto time = fields[columns.time];
    const auto instant = parse_timestamp(date, time);
    if (!instant) {
        return "bad Date/Time '" + std::string(date) + "," + std::string(time) +
               "' (expected YYYY/MM/DD,HH:MM:SS)";
    }
    row.time = *instant;
    row.ts = iso_timestamp(date, time);
    for (std::size_t i = 0; i < kSensorCount; ++i) {
        const auto value = fields[columns.sensors[i]];
        if (!is_json_number(value)) {
            return std::string(kSensors[i].column) + " '" + std::string(value) +
                   "' is not a number";
        }
        row.values[i] = value;
    }
    return {};
}

}  // namespace

bool is_json_number(std::string_view text) {
    std::size_t i = 0;
    const auto digit = [&](std::size_t at) {
        return at < text.size() && std::isdigit(static_cast<unsigned char>(text[at])) != 0;
    };
    const auto digits = [&]() {
        const auto start = i;
        while (digit(i)) {
            ++i;
        }
        return i > start;
    };
    if (i < text.size() && text[i] == '-') {
        ++i;
    }
    if (i < text.size() && text[i] == '0') {
        ++i;
    } else if (!digits()) {
        return false;
    }
    if (i < text.size() && text[i] == '.') {
        ++i;
        if (!digits()) {
            return false;
        }
    }
    if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
        ++i;
        if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
            ++i;
        }
        if (!digits()) {
            return false;
        }
    }
    return i == text.size();
}

Dataset load_dataset(const std::string& path, std::optional<std::uint64_t> max_rows,
                     const MalformedRowHandler& on_malformed) {
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error("cannot open '" + path + "'");
    }
    std::string line;
    std::uint64_t line_number = 1;
    if (!std::getline(in, line)) {
        throw std::runtime_error("'" + path + "' is empty");
    }
    std::string_view header = line;
    if (header.starts_with(kUtf8Bom)) {
        header.remove_prefix(kUtf8Bom.size());
    }
    if (header.ends_with('\r')) {
        header.remove_suffix(1);
    }
    const Columns columns = locate_columns(header, path);

    Dataset dataset;
    while ((!max_rows || dataset.rows_read < *max_rows) && std::getline(in, line)) {
        ++line_number;
        std::string_view text = line;
        if (text.ends_with('\r')) {
            text.remove_suffix(1);
        }
        if (text.empty()) {
            continue;
        }
        ++dataset.rows_read;
        Row row;
        row.line = line_number;
        if (auto reason = parse_row(text, columns, row); !reason.empty()) {
            ++dataset.malformed;
            on_malformed(line_number, reason);
            continue;
        }
        dataset.rows.push_back(std::move(row));
    }
    if (in.bad()) {
        throw std::runtime_error("error reading '" + path + "' after line " +
                                 std::to_string(line_number));
    }
    return dataset;
}

}  // namespace sluice::replay
