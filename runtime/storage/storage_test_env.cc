#include "runtime/storage/storage_test_env.h"

#include <stdlib.h>

#include <filesystem>

#include "core/status.h"
#include "core/strings.h"
#include "runtime/host/executor.h"
#include "runtime/storage/fake_storage_driver.h"
#include "runtime/storage/qemu_storage_driver.h"

namespace berth::runtime::storage {
namespace {

using core::Cat;

// Runs a host tool; its standard output, or an error quoting it.
absl::StatusOr<std::string> RunTool(const std::vector<std::string>& argv) {
  return host::RunOk(host::RealExecutor(), argv);
}

class ScratchDir {
 public:
  ScratchDir() : path_(MakeScratchDir()) {}
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class QemuEnv final : public StorageTestEnv {
 public:
  StorageDriver& driver() override { return driver_; }
  const std::string& dir() const override { return scratch_.path(); }

  absl::Status Write(std::string_view pool, std::string_view volume,
                     std::string_view data) override {
    BERTH_ASSIGN_OR_RETURN(VolumeInfo v, driver_.GetVolume(pool, volume));
    std::vector<std::string> argv = {"qemu-io", "-f", std::string(FormatName(v.format))};
    for (size_t i = 0; i < data.size(); ++i) {
      argv.push_back("-c");
      argv.push_back(Cat("write -q -P ", static_cast<int>(static_cast<unsigned char>(data[i])), " ",
                         i * 65536, " 64k"));
    }
    argv.push_back(v.path);
    return RunTool(argv).status();
  }

  absl::StatusOr<std::string> Digest(std::string_view pool, std::string_view volume) override {
    BERTH_ASSIGN_OR_RETURN(VolumeInfo v, driver_.GetVolume(pool, volume));
    std::string raw = Cat(dir(), "/digest.raw");
    BERTH_RETURN_IF_ERROR(RunTool({"qemu-img", "convert", "-U", "-f",
                                   std::string(FormatName(v.format)), "-O", "raw", v.path, raw}));
    BERTH_ASSIGN_OR_RETURN(std::string sum, RunTool({"sha256sum", raw}));
    std::filesystem::remove(raw);
    return sum.substr(0, 64);
  }

  absl::StatusOr<std::string> MakeImage(std::string_view name, int64_t size_mib) override {
    std::string path = Cat(dir(), "/", name, ".qcow2");
    BERTH_RETURN_IF_ERROR(
        RunTool({"qemu-img", "create", "-q", "-f", "qcow2", path, Cat(size_mib, "M")}));
    BERTH_RETURN_IF_ERROR(RunTool({"qemu-io", "-f", "qcow2", "-c", "write -q -P 7 0 128k", path}));
    return path;
  }

 private:
  ScratchDir scratch_;
  QemuStorageDriver driver_;
};

class FakeEnv final : public StorageTestEnv {
 public:
  StorageDriver& driver() override { return driver_; }
  const std::string& dir() const override { return scratch_.path(); }
  absl::Status Write(std::string_view pool, std::string_view volume,
                     std::string_view data) override {
    return driver_.WriteForTest(pool, volume, std::string(data));
  }
  absl::StatusOr<std::string> Digest(std::string_view pool, std::string_view volume) override {
    return driver_.DigestForTest(pool, volume);
  }
  absl::StatusOr<std::string> MakeImage(std::string_view name, int64_t size_mib) override {
    std::string path = Cat(dir(), "/", name, ".qcow2");
    driver_.AddImage(path, size_mib);
    return path;
  }

 private:
  ScratchDir scratch_;
  FakeStorageDriver driver_;
};

}  // namespace

std::string MakeScratchDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = Cat(base != nullptr && *base != '\0' ? base : "/tmp", "/berth-st-XXXXXX");
  char* made = mkdtemp(tmpl.data());
  return made == nullptr ? std::string() : tmpl;
}

std::unique_ptr<StorageTestEnv> MakeQemuStorageEnv() { return std::make_unique<QemuEnv>(); }
std::unique_ptr<StorageTestEnv> MakeFakeStorageEnv() { return std::make_unique<FakeEnv>(); }

}  // namespace berth::runtime::storage
