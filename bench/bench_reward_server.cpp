// Reward server throughput and latency: sequences scored per second through /v1/score with
// dynamic batching under concurrent clients, beside the in-process batched forward on the same
// sequences (the ceiling) and beside one request at a time; then p50/p99 latency with requests
// arriving (Poisson) at 70% of the measured capacity. Rudder against itself: no Python column.
// Targets: saturation >= 80% of the ceiling; p99 <= 2 x (max queue delay + one batch time).
//   bench_reward_server [--hidden 256] [--layers 4] [--seq 64] [--batch 32] [--delay-ms 5]
//                       [--clients 64] [--seconds 5]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

#include <torch/torch.h>

#include "bench/bench_util.h"
#include "core/http_client.h"
#include "core/runtime.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "rewards/scalar_reward_model.h"
#include "services/reward_server.h"

using namespace rudder;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Prompt/response pairs of exactly `seq` byte tokens each (EOS included).
void make_pairs(int64_t seq, size_t n, std::vector<std::string>* prompts,
                std::vector<std::string>* responses) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> letter('a', 'z');
  const auto text = [&](int64_t len) {
    std::string s;
    for (int64_t i = 0; i < len; ++i) s.push_back(static_cast<char>(letter(rng)));
    return s;
  };
  for (size_t i = 0; i < n; ++i) {
    prompts->push_back(text(seq / 4));
    responses->push_back(text(seq - seq / 4 - 1));
  }
}

// In-process batched forward: sequences per second and seconds per full batch.
std::pair<double, double> ceiling(rewards::RewardModel& model, const std::vector<std::string>& p,
                                  const std::vector<std::string>& r, size_t batch, double seconds) {
  const std::vector<std::string> bp(p.begin(), p.begin() + batch), br(r.begin(), r.begin() + batch);
  model.score(bp, br);  // warm up
  int n = 0;
  const auto start = Clock::now();
  while (seconds_since(start) < seconds) {
    model.score(bp, br);
    ++n;
  }
  const double elapsed = seconds_since(start);
  return {n * static_cast<double>(batch) / elapsed, elapsed / n};
}

// One request of one pair; returns false on any failure.
bool score_one(core::HttpClient& client, const std::string& prompt, const std::string& response) {
  ScoreRequest request;
  auto* item = request.add_items();
  item->set_prompt(prompt);
  item->set_response(response);
  ScoreResponse reply;
  try {
    client.call("/v1/score", request, &reply, core::Wire::kProtobuf);
  } catch (const std::exception&) {
    return false;
  }
  return reply.rewards_size() == 1;
}

core::HttpClientOptions client_options(uint16_t port) {
  core::HttpClientOptions o;
  o.port = port;
  o.max_retries = 0;
  return o;
}

// `clients` closed-loop clients for `seconds`: sequences per second; counts failures.
double closed_loop(uint16_t port, int clients, double seconds, const std::vector<std::string>& p,
                   const std::vector<std::string>& r, std::atomic<int64_t>* failures) {
  std::atomic<int64_t> done{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      core::HttpClient client(client_options(port));
      for (size_t i = static_cast<size_t>(c); seconds_since(start) < seconds; i += clients) {
        if (score_one(client, p[i % p.size()], r[i % r.size()]))
          ++done;
        else
          ++*failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  return static_cast<double>(done.load()) / seconds_since(start);
}

// Poisson arrivals at `rate` per second for `seconds`, sent by `senders` threads; latencies
// are measured from each request's scheduled arrival, so a late sender counts against us.
std::vector<double> open_loop(uint16_t port, double rate, double seconds, int senders,
                              const std::vector<std::string>& p, const std::vector<std::string>& r,
                              std::atomic<int64_t>* failures) {
  std::vector<double> arrivals;
  std::mt19937 rng(11);
  std::exponential_distribution<double> gap(rate);
  for (double t = 0; t < seconds; t += gap(rng)) arrivals.push_back(t);
  std::vector<double> latencies(arrivals.size());
  std::atomic<size_t> next{0};
  const auto start = Clock::now() + std::chrono::milliseconds(100);
  std::vector<std::thread> threads;
  for (int s = 0; s < senders; ++s) {
    threads.emplace_back([&] {
      core::HttpClient client(client_options(port));
      for (size_t i; (i = next++) < arrivals.size();) {
        const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(arrivals[i]));
        std::this_thread::sleep_until(due);
        if (!score_one(client, p[i % p.size()], r[i % r.size()])) ++*failures;
        latencies[i] = std::chrono::duration<double>(Clock::now() - due).count();
      }
    });
  }
  for (auto& t : threads) t.join();
  std::sort(latencies.begin(), latencies.end());
  return latencies;
}

double percentile(const std::vector<double>& sorted, double q) {
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(q * sorted.size()))];
}

// What the phases measured.
struct Figures {
  double ceiling = 0, batch_s = 0, one_at_a_time = 0, saturated = 0, p50 = 0, p99 = 0;
  size_t requests = 0;
};

std::shared_ptr<rewards::ScalarRewardModel> make_model(int64_t hidden, int64_t layers,
                                                       int64_t seq) {
  torch::manual_seed(0);
  auto lm =
      std::make_shared<models::CausalLM>(bench::llama_spec(hidden, layers, 4, 2, hidden * 11 / 4));
  TokenizerConfig tc;
  tc.set_add_eos(true);
  DataConfig dc;
  dc.set_max_length(static_cast<uint32_t>(seq));
  dc.set_max_prompt_length(static_cast<uint32_t>(seq / 2));
  return std::make_shared<rewards::ScalarRewardModel>(
      std::make_shared<rewards::ScalarRewardNet>(lm), data::make_byte_tokenizer(), tc, dc,
      rewards::RewardNormalization{});
}

