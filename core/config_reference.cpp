#include "core/config_reference.h"

#include <set>
#include <sstream>
#include <vector>

#include <google/protobuf/descriptor.pb.h>

#include "core/error.h"
#include "proto/rudder.pb.h"

namespace rudder {
std::string_view proto_descriptor_set();  // generated from rudder.desc (proto/CMakeLists.txt)
}

namespace rudder::core {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

// The schema with its source comments, looked up by full name.
class Comments {
 public:
  Comments() {
    google::protobuf::FileDescriptorSet set;
    const std::string_view bytes = proto_descriptor_set();
    RUDDER_ASSERT(set.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())),
                  "embedded descriptor set");
    for (const auto& file : set.file()) {
      RUDDER_ASSERT(pool_.BuildFile(file) != nullptr, "building ", file.name());
    }
  }

  std::string of(const std::string& full_name, bool message) const {
    google::protobuf::SourceLocation loc;
    bool found = false;
    if (message) {
      const auto* d = pool_.FindMessageTypeByName(full_name);
      found = d != nullptr && d->GetSourceLocation(&loc);
    } else {
      const auto* f = pool_.FindFieldByName(full_name);
      found = f != nullptr && f->GetSourceLocation(&loc);
    }
    if (!found) return "";
    std::string text = loc.leading_comments;
    for (char& c : text) {
      if (c == '\n') c = ' ';
    }
    while (!text.empty() && text.front() == ' ') text.erase(text.begin());
    while (!text.empty() && text.back() == ' ') text.pop_back();
    return text;
  }

 private:
  google::protobuf::DescriptorPool pool_;
};

std::string type_name(const FieldDescriptor* f) {
  std::string t;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_BOOL:
      t = "bool";
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      t = "string";
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      t = "number";
      break;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      t = f->message_type()->name();
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      t = f->enum_type()->name();
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      t = "unsigned int";
      break;
    default:
      t = "int";
      break;
  }
  return f->is_repeated() ? "list of " + t : t;
}

std::string escape_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string allowed(const FieldRules& r) {
  std::string text;
  for (const auto& c : r.choices()) text += (text.empty() ? "" : ", ") + std::string("`") + c + "`";
  if (r.has_min()) text += std::string(r.min_exclusive() ? "> " : ">= ") + str(r.min());
  if (r.has_max())
    text +=
        (r.has_min() ? ", " : "") + std::string(r.max_exclusive() ? "< " : "<= ") + str(r.max());
  return text;
}

void section(const Descriptor* d, const std::string& key_path, const Comments& comments,
             std::set<const Descriptor*>* done, std::ostringstream& out) {
  if (!done->insert(d).second) return;
  out << "### `" << (key_path.empty() ? "(top level)" : key_path) << "` (" << d->name() << ")\n\n";
  out << comments.of(d->full_name(), true) << "\n\n";
  out << "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
  std::vector<std::pair<const Descriptor*, std::string>> children;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    const FieldRules& r = f->options().GetExtension(rudder::rules);
    std::string def = r.has_default_value() ? "`" + escape_cell(r.default_value()) + "`" : "";
    if (def == "``") def = "`\"\"`";
    std::string meaning = comments.of(f->full_name(), false);
    if (f->containing_oneof() != nullptr)
      meaning += " (one of `" + f->containing_oneof()->name() + "`)";
    out << "| `" << f->name() << "` | " << type_name(f) << " | " << def << " | " << allowed(r)
        << " | " << escape_cell(meaning) << " |\n";
    if (f->type() == FieldDescriptor::TYPE_MESSAGE) {
      children.emplace_back(f->message_type(),
                            key_path.empty() ? f->name() : key_path + "." + f->name());
    }
  }
  out << "\n";
  for (const auto& [child, path] : children) section(child, path, comments, done, out);
}

}  // namespace

std::string config_reference_markdown() {
  const Comments comments;
  std::ostringstream out;
  std::set<const Descriptor*> done;
  section(ExperimentConfig::descriptor(), "", comments, &done, out);
  std::string text = out.str();
  while (text.size() >= 2 && text[text.size() - 1] == '\n' && text[text.size() - 2] == '\n')
    text.pop_back();
  return text;
}

}  // namespace rudder::core
