#include "core/detail/yaml_to_json.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string_view>

#include "core/config.h"
#include "proto/rudder.pb.h"

namespace rudder::core::detail {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using json = nlohmann::ordered_json;

class Walker {
 public:
  explicit Walker(const YamlOrigin& origin) : origin_(origin) {}

  json message(const YAML::Node& node, const Descriptor* d, const std::string& path, int depth);

 private:
  [[noreturn]] void fail(const YAML::Node& node, const std::string& path,
                         const std::string& what) const;
  json field(const YAML::Node& node, const FieldDescriptor* f, const std::string& path, int depth);
  json scalar(const YAML::Node& node, const FieldDescriptor* f, const std::string& path);
  json number(const std::string& text, const YAML::Node& node, const FieldDescriptor* f,
              const std::string& path);
  void check_rules(double value, const YAML::Node& node, const FieldDescriptor* f,
                   const std::string& path) const;
  void fill_defaults(json& obj, const Descriptor* d, const std::string& path, int depth);

  const YamlOrigin& origin_;
};

std::string join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

const char* node_kind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    default:
      return "nothing";
  }
}

// Levenshtein distance, for "did you mean" on unknown keys.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string suggestion(const std::string& key, const Descriptor* d) {
  std::string best;
  size_t best_distance = 3;  // suggest only close matches
  for (int i = 0; i < d->field_count(); ++i) {
    const std::string& name = d->field(i)->name();
    const size_t dist = edit_distance(key, name);
    if (dist < best_distance) {
      best_distance = dist;
      best = name;
    }
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

std::string field_names(const Descriptor* d) {
  std::string names;
  for (int i = 0; i < d->field_count(); ++i) {
    names += (i ? ", " : "") + d->field(i)->name();
  }
  return names;
}

std::string format_number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

std::string range_text(const FieldRules& r) {
  std::string text;
  if (r.has_min()) text += std::string(r.min_exclusive() ? "> " : ">= ") + format_number(r.min());
  if (r.has_max()) {
    text += text.empty() ? "" : " and ";
    text += std::string(r.max_exclusive() ? "< " : "<= ") + format_number(r.max());
  }
  return text;
}

}  // namespace

void Walker::fail(const YAML::Node& node, const std::string& path, const std::string& what) const {
  std::string where = origin_.name;
  if (origin_.overridden.count(path)) {
    where += " (--set " + path + ")";
  } else if (node.IsDefined() && node.Mark().line >= 0) {
    where += str(":", node.Mark().line + 1, ":", node.Mark().column + 1);
  }
  throw ConfigError(
      str("config error: ", where, ": ", path.empty() ? "<top level>" : path, ": ", what));
}

json Walker::message(const YAML::Node& node, const Descriptor* d, const std::string& path,
                     int depth) {
  if (depth > 32) fail(node, path, "nesting deeper than 32 levels");
  if (!node.IsMap())
    fail(node, path, str("expected a mapping (", d->name(), "), got ", node_kind(node)));
  json obj = json::object();
  std::map<const google::protobuf::OneofDescriptor*, std::string> oneof_seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) fail(kv.first, path, "keys must be plain strings");
    const std::string key = kv.first.Scalar();
    const std::string key_path = join(path, key);
    const FieldDescriptor* f = d->FindFieldByName(key);
    if (f == nullptr) {
      fail(kv.first, key_path,
           str("unknown key", suggestion(key, d), "; known keys: ", field_names(d)));
    }
    if (obj.contains(key)) fail(kv.first, key_path, "duplicate key");
    if (kv.second.IsNull()) continue;  // `key:` with no value means the default
    if (const auto* oneof = f->containing_oneof()) {
      auto [it, inserted] = oneof_seen.emplace(oneof, key);
      if (!inserted) {
        std::string members;
        for (int i = 0; i < oneof->field_count(); ++i)
          members += (i ? ", " : "") + oneof->field(i)->name();
        fail(kv.first, key_path,
             str("conflicts with '", it->second, "': set only one of ", members));
      }
    }
    obj[key] = field(kv.second, f, key_path, depth);
  }
  fill_defaults(obj, d, path, depth);
  return obj;
}