RewardServerConfig server_config(size_t batch, int64_t seq, int delay_ms) {
  RewardServerConfig config;
  config.set_max_batch_size(static_cast<uint32_t>(batch));
  config.set_max_batch_tokens(static_cast<uint32_t>(batch * seq));
  config.set_max_queue_delay_ms(static_cast<uint32_t>(delay_ms));
  config.set_max_queue(4096);
  config.set_request_timeout_ms(60000);
  config.set_max_samples_per_request(256);
  config.set_max_sequence_tokens(static_cast<uint32_t>(seq));
  return config;
}

// One client, one pair per request, for `seconds`: sequences per second.
double one_at_a_time(uint16_t port, double seconds, const std::vector<std::string>& p,
                     const std::vector<std::string>& r) {
  core::HttpClient client(client_options(port));
  int64_t done = 0;
  const auto start = Clock::now();
  for (size_t i = 0; seconds_since(start) < seconds; ++i)
    done += score_one(client, p[i % p.size()], r[i % r.size()]);
  return done / seconds_since(start);
}

void print_report(const Figures& f, size_t batch, int delay_ms, int clients) {
  const double bound = 2 * (delay_ms / 1000.0 + f.batch_s);
  std::printf("\n%-44s %10s %10s\n", "", "seq/s", "of ceiling");
  std::printf("%-44s %10.1f %9.0f%%\n", "in-process batched forward (ceiling)", f.ceiling, 100.0);
  std::printf("%-44s %10.1f %9.0f%%\n", "server, one request at a time", f.one_at_a_time,
              100 * f.one_at_a_time / f.ceiling);
  std::printf("%-44s %10.1f %9.0f%%   (target >= 80%%)\n",
              ("server, " + std::to_string(clients) + " concurrent clients").c_str(), f.saturated,
              100 * f.saturated / f.ceiling);
  std::printf("\none batch of %zu: %.1f ms; dynamic batching / one at a time: %.2fx\n", batch,
              1000 * f.batch_s, f.saturated / f.one_at_a_time);
  std::printf(
      "latency at 70%% of capacity (%.1f seq/s, %zu requests): p50 %.1f ms, p99 %.1f ms;"
      " bound 2 x (delay + batch) = %.1f ms; p99 / bound = %.2f (target <= 1)\n",
      0.7 * f.saturated, f.requests, 1000 * f.p50, 1000 * f.p99, 1000 * bound, f.p99 / bound);
}

}  // namespace

int run(int argc, char** argv) {
  const auto flags = bench::parse_flags(argc, argv,
                                        {{"hidden", "256"},
                                         {"layers", "4"},
                                         {"seq", "64"},
                                         {"batch", "32"},
                                         {"delay-ms", "5"},
                                         {"clients", "64"},
                                         {"seconds", "5"},
                                         {"threads", "0"}});
  const int64_t seq = std::stoll(flags.at("seq"));
  const size_t batch = std::stoul(flags.at("batch"));
  const int delay_ms = std::stoi(flags.at("delay-ms")), clients = std::stoi(flags.at("clients"));
  const double seconds = std::stod(flags.at("seconds"));
  core::configure_runtime(std::stoi(flags.at("threads")));
  const auto model =
      make_model(std::stoll(flags.at("hidden")), std::stoll(flags.at("layers")), seq);
  int64_t params = 0;
  for (const auto& t : model->net().parameters()) params += t.numel();
  std::vector<std::string> prompts, responses;
  make_pairs(seq, 4096, &prompts, &responses);
  std::printf(
      "bench_reward_server: scalar RM %.1fM parameters, %lld tokens per sequence, "
      "max batch %zu, max queue delay %d ms, %d intra-op threads, %.0f s per phase\n",
      params / 1e6, static_cast<long long>(seq), batch, delay_ms, at::get_num_threads(), seconds);

  // On a thread of its own, as the server's worker runs the model: the two measure the same
  // thread setup (the process's main thread may run libtorch with another intra-op team).
  // Measured before and after the server phases; the faster run is the ceiling (the machine
  // is shared, and a slow ceiling would flatter the server).
  const auto measure_ceiling = [&] {
    std::pair<double, double> out;
    std::thread([&] { out = ceiling(*model, prompts, responses, batch, seconds); }).join();
    return out;
  };
  const auto ceiling_before = measure_ceiling();

  core::HttpServerOptions http;
  http.threads = clients + 8;
  services::RewardServer server(server_config(batch, seq, delay_ms), http);
  server.start();
  server.serve(model);
  std::atomic<int64_t> failures{0};
  Figures f;
  f.one_at_a_time = one_at_a_time(server.port(), seconds, prompts, responses);
  f.saturated = closed_loop(server.port(), clients, seconds, prompts, responses, &failures);
  const auto latencies =
      open_loop(server.port(), 0.7 * f.saturated, seconds, clients, prompts, responses, &failures);
  f.p50 = percentile(latencies, 0.5);
  f.p99 = percentile(latencies, 0.99);
  f.requests = latencies.size();
  const auto ceiling_after = measure_ceiling();
  std::tie(f.ceiling, f.batch_s) = std::max(ceiling_before, ceiling_after);
  std::printf("ceiling runs: %.1f and %.1f seq/s\n", ceiling_before.first, ceiling_after.first);
  print_report(f, batch, delay_ms, clients);
  std::printf("failed requests: %lld\n", static_cast<long long>(failures.load()));
  server.shutdown();
  server.wait();
  return failures.load() == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  return bench::main_guard("bench_reward_server", [&] { return run(argc, argv); });
}
