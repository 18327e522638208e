#include "rollout/local_engine.h"

#include <algorithm>
#include <chrono>

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include "core/error.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "models/decoder.h"

namespace rudder::rollout {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The generator of sample `index` of a request seeded with `seed`.
std::mt19937_64 sample_generator(uint64_t seed, uint32_t index) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), index};
  return std::mt19937_64(seq);
}

}  // namespace

struct LocalEngine::Job {
  GenerateInput input;
  Done done;
  Cancelled cancelled;
  bool dropped = false;  // cancelled: its rows retire without a result
  GenerateOutput out;
  uint32_t admitted = 0;   // samples given a slot so far
  uint32_t remaining = 0;  // samples not finished
  Clock::time_point submitted = Clock::now();
  bool started = false, first_token = false;
};

struct LocalEngine::Row {
  std::shared_ptr<Job> job;
  uint32_t index = 0;  // the sample's index in its request
  std::mt19937_64 rng;
  Sample sample;
  bool text_done = false;  // a stop string already fixed the text
};

LocalEngine::LocalEngine(const models::CausalLM& model, LocalEngineOptions options,
                         std::string version)
    : options_(std::move(options)), version_(std::move(version)), seeder_(options_.seed) {
  RUDDER_CHECK(options_.max_batch > 0, "rollout engine: max_batch must be positive, got ",
               options_.max_batch);
  RUDDER_CHECK(options_.max_prefill_tokens > 0,
               "rollout engine: max_prefill_tokens must be positive, got ",
               options_.max_prefill_tokens);
  const int64_t positions = model.spec().max_positions;
  if (options_.max_length <= 0) options_.max_length = positions;
  RUDDER_CHECK(options_.max_length <= positions, "rollout engine: max_length ", options_.max_length,
               " exceeds the model's ", positions, " positions");
  decoder_ = std::make_unique<models::Decoder>(std::make_shared<models::DecoderWeights>(model),
                                               options_.max_batch, options_.max_length);
}

LocalEngine::~LocalEngine() = default;

void LocalEngine::load_weights(std::shared_ptr<const models::DecoderWeights> weights,
                               std::string version) {
  RUDDER_CHECK(!busy(), "rollout engine: weights change only while no request runs");
  decoder_->set_weights(std::move(weights));
  version_ = std::move(version);
}

void LocalEngine::submit(GenerateInput request, Done done, Cancelled cancelled) {
  const SamplingParams& p = request.sampling;
  validate_sampling(p, "generate request");
  RUDDER_CHECK(request.n >= 1, "generate request: n must be at least 1");
  if (request.prompt.empty()) {
    RUDDER_CHECK(options_.tokenizer != nullptr,
                 "generate request: a text prompt needs an engine with a tokenizer");
    request.prompt = options_.tokenizer->encode(request.prompt_text);
  }
  RUDDER_CHECK(!request.prompt.empty(), "generate request: the prompt is empty");
  RUDDER_CHECK(p.stop().empty() || options_.tokenizer != nullptr,
               "generate request: stop strings need an engine with a tokenizer");
  const int64_t vocab = decoder_->weights()->spec().vocab_size;
  for (const int64_t id : request.prompt) {
    RUDDER_CHECK(id >= 0 && id < vocab, "generate request: prompt token ", id,
                 " outside the vocabulary of ", vocab);
  }
  const auto length = static_cast<int64_t>(request.prompt.size());
  RUDDER_CHECK(length + p.max_new_tokens() <= options_.max_length, "generate request: prompt (",
               length, " tokens) + max_new_tokens (", p.max_new_tokens(),
               ") exceeds the engine's max_length ", options_.max_length);
  if (request.sampling.seed() == 0) request.sampling.set_seed(seeder_() | 1);
  auto job = std::make_shared<Job>();
  job->remaining = request.n;
  job->out.samples.resize(request.n);
  job->input = std::move(request);
  job->done = std::move(done);
  job->cancelled = std::move(cancelled);
  waiting_.push_back(std::move(job));
}

// Marks the requests whose callers gave up and takes them out of the queue; their running
// rows retire at this step.
void LocalEngine::drop_cancelled() {
  const auto check = [](Job& job) {
    if (!job.dropped && job.cancelled && job.cancelled()) job.dropped = true;
    return job.dropped;
  };
  for (const auto& row : rows_) check(*row->job);
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(),
                                [&](const std::shared_ptr<Job>& job) { return check(*job); }),
                 waiting_.end());
}

