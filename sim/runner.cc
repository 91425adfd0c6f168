#include "sim/runner.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace berth::sim {

int EffectiveJobs(int jobs) {
  if (jobs > 0) return jobs;
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

namespace {

// Serializes progress lines from the worker threads.
class Progress {
 public:
  Progress(std::ostream* out, size_t total) : out_(out), total_(total) {}
  void Done(const std::string& label) {
    if (out_ == nullptr) return;
    absl::MutexLock lock(&mu_);
    ++done_;
    *out_ << "sim: " << done_ << "/" << total_ << " runs done (" << label << ")\n";
    out_->flush();
  }

 private:
  std::ostream* const out_;
  const size_t total_;
  absl::Mutex mu_;
  size_t done_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

void RunParallel(size_t count, const std::function<std::string(size_t)>& task,
                 const ParallelOptions& options) {
  Progress progress(options.progress, count);
  const size_t threads = std::min(count, static_cast<size_t>(EffectiveJobs(options.jobs)));
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) {
      progress.Done(task(i));
    }
  };
  if (threads <= 1) {
    worker();
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (size_t t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (std::thread& t : pool) t.join();
}

}  // namespace berth::sim
