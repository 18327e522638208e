#include "core/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "core/error.h"
#include "core/version.h"

namespace rudder::core {
namespace {

enum class Kind { kCounter, kGauge, kHistogram };

struct State {
  std::mutex mutex;
  prometheus::Registry registry;
  std::unordered_map<std::string, std::pair<Kind, void*>> families;  // name -> family
  double start_time = 0;
};

State& state() {
  static State* s = [] {
    auto* st = new State();  // never destroyed: metrics may be touched during static teardown
    st->start_time =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    return st;
  }();
  return *s;
}

bool valid_name(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':')) return false;
  }
  return true;
}

template <typename T, typename Builder>
prometheus::Family<T>& family(const std::string& name, const std::string& help, Kind kind,
                              Builder builder) {
  RUDDER_CHECK(valid_name(name), "invalid metric name '", name, "'");
  State& s = state();
  auto it = s.families.find(name);
  if (it != s.families.end()) {
    RUDDER_CHECK(it->second.first == kind, "metric '", name,
                 "' is already registered with another type");
    return *static_cast<prometheus::Family<T>*>(it->second.second);
  }
  auto& fam = builder.Name(name).Help(help).Register(s.registry);
  s.families.emplace(name, std::make_pair(kind, static_cast<void*>(&fam)));
  return fam;
}

prometheus::MetricFamily single(const std::string& name, const std::string& help,
                                prometheus::MetricType type, double value,
                                const MetricLabels& labels = {}) {
  prometheus::MetricFamily fam;
  fam.name = name;
  fam.help = help;
  fam.type = type;
  prometheus::ClientMetric metric;
  for (const auto& [k, v] : labels) metric.label.push_back({k, v});
  if (type == prometheus::MetricType::Counter)
    metric.counter.value = value;
  else
    metric.gauge.value = value;
  fam.metric.push_back(metric);
  return fam;
}

double resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto secs = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return secs(usage.ru_utime) + secs(usage.ru_stime);
}

}  // namespace

void Counter::inc(double amount) const {
  static_cast<prometheus::Counter*>(impl_)->Increment(amount);
}
double Counter::value() const { return static_cast<prometheus::Counter*>(impl_)->Value(); }
void Gauge::set(double value) const { static_cast<prometheus::Gauge*>(impl_)->Set(value); }
void Gauge::inc(double amount) const { static_cast<prometheus::Gauge*>(impl_)->Increment(amount); }
double Gauge::value() const { return static_cast<prometheus::Gauge*>(impl_)->Value(); }
void Histogram::observe(double value) const {
  static_cast<prometheus::Histogram*>(impl_)->Observe(value);
}

Counter counter(const std::string& name, const std::string& help, const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(state().mutex);
  auto& fam = family<prometheus::Counter>(name, help, Kind::kCounter, prometheus::BuildCounter());
  Counter c;
  c.impl_ = &fam.Add(labels);
  return c;
}

Gauge gauge(const std::string& name, const std::string& help, const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(state().mutex);
  auto& fam = family<prometheus::Gauge>(name, help, Kind::kGauge, prometheus::BuildGauge());
  Gauge g;
  g.impl_ = &fam.Add(labels);
  return g;
}

Histogram histogram(const std::string& name, const std::string& help,
                    const std::vector<double>& buckets, const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(state().mutex);
  auto& fam =
      family<prometheus::Histogram>(name, help, Kind::kHistogram, prometheus::BuildHistogram());
  Histogram h;
  h.impl_ =
      &fam.Add(labels, prometheus::Histogram::BucketBoundaries(buckets.begin(), buckets.end()));
  return h;
}

std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

std::string render_metrics() {
  State& s = state();
  std::vector<prometheus::MetricFamily> families = s.registry.Collect();
  using prometheus::MetricType;
  families.push_back(single("process_resident_memory_bytes", "Resident memory size in bytes.",
                            MetricType::Gauge, resident_bytes()));
  families.push_back(single("process_cpu_seconds_total",
                            "Total user and system CPU time spent in seconds.", MetricType::Counter,
                            cpu_seconds()));
  families.push_back(single("process_start_time_seconds",
                            "Start time of the process since unix epoch in seconds.",
                            MetricType::Gauge, s.start_time));
  families.push_back(single(
      "rudder_build_info", "Rudder build facts; the value is always 1.", MetricType::Gauge, 1.0,
      {{"version", rudder_version()}, {"git_hash", git_hash()}, {"libtorch", libtorch_version()}}));
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace rudder::core