void LocalEngine::admit() {
  // Plan: waiting requests in order, as many samples as free slots allow, and prompts up to
  // max_prefill_tokens in all (at least one); then one prefill pass for all of them.
  struct Admission {
    std::shared_ptr<Job> job;
    int64_t slot;
    uint32_t count;
  };
  std::vector<Admission> plan;
  int64_t next = running(), tokens = 0;
  for (const auto& job : waiting_) {
    const auto length = static_cast<int64_t>(job->input.prompt.size());
    if (next >= options_.max_batch ||
        (!plan.empty() && tokens + length > options_.max_prefill_tokens)) {
      break;
    }
    const auto count = static_cast<uint32_t>(
        std::min<int64_t>(job->input.n - job->admitted, options_.max_batch - next));
    plan.push_back({job, next, count});
    next += count;
    tokens += length;
    if (job->admitted + count < job->input.n) break;  // the rest of its samples wait
  }
  if (plan.empty()) return;
  std::vector<int64_t> slots;
  std::vector<at::Tensor> prompts;
  for (const auto& a : plan) {
    slots.push_back(a.slot);
    prompts.push_back(torch::tensor(a.job->input.prompt, torch::kLong));
  }
  const at::Tensor first = decoder_->prefill(slots, prompts);  // [plan, vocab]
  std::vector<at::Tensor> added;
  for (size_t j = 0; j < plan.size(); ++j) {
    Job& job = *plan[j].job;
    const int64_t slot = plan[j].slot;
    for (const auto& g : options_.guidance) g->on_prefill(slot, job.input.prompt);
    if (!job.started) job.out.queue_seconds = seconds_since(job.submitted);
    job.started = true;
    for (uint32_t c = 0; c < plan[j].count; ++c) {
      if (c > 0) {
        decoder_->copy(slot, slot + c);
        for (const auto& g : options_.guidance) g->on_copy(slot, slot + c);
      }
      auto row = std::make_unique<Row>();
      row->job = plan[j].job;
      row->index = job.admitted + c;
      row->rng = sample_generator(job.input.sampling.seed(), row->index);
      rows_.push_back(std::move(row));
    }
    job.admitted += plan[j].count;
    added.push_back(first.narrow(0, j, 1).expand({plan[j].count, first.size(1)}));
  }
  if (logits_.defined()) added.insert(added.begin(), logits_);
  logits_ = torch::cat(added);
  while (!waiting_.empty() && waiting_.front()->admitted == waiting_.front()->input.n) {
    waiting_.pop_front();
  }
}

bool LocalEngine::finished_after(Row& row, int64_t token) {
  const SamplingParams& p = row.job->input.sampling;
  const auto count = static_cast<uint32_t>(row.sample.tokens.size());
  const bool may_stop = count >= p.min_new_tokens();
  if (may_stop && token == options_.eos_id && !p.ignore_eos()) {
    row.sample.finish_reason = FinishReason::kEos;
    return true;
  }
  if (may_stop && std::find(p.stop_token_ids().begin(), p.stop_token_ids().end(), token) !=
                      p.stop_token_ids().end()) {
    row.sample.finish_reason = FinishReason::kStop;
    return true;
  }
  if (may_stop && !p.stop().empty()) {
    const std::string text = options_.tokenizer->decode(row.sample.tokens);
    size_t cut = std::string::npos;
    for (const auto& stop : p.stop()) cut = std::min(cut, text.find(stop));
    if (cut != std::string::npos) {
      row.sample.text = text.substr(0, cut);
      row.text_done = true;
      row.sample.finish_reason = FinishReason::kStop;
      return true;
    }
  }
  row.sample.finish_reason = FinishReason::kLength;
  return count >= p.max_new_tokens();
}

void LocalEngine::move_row(size_t from, size_t to) {
  decoder_->copy(static_cast<int64_t>(from), static_cast<int64_t>(to));
  for (const auto& g : options_.guidance) g->on_copy(from, to);
  rows_[to] = std::move(rows_[from]);
}

void LocalEngine::retire(const std::vector<size_t>& finished) {
  for (auto it = finished.rbegin(); it != finished.rend(); ++it) {
    const size_t r = *it;
    Row& row = *rows_[r];
    Job& job = *row.job;
    if (options_.tokenizer != nullptr && !row.text_done && !job.dropped) {
      std::vector<int64_t> ids = row.sample.tokens;
      if (row.sample.finish_reason == FinishReason::kEos) ids.pop_back();
      row.sample.text = options_.tokenizer->decode(ids);
    }
    job.out.samples[row.index] = std::move(row.sample);
    const std::shared_ptr<Job> owner = row.job;
    const size_t last = rows_.size() - 1;
    if (r != last) move_row(last, r);
    decoder_->clear(static_cast<int64_t>(last));
    for (const auto& g : options_.guidance) g->on_clear(last);
    rows_.pop_back();
    if (--owner->remaining == 0 && !owner->dropped) {
      owner->out.policy_version = version_;
      owner->out.total_seconds = seconds_since(owner->submitted);
      if (owner->done) owner->done(std::move(owner->out));
    }
  }
}

