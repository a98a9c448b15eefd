// `sluice run --metrics ADDRESS`: the run's figures in the Prometheus text format at
// http://ADDRESS/metrics while it goes, for a monitoring system watching unattended crawls.
#pragma once

#include <memory>
#include <string>

#include "sluice/pipeline.hpp"
#include "sluice/run.hpp"

namespace sluice::cli {

class MetricsServer {
 public:
  // Listens on `address`: HOST:PORT, or PORT alone for 127.0.0.1 ([::1]:PORT for IPv6; port 0
  // picks a free one). Null, with `error` set, when the address is malformed or taken.
  static std::unique_ptr<MetricsServer> start(const std::string& address, const Plan& plan, std::string& error);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The figures served from now on (called from the run's progress callback).
  void update(const RunProgress& progress);
  // The run's final figures, once it has ended.
  void finish(const RunReport& report);
  // http://HOST:PORT/metrics
  std::string url() const;

 private:
  // The Prometheus text of a pipeline's figures.
  static std::string render(const Plan& plan, const RunProgress& progress, bool finished);

  struct Impl;
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::cli
