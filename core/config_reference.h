// The configuration reference, generated from the schema's comments and rules.
#pragma once

#include <string>

namespace rudder::core {

/// Markdown tables of every section of ExperimentConfig: key, type, default, allowed values
/// and the comment of each field, in schema order. The README embeds this text and a test
/// keeps the two identical (`make docs` rewrites it).
std::string config_reference_markdown();

}  // namespace rudder::core