void LocalEngine::step() {
  try {
    step_once();
  } catch (...) {
    abandon_all();  // the rows and the logits may no longer match
    throw;
  }
}

void LocalEngine::step_once() {
  c10::InferenceMode inference;
  drop_cancelled();
  admit();
  if (rows_.empty()) return;
  std::vector<RowView> views;
  std::vector<std::mt19937_64*> generators;
  for (auto& row : rows_) {
    views.push_back({&row->job->input.sampling, &row->job->input.prompt, &row->sample.tokens});
    generators.push_back(&row->rng);
  }
  at::Tensor scores = logits_.to(torch::kFloat, /*non_blocking=*/false, /*copy=*/true);
  apply_processors(scores, views, options_.eos_id, options_.guidance);
  const Choice choice = choose_tokens(logits_, scores, views, generators);
  std::vector<size_t> finished;
  for (size_t r = 0; r < rows_.size(); ++r) {
    Row& row = *rows_[r];
    if (row.job->dropped) {
      finished.push_back(r);
      continue;
    }
    row.sample.tokens.push_back(choice.tokens[r]);
    row.sample.logprobs.push_back(choice.logprobs[r]);
    row.sample.policy_logprobs.push_back(choice.policy_logprobs[r]);
    if (!row.job->first_token) row.job->out.first_token_seconds = seconds_since(row.job->submitted);
    row.job->first_token = true;
    if (finished_after(row, choice.tokens[r])) finished.push_back(r);
  }
  retire(finished);
  if (rows_.empty()) {
    logits_ = at::Tensor();
    return;
  }
  std::vector<int64_t> next;
  for (const auto& row : rows_) next.push_back(row->sample.tokens.back());
  const at::Tensor tokens = torch::tensor(next, torch::kLong);
  logits_ = decoder_->step(tokens);
  for (const auto& g : options_.guidance) g->on_step(tokens);
}

std::vector<GenerateOutput> LocalEngine::generate(const std::vector<GenerateInput>& requests) {
  RUDDER_CHECK(!busy(), "rollout engine: generate() while other requests run");
  std::vector<GenerateOutput> out(requests.size());
  try {
    for (size_t i = 0; i < requests.size(); ++i) {
      try {
        submit(requests[i], [&out, i](GenerateOutput o) { out[i] = std::move(o); });
      } catch (const core::InvalidArgument& e) {
        throw core::InvalidArgument(core::str("request ", i, ": ", e.what()));
      }
    }
  } catch (...) {
    waiting_.clear();  // nothing ran yet: leave the engine as it was
    throw;
  }
  while (busy()) step();  // on a throw step() has dropped every request: none outlives `out`
  return out;
}

void LocalEngine::abandon_all() {
  for (int64_t slot = 0; slot < options_.max_batch; ++slot) {
    decoder_->clear(slot);
    for (const auto& g : options_.guidance) g->on_clear(slot);
  }
  rows_.clear();
  waiting_.clear();
  logits_ = at::Tensor();
}

std::vector<std::vector<float>> LocalEngine::score(const std::vector<ScoreInput>& inputs) {
  RUDDER_CHECK(running() < options_.max_batch, "rollout engine: no free slot to score in");
  c10::InferenceMode inference;
  const auto slot = static_cast<int64_t>(rows_.size());
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ScoreInput& in = inputs[i];
    RUDDER_CHECK(!in.prefix.empty() && !in.continuation.empty(), "score input ", i,
                 ": the prefix and the continuation must both be non-empty");
    const int64_t vocab = decoder_->weights()->spec().vocab_size;
    std::vector<int64_t> ids = in.prefix;
    ids.insert(ids.end(), in.continuation.begin(), in.continuation.end());
    RUDDER_CHECK(static_cast<int64_t>(ids.size()) <= options_.max_length, "score input ", i, ": ",
                 ids.size(), " tokens exceed the engine's max_length ", options_.max_length);
    for (const int64_t id : ids) {
      RUDDER_CHECK(id >= 0 && id < vocab, "score input ", i, ": token ", id,
                   " outside the vocabulary of ", vocab);
    }
    const auto p = static_cast<int64_t>(in.prefix.size());
    const auto c = static_cast<int64_t>(in.continuation.size());
    // Chunked from the hidden states: a long continuation never builds [c, vocab] logits.
    at::Tensor logp;
    try {
      logp = decoder_->prefill_logprobs(slot, torch::tensor(ids, torch::kLong), p - 1,
                                        torch::tensor(in.continuation, torch::kLong));
    } catch (...) {
      decoder_->clear(slot);
      throw;
    }
    decoder_->clear(slot);
    logp = logp.to(torch::kCPU, torch::kFloat).contiguous();
    out.emplace_back(logp.data_ptr<float>(), logp.data_ptr<float>() + c);
  }
  return out;
}

}  // namespace rudder::rollout
