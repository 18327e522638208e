// The process's Prometheus metrics (prometheus-cpp, hidden behind small handles).
//
// Every process has one registry. Metric handles are cheap to copy and thread-safe to update;
// the same name and labels always give the same time series. `render_metrics()` returns the
// text exposition format served on /metrics, including process metrics
// (process_resident_memory_bytes, process_cpu_seconds_total, process_start_time_seconds) and
// rudder_build_info{version, git_hash, libtorch}.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace rudder::core {

/// Label names and values of one time series.
using MetricLabels = std::map<std::string, std::string>;

/// A monotonically increasing counter (name ends in `_total`).
class Counter {
 public:
  /// Adds `amount` (>= 0).
  void inc(double amount = 1.0) const;
  /// Current value.
  double value() const;

 private:
  friend Counter counter(const std::string&, const std::string&, const MetricLabels&);
  void* impl_ = nullptr;
};

/// A value that goes up and down.
class Gauge {
 public:
  /// Sets the value.
  void set(double value) const;
  /// Adds `amount` (may be negative).
  void inc(double amount = 1.0) const;
  /// Current value.
  double value() const;

 private:
  friend Gauge gauge(const std::string&, const std::string&, const MetricLabels&);
  void* impl_ = nullptr;
};

/// A histogram of observations (durations in seconds, sizes in bytes).
class Histogram {
 public:
  /// Records one observation.
  void observe(double value) const;

 private:
  friend Histogram histogram(const std::string&, const std::string&, const std::vector<double>&,
                             const MetricLabels&);
  void* impl_ = nullptr;
};

/// The counter `name` with `labels`, created on first use. Throws InvalidArgument when `name`
/// is already registered as another type or is not a valid Prometheus name.
Counter counter(const std::string& name, const std::string& help, const MetricLabels& labels = {});

/// The gauge `name` with `labels`, created on first use.
Gauge gauge(const std::string& name, const std::string& help, const MetricLabels& labels = {});

/// The histogram `name` with `labels` and bucket upper bounds, created on first use.
Histogram histogram(const std::string& name, const std::string& help,
                    const std::vector<double>& buckets, const MetricLabels& labels = {});

/// Default latency buckets, in seconds (1 ms to 60 s).
std::vector<double> latency_buckets();

/// Everything registered plus process metrics, in the Prometheus text format 0.0.4.
std::string render_metrics();

/// The Content-Type of render_metrics()'s output.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace rudder::core
