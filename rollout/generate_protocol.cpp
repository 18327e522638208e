#include "rollout/generate_protocol.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace rudder::rollout {
namespace {

bool same_kind(const GenerateInput& a, const GenerateInput& b) {
  return a.n == b.n && a.prompt.empty() == b.prompt.empty() &&
         a.sampling.SerializeAsString() == b.sampling.SerializeAsString();
}

FinishReason parse_finish_reason(const std::string& name, bool* ok) {
  *ok = true;
  if (name == "eos") return FinishReason::kEos;
  if (name == "stop") return FinishReason::kStop;
  *ok = name == "length";
  return FinishReason::kLength;
}

// Checks one completion against the request and converts it; "" or the problem.
std::string read_completion(const Completion& c, Sample* sample) {
  bool ok = false;
  sample->finish_reason = parse_finish_reason(c.finish_reason(), &ok);
  if (!ok) return core::str("unknown finish_reason '", c.finish_reason(), "'");
  if (c.logprobs_size() != c.token_ids_size() || c.policy_logprobs_size() != c.token_ids_size())
    return core::str("completion ", c.prompt_index(), "/", c.sample_index(), " has ",
                     c.token_ids_size(), " tokens but ", c.logprobs_size(), " and ",
                     c.policy_logprobs_size(), " log-probs");
  sample->tokens.assign(c.token_ids().begin(), c.token_ids().end());
  sample->logprobs.assign(c.logprobs().begin(), c.logprobs().end());
  sample->policy_logprobs.assign(c.policy_logprobs().begin(), c.policy_logprobs().end());
  sample->text = c.text();
  return "";
}

}  // namespace

std::string valid_utf8(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    bool ok = len > 0 && i + len <= n && !(len == 2 && c < 0xC2);
    for (size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xC0) == 0x80;
    if (ok && len == 3) {
      const unsigned cp = (c & 0x0Fu) << 12 | (p[i + 1] & 0x3Fu) << 6 | (p[i + 2] & 0x3Fu);
      ok = cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF);
    }
    if (ok && len == 4) {
      const unsigned cp = (c & 0x07u) << 18 | (p[i + 1] & 0x3Fu) << 12;
      ok = cp >= 0x10000 && cp <= 0x10FFFF;
    }
    if (ok) {
      out.append(text, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    }
  }
  return out;
}

std::vector<std::pair<size_t, size_t>> chunk_requests(const std::vector<GenerateInput>& requests,
                                                      size_t max_samples) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t begin = 0, samples = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    const bool fits = samples + requests[i].n <= max_samples;
    if (i > begin && (!fits || !same_kind(requests[begin], requests[i]))) {
      out.emplace_back(begin, i);
      begin = i;
      samples = 0;
    }
    samples += requests[i].n;
  }
  if (begin < requests.size()) out.emplace_back(begin, requests.size());
  return out;
}

GenerateRequest to_request(const std::vector<GenerateInput>& chunk) {
  RUDDER_ASSERT(!chunk.empty(), "an empty chunk");
  GenerateRequest request;
  request.set_num_samples(chunk.front().n);
  *request.mutable_sampling() = chunk.front().sampling;
  for (const auto& in : chunk) {
    if (in.prompt.empty()) {
      request.add_prompts(in.prompt_text);
      continue;
    }
    auto* ids = request.add_prompt_token_ids();
    for (const int64_t id : in.prompt) ids->add_ids(static_cast<int32_t>(id));
  }
  return request;
}

std::vector<GenerateInput> from_request(const GenerateRequest& request) {
  RUDDER_CHECK(request.prompts_size() > 0 || request.prompt_token_ids_size() > 0,
               "nothing to generate: send at least one prompt (prompts or prompt_token_ids)");
  RUDDER_CHECK(request.prompts_size() == 0 || request.prompt_token_ids_size() == 0,
               "send prompts or prompt_token_ids, not both (got ", request.prompts_size(), " and ",
               request.prompt_token_ids_size(), ")");
  SamplingParams sampling = request.sampling();
  if (sampling.max_new_tokens() == 0) sampling.set_max_new_tokens(64);
  if (sampling.top_p() == 0) sampling.set_top_p(1);
  if (sampling.repetition_penalty() == 0) sampling.set_repetition_penalty(1);
  std::vector<GenerateInput> out;
  const uint32_t n = request.num_samples() == 0 ? 1 : request.num_samples();
  const int count = std::max(request.prompts_size(), request.prompt_token_ids_size());
  for (int i = 0; i < count; ++i) {
    GenerateInput in;
    if (request.prompts_size() > 0) {
      in.prompt_text = request.prompts(i);
      RUDDER_CHECK(!in.prompt_text.empty(), "prompt ", i, " is empty");
    } else {
      const auto& ids = request.prompt_token_ids(i).ids();
      RUDDER_CHECK(!ids.empty(), "prompt_token_ids ", i, " is empty");
      in.prompt.assign(ids.begin(), ids.end());
    }
    in.sampling = sampling;
    in.n = n;
    out.push_back(std::move(in));
  }
  return out;
}

GenerateResponse to_response(const std::vector<GenerateOutput>& outputs,
                             const std::string& policy_version) {
  GenerateResponse reply;
  reply.set_policy_version(policy_version);
  for (size_t p = 0; p < outputs.size(); ++p) {
    for (size_t s = 0; s < outputs[p].samples.size(); ++s) {
      const Sample& sample = outputs[p].samples[s];
      Completion* c = reply.add_completions();
      c->set_prompt_index(static_cast<uint32_t>(p));
      c->set_sample_index(static_cast<uint32_t>(s));
      c->set_text(valid_utf8(sample.text));
      for (const int64_t t : sample.tokens) c->add_token_ids(static_cast<int32_t>(t));
      for (const float l : sample.logprobs) c->add_logprobs(l);
      for (const float l : sample.policy_logprobs) c->add_policy_logprobs(l);
      c->set_finish_reason(finish_reason_name(sample.finish_reason));
    }
  }
  return reply;
}

std::vector<GenerateOutput> from_response(const GenerateResponse& reply,
                                          const std::vector<GenerateInput>& chunk,
                                          std::string* problem) {
  std::vector<GenerateOutput> out(chunk.size());
  size_t expected = 0;
  for (size_t p = 0; p < chunk.size(); ++p) {
    out[p].samples.resize(chunk[p].n);
    out[p].policy_version = reply.policy_version();
    expected += chunk[p].n;
  }
  std::vector<std::vector<bool>> seen(chunk.size());
  for (size_t p = 0; p < chunk.size(); ++p) seen[p].assign(chunk[p].n, false);
  for (const Completion& c : reply.completions()) {
    const size_t p = c.prompt_index(), s = c.sample_index();
    if (p >= chunk.size() || s >= chunk[p].n || seen[p][s]) {
      *problem = core::str("unexpected or repeated completion ", p, "/", s);
      return {};
    }
    seen[p][s] = true;
    *problem = read_completion(c, &out[p].samples[s]);
    if (!problem->empty()) return {};
  }
  if (static_cast<size_t>(reply.completions_size()) != expected) {
    *problem = core::str("reply has ", reply.completions_size(), " completions for ", expected,
                         " samples");
    return {};
  }
  return out;
}

std::string weights_file(const std::string& path) {
  namespace fs = std::filesystem;
  return fs::is_directory(path) ? (fs::path(path) / "model.safetensors").string() : path;
}

}  // namespace rudder::rollout