json Walker::field(const YAML::Node& node, const FieldDescriptor* f, const std::string& path,
                   int depth) {
  if (f->is_map()) {
    if (!node.IsMap()) fail(node, path, str("expected a mapping, got ", node_kind(node)));
    const FieldDescriptor* value_field = f->message_type()->FindFieldByName("value");
    json obj = json::object();
    for (const auto& kv : node) {
      const std::string key = kv.first.Scalar();
      const std::string key_path = join(path, key);
      obj[key] = value_field->type() == FieldDescriptor::TYPE_MESSAGE
                     ? message(kv.second, value_field->message_type(), key_path, depth + 1)
                     : scalar(kv.second, value_field, key_path);
    }
    return obj;
  }
  if (f->is_repeated()) {
    if (!node.IsSequence()) fail(node, path, str("expected a list, got ", node_kind(node)));
    json arr = json::array();
    for (size_t i = 0; i < node.size(); ++i) {
      const std::string item_path = str(path, "[", i, "]");
      arr.push_back(f->type() == FieldDescriptor::TYPE_MESSAGE
                        ? message(node[i], f->message_type(), item_path, depth + 1)
                        : scalar(node[i], f, item_path));
    }
    return arr;
  }
  if (f->type() == FieldDescriptor::TYPE_MESSAGE)
    return message(node, f->message_type(), path, depth + 1);
  return scalar(node, f, path);
}

json Walker::scalar(const YAML::Node& node, const FieldDescriptor* f, const std::string& path) {
  if (!node.IsScalar()) fail(node, path, str("expected a single value, got ", node_kind(node)));
  std::string where = origin_.name + ": " + path;
  const std::string text = substitute_env(node.Scalar(), "config error: " + where);
  const FieldRules& rules = f->options().GetExtension(rudder::rules);
  switch (f->type()) {
    case FieldDescriptor::TYPE_BOOL: {
      if (text == "true" || text == "True" || text == "TRUE") return true;
      if (text == "false" || text == "False" || text == "FALSE") return false;
      fail(node, path, str("expected true or false, got '", text, "'"));
    }
    case FieldDescriptor::TYPE_STRING:
    case FieldDescriptor::TYPE_BYTES: {
      if (rules.choices_size() > 0) {
        bool ok = false;
        std::string allowed;
        for (const auto& c : rules.choices()) {
          ok = ok || c == text;
          allowed += (allowed.empty() ? "" : ", ") + c;
        }
        if (!ok) fail(node, path, str("expected one of ", allowed, "; got '", text, "'"));
      }
      return text;
    }
    case FieldDescriptor::TYPE_ENUM: {
      if (f->enum_type()->FindValueByName(text) == nullptr) {
        fail(node, path, str("'", text, "' is not a value of ", f->enum_type()->name()));
      }
      return text;
    }
    default:
      return number(text, node, f, path);
  }
}

json Walker::number(const std::string& text, const YAML::Node& node, const FieldDescriptor* f,
                    const std::string& path) {
  const auto cpp = f->cpp_type();
  if (cpp == FieldDescriptor::CPPTYPE_DOUBLE || cpp == FieldDescriptor::CPPTYPE_FLOAT) {
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v)) {
      fail(node, path, str("expected a finite number, got '", text, "'"));
    }
    check_rules(v, node, f, path);
    return v;
  }
  const bool is_unsigned =
      cpp == FieldDescriptor::CPPTYPE_UINT32 || cpp == FieldDescriptor::CPPTYPE_UINT64;
  const bool is_64 =
      cpp == FieldDescriptor::CPPTYPE_INT64 || cpp == FieldDescriptor::CPPTYPE_UINT64;
  const char* kind = is_unsigned ? "a non-negative integer" : "an integer";
  const char* first = text.data() + (!text.empty() && text[0] == '+' ? 1 : 0);
  const char* last = text.data() + text.size();
  if (is_unsigned) {
    uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(first, last, v);
    if (text.empty() || ec != std::errc() || ptr != last)
      fail(node, path, str("expected ", kind, ", got '", text, "'"));
    if (!is_64 && v > std::numeric_limits<uint32_t>::max())
      fail(node, path, str("value ", text, " does not fit in 32 bits"));
    check_rules(static_cast<double>(v), node, f, path);
    return v;
  }
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(first, last, v);
  if (text.empty() || ec != std::errc() || ptr != last)
    fail(node, path, str("expected ", kind, ", got '", text, "'"));
  if (!is_64 &&
      (v > std::numeric_limits<int32_t>::max() || v < std::numeric_limits<int32_t>::min())) {
    fail(node, path, str("value ", text, " does not fit in 32 bits"));
  }
  check_rules(static_cast<double>(v), node, f, path);
  return v;
}

