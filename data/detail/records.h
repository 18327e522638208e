// A data file record by record, as every loader of data/dataset.h reads it: JSONL, or one JSON
// array of records; each record renamed by data.fields; a bad record thrown under a message
// naming where it is, or counted and skipped (data.on_bad_line).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "data/dataset.h"

namespace rudder::data::detail {

/// How a file's records are read.
struct RecordOptions {
  FieldNames fields;      // data.fields; empty: every field under its own name
  bool skip_bad = false;  // data.on_bad_line: skip
  /// Whether a name of `fields` that no record has stops the read (a misspelt name), or is
  /// logged: a file scored with a training config need not have the training file's fields.
  bool fields_required = true;
  /// Whether an error about a missing field suggests data.fields (a file it does not apply to
  /// gets no such hint).
  bool fields_apply = true;
};

/// A record under Rudder's field names, and as the file has it.
using RecordParse =
    std::function<void(const nlohmann::json& record, const nlohmann::json& as_in_file)>;

/// Calls `parse` with each record of `path` in file order. A core::InvalidArgument from `parse`
/// marks that record bad: it is rethrown as "PATH:LINE: message" ("PATH: element N: ..." in an
/// array file) or, with skip_bad, counted in `report` (may be null) and skipped; anything else
/// thrown passes through as it is. Throws NotFound when `path` cannot be opened.
void for_each_record(const std::string& path, const RecordOptions& options, LoadReport* report,
                     const RecordParse& parse);

}  // namespace rudder::data::detail
