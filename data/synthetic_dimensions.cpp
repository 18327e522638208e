// The capability dimensions of the synthetic tasks (see synthetic.h): ground-truth scores per
// dimension and pairs that differ on one dimension.
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "data/synthetic.h"

namespace rudder::data {
namespace {

std::string_view trimmed(std::string_view r) {
  while (!r.empty() && r.front() == ' ') r.remove_prefix(1);
  return r;
}

double correctness(const TaskExample& ex, std::string_view response) {
  if (ex.category != "reverse") return SyntheticTasks::score(ex, response);
  // Letters in place, case-insensitive; what follows the answer is the length's business.
  const std::string_view r = trimmed(response);
  size_t hits = 0;
  for (size_t k = 0; k < ex.answer.size() && k < r.size(); ++k)
    hits += std::tolower(static_cast<unsigned char>(r[k])) == ex.answer[k];
  return static_cast<double>(hits) / static_cast<double>(ex.answer.size());
}

double format(const TaskExample& ex, std::string_view response) {
  const std::string_view r = trimmed(response);
  if (r.empty()) return 0.0;
  for (char ch : r) {
    const auto c = static_cast<unsigned char>(ch);
    const bool ok = ex.category == "arithmetic" ? (std::isdigit(c) || c == ' ')
                                                : (std::islower(c) || c == ' ' || c == ',');
    if (!ok) return 0.0;
  }
  return 1.0;
}

double length(const TaskExample& ex, std::string_view response) {
  const double excess = std::abs(static_cast<double>(trimmed(response).size()) -
                                 static_cast<double>(ex.answer.size()));
  return excess <= 1.0 ? 1.0 : std::exp(-(excess - 1.0) / 4.0);
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

const std::vector<std::string>& SyntheticTasks::dimensions() {
  static const std::vector<std::string> names = {"correctness", "format", "length"};
  return names;
}

std::vector<double> SyntheticTasks::dimension_scores(const TaskExample& example,
                                                     std::string_view response) {
  return {correctness(example, response), format(example, response), length(example, response)};
}

PreferencePair SyntheticTasks::dimension_preference(const TaskExample& ex, size_t dimension,
                                                    SplitMix64& rng) {
  RUDDER_CHECK(dimension < dimensions().size(), "dimension index ", dimension, " of ",
               dimensions().size(), " dimensions");
  if (dimension == 0) return preference(ex, rng);  // the content corrupted, as before
  PreferencePair p;
  p.prompt = ex.prompt;
  p.chosen = ex.answer;
  p.category = ex.category;
  if (dimension == 1) {
    // Same content and length, characters an answer never uses.
    p.rejected =
        ex.category == "arithmetic" ? ex.answer + (rng.below(2) ? "!" : "?") : upper(ex.answer);
  } else {
    // Same content and characters, repeated past the answer's length.
    const size_t copies = 2 + rng.below(2);
    p.rejected = ex.answer;
    for (size_t i = 0; i < copies; ++i)
      p.rejected += (ex.category == "sentiment" ? ", " : " ") + ex.answer;
  }
  p.margin =
      dimension_scores(ex, p.chosen)[dimension] - dimension_scores(ex, p.rejected)[dimension];
  return p;
}

}  // namespace rudder::data