void Walker::check_rules(double v, const YAML::Node& node, const FieldDescriptor* f,
                         const std::string& path) const {
  const FieldRules& r = f->options().GetExtension(rudder::rules);
  const bool below = r.has_min() && (r.min_exclusive() ? v <= r.min() : v < r.min());
  const bool above = r.has_max() && (r.max_exclusive() ? v >= r.max() : v > r.max());
  if (below || above)
    fail(node, path, str("expected a value ", range_text(r), ", got ", format_number(v)));
}

void Walker::fill_defaults(json& obj, const Descriptor* d, const std::string& path, int depth) {
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (obj.contains(f->name()) || f->is_repeated()) continue;
    if (f->type() == FieldDescriptor::TYPE_MESSAGE) {
      // Sections that are not alternatives of a oneof always exist, with their defaults.
      if (f->containing_oneof() == nullptr && depth < 8) {
        obj[f->name()] = message(YAML::Node(YAML::NodeType::Map), f->message_type(),
                                 join(path, f->name()), depth + 1);
      }
      continue;
    }
    const FieldRules& r = f->options().GetExtension(rudder::rules);
    if (r.has_default_value()) {
      obj[f->name()] = scalar(YAML::Node(r.default_value()), f, join(path, f->name()));
    }
  }
}

std::string substitute_env(const std::string& text, const std::string& where) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 3, "$${") == 0) {
      out += "${";
      i += 3;
      continue;
    }
    if (text.compare(i, 2, "${") != 0) {
      out += text[i++];
      continue;
    }
    const size_t close = text.find('}', i + 2);
    if (close == std::string::npos)
      throw ConfigError(str(where, ": unterminated '${' in '", text, "'"));
    std::string inner = text.substr(i + 2, close - i - 2);
    std::string fallback;
    bool has_fallback = false;
    if (const size_t sep = inner.find(":-"); sep != std::string::npos) {
      fallback = inner.substr(sep + 2);
      inner = inner.substr(0, sep);
      has_fallback = true;
    }
    if (inner.empty()) throw ConfigError(str(where, ": empty variable name in '", text, "'"));
    const char* value = std::getenv(inner.c_str());
    if (value == nullptr && !has_fallback) {
      throw ConfigError(str(where, ": environment variable ", inner, " is not set"));
    }
    out += value != nullptr ? std::string(value) : fallback;
    i = close + 1;
  }
  return out;
}

std::string apply_override(YAML::Node& root, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError(str("config error: --set '", assignment, "': expected key.path=value"));
  }
  const std::string path = assignment.substr(0, eq);
  const std::string value_text = assignment.substr(eq + 1);
  YAML::Node value;
  try {
    value = value_text.empty() ? YAML::Node(std::string()) : YAML::Load(value_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(str("config error: --set ", path, ": value is not valid YAML: ", e.msg));
  }
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap())
    throw ConfigError(str("config error: --set ", path, ": the config is not a mapping"));
  YAML::Node current;
  current.reset(root);
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string key =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (key.empty())
      throw ConfigError(str("config error: --set ", path, ": empty key in the path"));
    if (dot == std::string::npos) {
      current[key] = value;
      return path;
    }
    YAML::Node next;
    next.reset(current[key]);
    if (!next.IsDefined() || next.IsNull()) {
      current[key] = YAML::Node(YAML::NodeType::Map);
      next.reset(current[key]);
    }
    if (!next.IsMap()) {
      throw ConfigError(
          str("config error: --set ", path, ": '", path.substr(0, dot), "' is not a mapping"));
    }
    current.reset(next);
    start = dot + 1;
  }
}

nlohmann::ordered_json yaml_to_json(const YAML::Node& root, const Descriptor* descriptor,
                                    const YamlOrigin& origin) {
  Walker walker(origin);
  if (!root.IsDefined() || root.IsNull()) {
    return walker.message(YAML::Node(YAML::NodeType::Map), descriptor, "", 0);
  }
  return walker.message(root, descriptor, "", 0);
}

}  // namespace rudder::core::detail
