// GeDi's class-conditional LM (method gedi): the policy trained on labelled texts after their
// control codes; exports it in Hugging Face layout beside gedi_config.json (codes, logit scale),
// which `rollout.decoder: gedi` reads.
#include <torch/torch.h>

#include "algorithms/class_conditional_lm.h"
#include "core/config.h"
#include "core/error.h"
#include "data/synthetic.h"
#include "models/hf_io.h"
#include "rollout/guidance_config.h"
#include "trainer/detail/recipe_support.h"
#include "trainer/detail/recipes.h"

namespace rudder::trainer::detail {
namespace {

// The one token of control code `text` (setting `name`).
int64_t code_token(const data::Tokenizer& tokenizer, const std::string& text,
                   const std::string& name) {
  RUDDER_CHECK(!text.empty(), "gedi.", name, " is empty");
  const auto ids = tokenizer.encode(text);
  RUDDER_CHECK(ids.size() == 1, "gedi.", name, " '", text, "' is ", ids.size(),
               " tokens; a control code must be exactly one token of the tokenizer");
  return ids[0];
}

// Labelled texts: data.train_path / data.eval_path ({"text", "label"} lines), or the synthetic
// reviews (positive: the desired class).
algorithms::LabelledData load_labelled_data(const ExperimentConfig& c,
                                            const data::Tokenizer& tokenizer) {
  std::vector<data::LabelledText> train, eval;
  const bool skip = c.data().on_bad_line() == "skip";
  if (!c.data().train_path().empty()) {
    refuse_if_set(c, "data.synthetic",
                  "data.train_path names a file, so no synthetic text is made");
    train = data::load_labelled_jsonl(c.data().train_path(), skip, nullptr, data_fields(c));
    RUDDER_CHECK(!train.empty(), c.data().train_path(), ": no labelled texts");
    if (!c.data().eval_path().empty())
      eval = data::load_labelled_jsonl(c.data().eval_path(), skip, nullptr, data_fields(c));
  } else {
    refuse_if_set(c, "data.fields", "data.train_path names no file, so no field is read");
    const auto& tasks = c.data().synthetic().tasks();
    RUDDER_CHECK(tasks.empty() || (tasks.size() == 1 && tasks[0] == "sentiment"),
                 "method gedi learns the synthetic reviews: data.synthetic.tasks must be "
                 "[sentiment] or empty");
    const data::SyntheticTasks reviews({"sentiment"}, c.seed());
    train = reviews.reviews(c.data().synthetic().num_train(), 0);
    eval = reviews.reviews(c.data().synthetic().num_eval(), 1);
  }
  algorithms::LabelledData out;
  out.train = algorithms::tokenize_labelled(train, tokenizer, c.tokenizer(), c.data());
  out.eval = algorithms::tokenize_labelled(eval, tokenizer, c.tokenizer(), c.data());
  return out;
}

}  // namespace

Recipe gedi_recipe() {
  Recipe r;
  r.build = [](const ExperimentConfig& config) {
    Experiment e = make_base(config);
    const GediConfig& gedi = config.gedi();
    rollout::GediCodes codes;
    codes.desired_text = gedi.desired_code();
    codes.anti_text = gedi.anti_code();
    codes.desired_code = code_token(*e.tokenizer, codes.desired_text, "desired_code");
    codes.anti_code = code_token(*e.tokenizer, codes.anti_text, "anti_code");
    auto algorithm = std::make_unique<algorithms::ClassConditionalLmTraining>(
        e.policy, e.tokenizer->pad_id(), codes.desired_code, codes.anti_code,
        load_labelled_data(config, *e.tokenizer), gedi);
    const algorithms::ClassConditionalLmTraining* trained = algorithm.get();
    e.source = std::make_unique<algorithms::DatasetSource>(algorithm->num_train(), config.seed(),
                                                           config.data().shuffle());
    e.algorithm = std::move(algorithm);
    auto policy = e.policy;
    e.export_final = [policy, trained, codes](const std::string& dir) mutable {
      models::save_hf_model(*policy, dir);
      codes.logit_scale = trained->model().logit_scale().item<double>();
      rollout::write_gedi_codes(dir, codes);
    };
    return e;
  };
  return r;
}

}  // namespace rudder::trainer::detail
