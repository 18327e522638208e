#include "services/reward_server.h"

#include <algorithm>
#include <chrono>
#include <iterator>

#include "core/error.h"
#include "core/log.h"
#include "core/proto_http.h"
#include "proto/rudder.pb.h"
#include "rewards/reward_model.h"
#include "services/detail/guarded.h"
#include "services/detail/openrlhf_protocol.h"
#include "services/detail/score_batcher.h"

namespace rudder::services {
namespace {

using core::HttpRequest;
using core::HttpResponse;

// What serve() set up; replaced as a whole, read without locks by the HTTP threads.
struct Serving {
  std::unique_ptr<detail::ScoreBatcher> batcher;
  int64_t token_limit = 0;
  std::string limit_source;  // which setting the limit comes from, for error messages
  int64_t model_limit = 0;   // most tokens the model reads (it cuts longer pairs); 0: none
  std::vector<std::string> edge_texts;  // the model's pad and EOS texts (/get_reward cuts them)
};

using detail::guarded;

HttpResponse outcome_error(const detail::ScoreOutcome& outcome) {
  return detail::status_error(outcome.status, outcome.error);
}

}  // namespace

class RewardServer::Impl {
 public:
  Impl(const RewardServerConfig& c, core::HttpServerOptions http_options)
      : config(c), max_json_depth(http_options.max_json_depth), http(std::move(http_options)) {
    RUDDER_CHECK(config.max_batch_size() >= 1, "reward_server.max_batch_size must be >= 1, got ",
                 config.max_batch_size());
    RUDDER_CHECK(config.max_batch_tokens() >= 1,
                 "reward_server.max_batch_tokens must be >= 1, got ", config.max_batch_tokens());
    RUDDER_CHECK(config.max_samples_per_request() >= 1,
                 "reward_server.max_samples_per_request must be >= 1, got ",
                 config.max_samples_per_request());
    RUDDER_CHECK(config.max_queue() >= config.max_samples_per_request(),
                 "reward_server.max_queue (", config.max_queue(),
                 ") must be at least max_samples_per_request (", config.max_samples_per_request(),
                 "), or a full-size request could never be queued");
    RUDDER_CHECK(config.request_timeout_ms() >= 1,
                 "reward_server.request_timeout_ms must be >= 1, got ",
                 config.request_timeout_ms());
    RUDDER_CHECK(config.max_sequence_tokens() >= 1,
                 "reward_server.max_sequence_tokens must be >= 1, got ",
                 config.max_sequence_tokens());
    http.route("POST", "/v1/score", guarded([this](const HttpRequest& r) { return score(r); }));
    http.route("GET", "/v1/models", guarded([this](const HttpRequest& r) { return models(r); }));
    http.route("POST", "/get_reward",
               guarded([this](const HttpRequest& r) { return get_reward(r); }));
  }

  std::shared_ptr<const Serving> serving_now() const {
    auto s = std::atomic_load(&serving);
    RUDDER_CHECK_T(core::Unavailable, s != nullptr, "the reward model is still loading");
    return s;
  }

  std::vector<int64_t> count_samples(const Serving& s, const std::vector<std::string>& prompts,
                                     const std::vector<std::string>& responses,
                                     const rewards::ScoreOptions& options,
                                     std::vector<int>* truncated = nullptr) const;
  detail::ScoreTask make_task(std::vector<std::string>& prompts,
                              std::vector<std::string>& responses,
                              const std::vector<int64_t>& tokens, size_t begin, size_t end,
                              const rewards::ScoreOptions& options,
                              std::chrono::steady_clock::time_point arrival) const;
  HttpResponse score(const HttpRequest& request) const;
  HttpResponse models(const HttpRequest& request) const;
  HttpResponse get_reward(const HttpRequest& request) const;

