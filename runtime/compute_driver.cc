#include "runtime/compute_driver.h"

#include <utility>

#include "core/strings.h"

namespace berth::runtime {

nlohmann::json TaskHandleToJson(const TaskHandle& handle) {
  return nlohmann::json{{"driver", handle.driver},
                        {"task_id", handle.task_id},
                        {"version", handle.version},
                        {"state", handle.state}};
}

absl::StatusOr<TaskHandle> TaskHandleFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("task handle: must be a JSON object");
  TaskHandle h;
  auto string_field = [&](const char* name, std::string& out) -> absl::Status {
    auto it = j.find(name);
    if (it == j.end() || !it->is_string()) {
      return absl::InvalidArgumentError(core::Cat("task handle: ", name, " must be a string"));
    }
    out = it->get<std::string>();
    return absl::OkStatus();
  };
  if (absl::Status s = string_field("driver", h.driver); !s.ok()) return s;
  if (absl::Status s = string_field("task_id", h.task_id); !s.ok()) return s;
  if (auto it = j.find("version"); it != j.end()) {
    if (!it->is_number_integer()) {
      return absl::InvalidArgumentError(
          core::Cat("task handle \"", h.task_id, "\": version must be an integer"));
    }
    h.version = it->get<int>();
  }
  if (auto it = j.find("state"); it != j.end()) h.state = *it;
  return h;
}

std::string_view TaskStateName(TaskState state) {
  switch (state) {
    case TaskState::kRunning:
      return "running";
    case TaskState::kPaused:
      return "paused";
    case TaskState::kExited:
      return "exited";
  }
  return "unknown";
}

std::string_view TaskEventTypeName(TaskEventType type) {
  switch (type) {
    case TaskEventType::kStarted:
      return "started";
    case TaskEventType::kExited:
      return "exited";
    case TaskEventType::kFailed:
      return "failed";
    case TaskEventType::kOomKilled:
      return "oom_killed";
    case TaskEventType::kPaused:
      return "paused";
    case TaskEventType::kResumed:
      return "resumed";
    case TaskEventType::kRecovered:
      return "recovered";
  }
  return "unknown";
}

absl::Status TaskNotFound(std::string_view task_id) {
  return absl::NotFoundError(core::Cat("task \"", task_id, "\" not found"));
}

TaskEventHub::TaskEventHub() : thread_([this] { Run(); }) {}

TaskEventHub::~TaskEventHub() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

int64_t TaskEventHub::Subscribe(TaskEventCallback callback) {
  absl::MutexLock lock(&mu_);
  int64_t id = next_id_++;
  subscribers_.emplace(id, std::move(callback));
  return id;
}

void TaskEventHub::Unsubscribe(int64_t subscription) {
  {
    absl::MutexLock lock(&mu_);
    subscribers_.erase(subscription);
  }
  // Wait out a delivery that may still hold a copy of the callback.
  absl::MutexLock wait(&delivery_mu_);
}

void TaskEventHub::Publish(TaskEvent event) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  queue_.push_back(std::move(event));
}

void TaskEventHub::Run() {
  while (true) {
    std::vector<TaskEvent> batch;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](TaskEventHub* hub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub->mu_) {
            return hub->stopping_ || !hub->queue_.empty();
          },
          this));
      if (stopping_) return;
      batch.swap(queue_);
    }
    // Subscribers are copied while delivery_mu_ is held, so an Unsubscribe that returned before
    // the copy is honoured and one that returns after it waits for this delivery to finish.
    absl::MutexLock delivery(&delivery_mu_);
    std::vector<TaskEventCallback> callbacks;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [id, cb] : subscribers_) callbacks.push_back(cb);
    }
    for (const TaskEvent& event : batch) {
      for (const TaskEventCallback& cb : callbacks) cb(event);
    }
  }
}

}  // namespace berth::runtime
