#include "trainer/experiment.h"

#include <filesystem>

#include <torch/torch.h>

#include "algorithms/sft.h"
#include "core/error.h"
#include "core/log.h"
#include "data/dataset.h"
#include "data/synthetic.h"
#include "models/factory.h"

namespace rudder::trainer {
namespace {

std::vector<data::TokenizedPair> tokenize_all(const std::vector<data::SftExample>& examples,
                                              const data::Tokenizer& tok,
                                              const ExperimentConfig& c) {
  std::vector<data::TokenizedPair> out;
  out.reserve(examples.size());
  for (const auto& ex : examples)
    out.push_back(data::tokenize_pair(tok, ex.prompt, ex.completion, c.tokenizer(), c.data()));
  return out;
}

// SFT data: JSONL files, or the synthetic tasks (with ground truth for evaluation).
algorithms::SftData load_sft_data(const ExperimentConfig& c, const data::Tokenizer& tokenizer) {
  algorithms::SftData out;
  std::vector<data::SftExample> train, eval;
  const bool skip = c.data().on_bad_line() == "skip";
  if (!c.data().train_path().empty()) {
    train = data::load_sft_jsonl(c.data().train_path(), c.tokenizer().chat_template(), skip);
    RUDDER_CHECK(!train.empty(), c.data().train_path(), ": no training examples");
    if (!c.data().eval_path().empty())
      eval = data::load_sft_jsonl(c.data().eval_path(), c.tokenizer().chat_template(), skip);
  } else {
    const std::vector<std::string> tasks(c.data().synthetic().tasks().begin(),
                                         c.data().synthetic().tasks().end());
    const data::SyntheticTasks synthetic(tasks, c.seed());
    for (const auto& ex : synthetic.examples(c.data().synthetic().num_train(), 0))
      train.push_back(data::SyntheticTasks::sft(ex));
    out.eval_tasks = synthetic.examples(c.data().synthetic().num_eval(), 1);
    for (const auto& ex : out.eval_tasks) eval.push_back(data::SyntheticTasks::sft(ex));
  }
  out.train = tokenize_all(train, tokenizer, c);
  out.eval = tokenize_all(eval, tokenizer, c);
  return out;
}

}  // namespace

Experiment build_experiment(const ExperimentConfig& config) {
  RUDDER_CHECK(config.dtype() == "float32", "dtype '", config.dtype(),
               "' is not supported by the trainer yet (use float32)");
  RUDDER_CHECK(config.device() == "auto" || config.device() == "cpu" ||
                   config.device().rfind("cuda", 0) == 0,
               "device '", config.device(), "': expected auto, cpu, cuda or cuda:N");
  torch::manual_seed(config.seed());
  Experiment e;
  e.tokenizer = data::make_tokenizer(config.tokenizer(), config.model().path());
  e.model = models::make_model(config.model(), e.tokenizer->vocab_size());
  const bool cuda = config.device().rfind("cuda", 0) == 0 ||
                    (config.device() == "auto" && torch::cuda::is_available());
  if (cuda) {
    RUDDER_CHECK(torch::cuda::is_available(), "device '", config.device(),
                 "' asked for, but CUDA is not available");
    e.model->to(torch::Device(config.device() == "auto" ? "cuda" : config.device()));
  }
  switch (config.method_case()) {
    case ExperimentConfig::kSft:
      e.algorithm = std::make_unique<algorithms::Sft>(e.model, e.tokenizer,
                                                      load_sft_data(config, *e.tokenizer), config);
      break;
    case ExperimentConfig::METHOD_NOT_SET:
      throw core::InvalidArgument(
          "the config names no method: add one of sft, reward_model, dpo, ppo, spin, ctrl, mcts");
    default:
      throw core::InvalidArgument(
          core::str("method '",
                    ExperimentConfig::descriptor()->FindFieldByNumber(config.method_case())->name(),
                    "' is not implemented yet"));
  }
  return e;
}

TrainResult run_experiment(const ExperimentConfig& config, core::ProcessGroup& group,
                           const TrainOptions& options) {
  Experiment e = build_experiment(config);
  Trainer trainer(config, *e.algorithm, group, options);
  TrainResult result = trainer.run();
  if (group.is_main() && !result.stopped_by_signal) {
    const std::string dir = (std::filesystem::path(config.output_dir()) / "final").string();
    models::save_hf_model(*e.model, dir);
    RUDDER_LOG(kInfo) << "final model written to " << dir;
  }
  return result;
}

}  // namespace rudder::trainer