  RewardServerConfig config;
  int max_json_depth;
  std::shared_ptr<const Serving> serving;  // atomic access only; declared before `http` so
                                           // the HTTP threads stop first
  core::HttpServer http;
};

// The tokens of each sample as the model counts them, every sample checked before any is
// scored. With `truncated`, a sample longer than the model reads counts as what it reads (the
// model cuts it as in training) and is marked 1 there; without, it is over the limit like any
// other.
std::vector<int64_t> RewardServer::Impl::count_samples(const Serving& s,
                                                       const std::vector<std::string>& prompts,
                                                       const std::vector<std::string>& responses,
                                                       const rewards::ScoreOptions& options,
                                                       std::vector<int>* truncated) const {
  const size_t n = prompts.size();
  RUDDER_CHECK(n > 0, "nothing to score: send at least one prompt/response pair");
  const rewards::RewardModel& model = s.batcher->model();
  rewards::check_score_options(options, model.capabilities(), model.version());
  std::vector<int64_t> counted;
  counted.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    RUDDER_CHECK(!prompts[i].empty() || !responses[i].empty(), "sample ", i,
                 " is empty: its prompt and response are both empty");
    int64_t tokens = 0;
    try {
      tokens = model.count_tokens(prompts[i], responses[i]);
    } catch (const core::InvalidArgument& e) {
      throw core::InvalidArgument(core::str("sample ", i, ": ", e.what()));
    }
    int64_t read = tokens;
    if (truncated != nullptr) {
      const bool cut = s.model_limit > 0 && tokens > s.model_limit;
      truncated->push_back(cut ? 1 : 0);
      if (cut) read = s.model_limit;
    }
    RUDDER_CHECK_T(core::TooLarge, read <= s.token_limit, "sample ", i, " has ", tokens, " tokens",
                   read < tokens ? core::str(" (the model reads ", read, ")") : "",
                   ", over the limit of ", s.token_limit, " (", s.limit_source, ")");
    counted.push_back(std::max<int64_t>(read, 1));
  }
  return counted;
}

// Samples [begin, end) of a request as one task for the batcher, due `request_timeout_ms` after
// `arrival`; their texts are moved out of `prompts` and `responses`.
detail::ScoreTask RewardServer::Impl::make_task(
    std::vector<std::string>& prompts, std::vector<std::string>& responses,
    const std::vector<int64_t>& tokens, size_t begin, size_t end,
    const rewards::ScoreOptions& options, std::chrono::steady_clock::time_point arrival) const {
  const auto moved = [&](std::vector<std::string>& texts) {
    return std::vector<std::string>(std::make_move_iterator(texts.begin() + begin),
                                    std::make_move_iterator(texts.begin() + end));
  };
  detail::ScoreTask task;
  task.prompts = moved(prompts);
  task.responses = moved(responses);
  task.tokens.assign(tokens.begin() + begin, tokens.begin() + end);
  task.options = options;
  task.deadline = arrival + std::chrono::milliseconds(config.request_timeout_ms());
  return task;
}

HttpResponse RewardServer::Impl::score(const HttpRequest& request) const {
  const auto arrival = std::chrono::steady_clock::now();
  ScoreRequest body;
  core::parse_message(request, &body);
  const auto s = serving_now();
  std::vector<std::string> prompts, responses;
  for (const auto& item : body.items()) {
    prompts.push_back(item.prompt());
    responses.push_back(item.response());
  }
  rewards::ScoreOptions options;
  options.token_rewards = body.return_token_rewards();
  options.dimension_scores = body.return_dimension_scores();
  const bool details = options.token_rewards || options.dimension_scores;
  const size_t n = prompts.size();
  RUDDER_CHECK_T(core::TooLarge, n <= config.max_samples_per_request(), n,
                 " samples in one request, over reward_server.max_samples_per_request=",
                 config.max_samples_per_request(), "; split the request");
  const std::vector<int64_t> tokens = count_samples(*s, prompts, responses, options);
  const detail::ScoreOutcome outcome =
      s->batcher->score(make_task(prompts, responses, tokens, 0, n, options, arrival));
  if (outcome.status != 200) return outcome_error(outcome);
  ScoreResponse reply;
  reply.set_model_version(s->batcher->model().version());
  for (const auto& d : outcome.details) {
    reply.add_rewards(static_cast<float>(d.reward));
    if (!details) continue;
    auto* detail = reply.add_details();
    for (double t : d.token_rewards) detail->add_token_rewards(static_cast<float>(t));
    for (const auto& [name, value] : d.dimension_scores)
      (*detail->mutable_dimension_scores())[name] = static_cast<float>(value);
    if (options.dimension_scores) detail->set_category(d.category);
  }
  return core::message_response(request, reply);
}

HttpResponse RewardServer::Impl::models(const HttpRequest& request) const {
  const auto s = serving_now();
  const rewards::RewardModel& model = s->batcher->model();
  const rewards::ScoreCapabilities caps = model.capabilities();
  ListModelsResponse reply;
  RewardModelInfo* info = reply.add_models();
  info->set_id(model.version());
  info->set_token_rewards(caps.token_rewards);
  for (const auto& d : caps.dimensions) info->add_dimensions(d);
  info->set_max_sequence_tokens(static_cast<uint32_t>(s->token_limit));
  info->set_max_samples_per_request(config.max_samples_per_request());
  return core::message_response(request, reply);
}

