// The command line against a server on a loopback port, one that is not there, and one that
// never answers.
#include "cli/cli.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <sstream>

#include "api/api_server.h"
#include "control/control_plane.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/strings.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::cli {
namespace {

using core::Cat;
using core::Json;

struct Result {
  int code = -1;
  std::string out, err;
};

Result Berth(std::vector<std::string> args) {
  std::ostringstream out, err;
  Result r;
  r.code = RunCli(args, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

// A loopback listener; with `full_backlog` its accept queue is full and never drained, so a new
// connect hangs as towards a host that does not answer.
class Listener {
 public:
  explicit Listener(bool full_backlog) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    addr_.sin_family = AF_INET;
    addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr_;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr_), len), 0);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr_), &len), 0);
    if (!full_backlog) return;
    EXPECT_EQ(listen(fd_, 0), 0);
    filler_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(connect(filler_, reinterpret_cast<sockaddr*>(&addr_), len), 0);
  }
  ~Listener() {
    if (filler_ >= 0) close(filler_);
    close(fd_);
  }
  std::string address() const { return Cat("127.0.0.1:", ntohs(addr_.sin_port)); }

 private:
  int fd_ = -1;
  int filler_ = -1;
  sockaddr_in addr_{};
};

TEST(CliFlagsTest, AnUnknownFlagIsRefusedWithItsName) {
  for (std::vector<std::string> args : {std::vector<std::string>{"workload", "ls", "--jsn"},
                                        {"host", "ls", "--all"},
                                        {"events", "-x"},
                                        {"workload", "exec", "w1", "-la"}}) {
    Result r = Berth(args);
    EXPECT_EQ(r.code, 2) << args.back();
    EXPECT_NE(r.err.find("unknown flag " + args.back()), std::string::npos) << r.err;
  }
  // The switches berth knows still work.
  Result help = Berth({"workload", "--help"});
  EXPECT_EQ(help.code, 0) << help.err;
}

TEST(CliUnreachableTest, AClosedPortSaysWhichAddressAndHowToNameAnother) {
  Listener bound_not_listening(/*full_backlog=*/false);
  Result r = Berth({"host", "ls", "--server", bound_not_listening.address(), "--token", "t"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(Cat("http://", bound_not_listening.address())), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("BERTH_ADDR"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--server"), std::string::npos) << r.err;
}

TEST(CliUnreachableTest, AServerThatNeverAcceptsIsGivenUpOnAfterTheConnectTimeout) {
  Listener blackhole(/*full_backlog=*/true);
  const absl::Time start = absl::Now();
  Result r = Berth({"workload", "ls", "--json", "--server", blackhole.address(), "--token", "t"});
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.code, 1);
  Json err = Json::parse(r.err, nullptr, false);
  ASSERT_TRUE(err.is_object()) << r.err;
  EXPECT_NE(err["error"].get<std::string>().find(blackhole.address()), std::string::npos) << r.err;
  EXPECT_GE(took, kConnectTimeout - absl::Milliseconds(100));
  EXPECT_LT(took, absl::Seconds(30));  // it used to wait for the kernel's SYN retries (~2 min)
}

TEST(CliHostTest, RmRemovesAHostThatIsDownAndRefusesALiveOne) {
  core::ManualClock clock;
  state::MemoryStore store;
  control::ControlPlane control(&store, control::ControlPlaneOptions{.clock = &clock});
  api::ApiServer server(api::ApiServerOptions{.admin_token = "admin"}, &control, nullptr);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  const std::string url = Cat("127.0.0.1:", *port);
  core::HostInventory inv;
  inv.capacity.cpu = core::MilliCpu(2000);
  inv.capacity.memory = core::MemoryMiB(1024);
  ASSERT_TRUE(control.RegisterHost("node-a", inv).ok());

  Result live = Berth({"host", "rm", "node-a", "--server", url, "--token", "admin"});
  EXPECT_EQ(live.code, 1);
  EXPECT_NE(live.err.find("is live"), std::string::npos) << live.err;

  clock.Advance(absl::Seconds(20));
  ASSERT_EQ(*control.CheckHostsOnce(), 1);
  Result removed = Berth({"host", "rm", "node-a", "--json", "--server", url, "--token", "admin"});
  EXPECT_EQ(removed.code, 0) << removed.err;
  Json body = Json::parse(removed.out, nullptr, false);
  EXPECT_EQ(body["name"], "node-a") << removed.out;
  EXPECT_EQ(body["deleted"], true) << removed.out;
  EXPECT_FALSE(control.GetHost("node-a").ok());

  Result again = Berth({"host", "rm", "node-a", "--server", url, "--token", "admin"});
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("not found"), std::string::npos) << again.err;
  EXPECT_EQ(Berth({"host", "rm", "--server", url, "--token", "admin"}).code, 2);
  Result help = Berth({"host", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("host rm NAME"), std::string::npos) << help.out;
}

}  // namespace
}  // namespace berth::cli
