#include "data/detail/records.h"

#include <fstream>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"

namespace rudder::data {
namespace detail {
namespace {

using core::str;
using nlohmann::json;

const std::string kByteOrderMark = "\xEF\xBB\xBF";

// `record` with each field the file names otherwise under Rudder's name (replacing a field of
// that name, which the file means as something else).
json renamed(const json& record, const FieldNames& fields) {
  json out = record;
  for (const auto& [ours, theirs] : fields) {
    if (ours == theirs) continue;
    out.erase(ours);
    out.erase(theirs);
  }
  for (const auto& [ours, theirs] : fields) {
    if (ours != theirs && record.contains(theirs)) out[ours] = record.at(theirs);
  }
  return out;
}

// One record after another, renamed by the options' fields; a bad record is thrown or counted
// under a message naming where it is.
class RecordReader {
 public:
  RecordReader(const RecordOptions& options, LoadReport& report, const RecordParse& parse)
      : options_(options),
        report_(report),
        parse_(parse),
        field_seen_(options.fields.size(), false) {
    for (const auto& [ours, theirs] : options_.fields) {
      RUDDER_CHECK(!theirs.empty(), "data.fields.", ours, " is empty: name the file's field");
      renames_ += str(renames_.empty() ? "" : ", ", "'", theirs, "' as '", ours, "'");
    }
    report_ = LoadReport{};
  }

  // One record; `where` names it in errors ("path:LINE" or "path: element N").
  void read(const std::function<json()>& record, const std::string& where) {
    ++report_.lines;
    try {
      const json line = parsed(record);
      if (options_.fields.empty()) {
        parse_(line, line);
      } else {
        parse_(fielded(line), line);
      }
    } catch (const core::InvalidArgument& e) {
      const std::string message = str(where, ": ", e.what(), note(e.what()));
      if (!options_.skip_bad) throw core::InvalidArgument(message);
      ++report_.skipped;
      if (report_.first_errors.size() < 10) report_.first_errors.push_back(message);
    }
  }

  // After the last record of `path`: a name no record has is a misspelt name, not a field every
  // record lacks.
  void finish(const std::string& path) const {
    for (size_t i = 0; i < options_.fields.size(); ++i) {
      if (report_.lines == 0 || field_seen_[i]) continue;
      const std::string message =
          str("data.fields.", options_.fields[i].first, " names '", options_.fields[i].second,
              "', which no record of ", path, " has");
      RUDDER_CHECK(!options_.fields_required, message);
      RUDDER_LOG(kWarn) << message;
    }
    if (report_.skipped > 0) {
      RUDDER_LOG(kWarn) << path << ": skipped " << report_.skipped << " of " << report_.lines
                        << " records; first: " << report_.first_errors[0];
    }
  }

 private:
  static json parsed(const std::function<json()>& record) {
    json line;
    try {
      line = record();
    } catch (const json::exception& e) {
      throw core::InvalidArgument(str("not valid JSON: ", e.what()));
    }
    RUDDER_CHECK(line.is_object(), "expected a JSON object");
    return line;
  }

  // `line` under Rudder's field names.
  json fielded(const json& line) {
    for (size_t i = 0; i < options_.fields.size(); ++i)
      field_seen_[i] = field_seen_[i] || line.contains(options_.fields[i].second);
    return renamed(line, options_.fields);
  }

  // What an error message adds: how the record's fields were read, or how else they could be.
  std::string note(const std::string& what) const {
    if (!renames_.empty()) return " (data.fields reads " + renames_ + ")";
    if (options_.fields_apply && what.rfind("missing '", 0) == 0)
      return " (a file that names its fields otherwise is read with data.fields)";
    return "";
  }

  const RecordOptions& options_;  // the caller's, which outlives the reader
  LoadReport& report_;            // likewise
  const RecordParse& parse_;      // likewise
  std::string renames_;           // for error messages
  std::vector<bool> field_seen_;  // in some record of the file
};

// Where the first record of `in` starts (after a UTF-8 byte order mark), and whether the file
// is one JSON array: its first character other than whitespace is '['. Leaves `in` at `start`.
std::pair<std::streamoff, bool> first_record(std::istream& in) {
  std::string head(kByteOrderMark.size(), '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  const auto start = static_cast<std::streamoff>(head == kByteOrderMark ? head.size() : 0);
  in.clear();
  in.seekg(start);
  in >> std::ws;
  const bool array = in.peek() == '[';
  in.clear();  // `ws` may have met the end of an empty file
  in.seekg(start);
  return {start, array};
}

// Calls reader.read for each record of `in` (the file `path`): each non-empty line's JSON
// (JSONL), or each element of a file that is one JSON array (as `Dataset.to_json(lines=False)`
// and many published data.json files write it).
void read_records(std::istream& in, const std::string& path, RecordReader& reader) {
  if (first_record(in).second) {
    json records;
    try {
      records = json::parse(in);
    } catch (const json::exception& e) {
      throw core::InvalidArgument(
          str(path, ": not a valid JSON array (a file that begins with '[' ",
              "is read as one array; JSONL lines are objects): ", e.what()));
    }
    for (size_t i = 0; i < records.size(); ++i)
      reader.read([&] { return records[i]; }, str(path, ": element ", i + 1));
    return;
  }
  std::string text;
  size_t line_number = 0;
  while (std::getline(in, text)) {
    ++line_number;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    reader.read([&] { return json::parse(text); }, str(path, ":", line_number));
  }
}

}  // namespace

void for_each_record(const std::string& path, const RecordOptions& options, LoadReport* report,
                     const RecordParse& parse) {
  LoadReport local;
  RecordReader reader(options, report != nullptr ? *report : local, parse);
  std::ifstream in(path, std::ios::binary);
  RUDDER_CHECK_T(core::NotFound, in.good(), path, ": cannot open");
  read_records(in, path, reader);
  reader.finish(path);
}

}  // namespace detail

int64_t count_records(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RUDDER_CHECK_T(core::NotFound, in.good(), path, ": cannot open");
  if (detail::first_record(in).second) return -1;
  int64_t n = 0;
  std::string text;
  while (std::getline(in, text)) {
    if (text.find_first_not_of(" \t\r") != std::string::npos) ++n;
  }
  return n;
}

FieldNames field_names(const DataFields& fields) {
  // Each field of DataFields is named as Rudder's field it renames.
  const auto* descriptor = fields.GetDescriptor();
  FieldNames out;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const auto* field = descriptor->field(i);
    const std::string theirs = fields.GetReflection()->GetString(fields, field);
    if (theirs != field->name()) out.emplace_back(field->name(), theirs);
  }
  return out;
}

}  // namespace rudder::data
