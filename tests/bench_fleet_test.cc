// bench_fleet, the fleet-scale load generator, at a tiny size: a run reports every workload
// created, placed and reported running on its last line, as one JSON object, and neither a run
// that ends nor one that is interrupted leaves its server or its files behind. Each test points
// TMPDIR at a directory of its own, so "nothing behind" is "that directory is empty".
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class BenchFleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("berth-bench-fleet-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tmp");
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    fs::remove_all(dir_);
  }

  // Starts the bench with `args`, TMPDIR=dir_/tmp, its output in dir_/out and dir_/err.
  void Start(const std::vector<std::string>& args) {
    pid_ = fork();
    if (pid_ == 0) {
      setenv("TMPDIR", (dir_ / "tmp").c_str(), 1);
      FILE* out = std::fopen((dir_ / "out").c_str(), "w");
      FILE* err = std::fopen((dir_ / "err").c_str(), "w");
      if (out == nullptr || err == nullptr) _exit(126);
      dup2(fileno(out), 1);
      dup2(fileno(err), 2);
      std::vector<std::string> copy = args;
      std::vector<char*> argv = {const_cast<char*>(BERTH_BENCH_FLEET)};
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(BERTH_BENCH_FLEET, argv.data());
      _exit(127);
    }
  }

  // Waits for the bench to end; its exit code, or -1 when a signal ended it.
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // What the bench left in its TMPDIR, and processes that still name it.
  std::vector<std::string> LeftBehind() {
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(dir_ / "tmp")) left.push_back(e.path().string());
    const std::string marker = (dir_ / "tmp").string();
    for (const auto& e : fs::directory_iterator("/proc")) {
      std::string cmdline = ReadFile(e.path() / "cmdline");
      for (char& c : cmdline) {
        if (c == '\0') c = ' ';
      }
      if (cmdline.find(marker) != std::string::npos) {
        left.push_back("process " + e.path().filename().string() + ": " + cmdline);
      }
    }
    return left;
  }

  fs::path dir_;
  pid_t pid_ = -1;
};

TEST_F(BenchFleetTest, ReportsEveryWorkloadPlacedAndRunningAndLeavesNothing) {
  // Generous waits: the run ends as soon as every workload is placed and running.
  Start({"--hosts", "4", "--workloads", "40", "--clients", "4", "--idle-seconds", "0.2",
         "--saturate-seconds", "0.2", "--stall-seconds", "300", "--running-wait", "300"});
  ASSERT_EQ(Wait(), 0) << ReadFile(dir_ / "err");
  const std::string out = ReadFile(dir_ / "out");
  ASSERT_FALSE(out.empty());
  std::string last = out.substr(0, out.size() - 1);
  last = last.substr(last.rfind('\n') + 1);
  auto j = nlohmann::json::parse(last, nullptr, false);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_EQ(j.value("benchmark", ""), "fleet");
  ASSERT_EQ(j["runs"].size(), 1u) << last;
  const auto& run = j["runs"][0];
  EXPECT_EQ(run.value("hosts", 0), 4);
  EXPECT_EQ(run.value("registration_errors", -1), 0) << last;
  EXPECT_EQ(run.value("created", 0), 40) << last;
  EXPECT_EQ(run.value("placed", 0), 40) << last;
  EXPECT_EQ(run.value("running_reported", 0), 40) << last;
  EXPECT_EQ(run.value("pure_placed", 0), 40) << last;
  EXPECT_GT(run.value("placed_per_s", 0), 0) << last;
  EXPECT_GT(run.value("server_rss_bytes", 0), 0) << last;
  EXPECT_TRUE(run.contains("restart_to_placed_s")) << last;
  EXPECT_TRUE(LeftBehind().empty()) << ::testing::PrintToString(LeftBehind());
}

TEST_F(BenchFleetTest, AnInterruptedRunLeavesNothing) {
  Start({"--hosts", "4", "--workloads", "100000", "--clients", "2", "--idle-seconds", "0.2",
         "--saturate-seconds", "0.2"});
  // Interrupted while it creates workloads, with its server busy.
  bool creating = false;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
       !creating && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    creating = ReadFile(dir_ / "err").find("created ") != std::string::npos;
  }
  ASSERT_TRUE(creating) << ReadFile(dir_ / "err");
  kill(pid_, SIGINT);
  EXPECT_EQ(Wait(), 128 + SIGINT) << ReadFile(dir_ / "err");
  EXPECT_TRUE(LeftBehind().empty()) << ::testing::PrintToString(LeftBehind());
}

}  // namespace