HttpResponse RewardServer::Impl::get_reward(const HttpRequest& request) const {
  auto arrival = std::chrono::steady_clock::now();
  bool json = false;
  try {
    json = core::request_wire(request) == core::Wire::kJson;
  } catch (const core::UnsupportedMediaType&) {  // said below, for this route
  }
  RUDDER_CHECK_T(core::UnsupportedMediaType, json, "unsupported Content-Type '",
                 request.header("content-type"), "': /get_reward takes ", core::kJsonType,
                 " in UTF-8");
  const auto s = serving_now();
  detail::GetRewardRequest body =
      detail::parse_get_reward(request.body, max_json_depth, s->edge_texts);
  HttpResponse r;
  if (body.responses.empty()) {  // a client's share of a batch split over several servers
    r.body = detail::format_get_reward({}, {}, body.prompt_found, {});
    return r;
  }
  // Over-long queries are scored as the model reads them, as OpenRLHF's own server truncates.
  std::vector<int> truncated;
  const std::vector<int64_t> tokens =
      count_samples(*s, body.prompts, body.responses, rewards::ScoreOptions{}, &truncated);
  // OpenRLHF sends a whole rollout batch at once and ends its run on a 4xx: a request of more
  // than max_samples_per_request samples is scored in parts of that many, one after the other,
  // each queued (and due) as the one before is scored. Only the first part may be refused for a
  // full queue; the later ones wait for room, ahead of new requests, so no scored part is lost.
  const size_t n = tokens.size();
  const size_t part = config.max_samples_per_request();
  std::vector<rewards::ScoreDetail> details;
  details.reserve(n);
  for (size_t begin = 0; begin < n; begin += part) {
    const size_t end = std::min(n, begin + part);
    detail::ScoreOutcome outcome =
        s->batcher->score(make_task(body.prompts, body.responses, tokens, begin, end,
                                    rewards::ScoreOptions{}, arrival),
                          begin == 0 ? detail::WhenFull::kRefuse : detail::WhenFull::kWait);
    if (outcome.status != 200) return outcome_error(outcome);
    for (auto& d : outcome.details) details.push_back(std::move(d));
    arrival = std::chrono::steady_clock::now();
  }
  r.body = detail::format_get_reward(details, tokens, body.prompt_found, truncated);
  return r;
}

RewardServer::RewardServer(const RewardServerConfig& config, core::HttpServerOptions http)
    : impl_(std::make_unique<Impl>(config, std::move(http))) {}

RewardServer::~RewardServer() = default;

void RewardServer::serve(std::shared_ptr<rewards::RewardModel> model) {
  RUDDER_CHECK(model != nullptr, "serve() needs a model");
  RUDDER_ASSERT(std::atomic_load(&impl_->serving) == nullptr, "serve() called twice");
  const RewardServerConfig& c = impl_->config;
  auto s = std::make_shared<Serving>();
  s->token_limit = c.max_sequence_tokens();
  s->limit_source = core::str("reward_server.max_sequence_tokens=", c.max_sequence_tokens());
  const int64_t own = model->max_tokens();
  s->model_limit = std::max<int64_t>(own, 0);
  if (own > 0 && own < s->token_limit) {
    s->token_limit = own;
    s->limit_source = core::str("the model reads at most ", own, " tokens (data.max_length)");
  }
  detail::BatcherOptions o;
  o.max_batch_size = c.max_batch_size();
  o.max_batch_tokens = c.max_batch_tokens();
  o.max_queue_delay = std::chrono::milliseconds(c.max_queue_delay_ms());
  o.max_queue = c.max_queue();
  s->edge_texts = model->pad_and_eos_texts();
  s->batcher = std::make_unique<detail::ScoreBatcher>(std::move(model), o);
  std::atomic_store(&impl_->serving, std::shared_ptr<const Serving>(std::move(s)));
  impl_->http.set_ready(true);
}

void RewardServer::start() { impl_->http.start(); }
uint16_t RewardServer::port() const { return impl_->http.port(); }
void RewardServer::handle_signals() { impl_->http.handle_signals(); }
void RewardServer::shutdown() { impl_->http.shutdown(); }
void RewardServer::wait() { impl_->http.wait(); }

HttpResponse RewardServer::handle(const HttpRequest& request) const {
  return impl_->http.handle(request);
}

}  // namespace rudder::services
