// EtcdStore beyond the Store contract (state_etcd_contract_test runs that): etcd:// URLs,
// failover between endpoints, watches that live through etcd restarts and member loss, and
// leases on the cluster's clock. Every test starts its own etcd on loopback.
#include "state/etcd/etcd_store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/etcd/etcd_test_util.h"
#include "state/store_test_util.h"

namespace berth::state {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Retries `op` while etcd is between leaders or restarting; generous, it only bounds a failure.
template <typename Op>
auto Eventually(Op op) -> decltype(op()) {
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  for (;;) {
    auto result = op();
    absl::StatusCode code = core::ToStatus(result).code();
    if ((code != absl::StatusCode::kUnavailable && code != absl::StatusCode::kDeadlineExceeded) ||
        absl::Now() > deadline) {
      return result;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

// A port nothing listens on: bound once by the kernel, then released.
std::string DeadEndpoint() {
  auto cluster = testing::EtcdCluster::Start(1);
  EXPECT_TRUE(cluster.ok()) << cluster.status();
  if (!cluster.ok()) return "127.0.0.1:1";
  std::string endpoint = (*cluster)->endpoint(0);
  return endpoint;  // the cluster's destructor kills the member: the port is free again
}

// Every event under `prefix` the store's history holds, read by a fresh watch from revision 1.
std::vector<Event> History(Store& store, std::string_view prefix, size_t expected) {
  testing::EventLog log;
  auto watch = store.Watch(prefix, 1, log.Callback());
  EXPECT_TRUE(watch.ok()) << watch.status();
  return log.WaitFor(expected);
}

std::vector<int64_t> Revisions(const std::vector<Event>& events) {
  std::vector<int64_t> out;
  for (const Event& event : events) out.push_back(event.revision());
  return out;
}

// A loopback TCP proxy to one etcd member that a test can cut: Cut() drops every proxied
// connection and stops listening, so connects are refused; Resume() listens on the same port
// again. It stands for a network that fails between the store and etcd. LoseAnswers(n) drops
// the connections that carry the next n answers from etcd, after etcd has acted on the request:
// a connection lost at the worst moment.
class CuttableProxy {
 public:
  explicit CuttableProxy(std::string target) : target_port_(Port(target)) { Listen(0); }
  ~CuttableProxy() { Cut(); }

  std::string endpoint() const { return core::Cat("127.0.0.1:", port_); }
  bool listening() const { return listen_fd_ >= 0; }

  void Cut() {
    if (listen_fd_ >= 0) {
      shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
      acceptor_.join();
      close(listen_fd_);
      listen_fd_ = -1;
    }
    std::vector<std::thread> pumps;
    {
      absl::MutexLock lock(&mu_);
      for (int fd : fds_) shutdown(fd, SHUT_RDWR);  // wakes the pumps
      pumps.swap(pumps_);
    }
    for (std::thread& pump : pumps) pump.join();
    absl::MutexLock lock(&mu_);
    for (int fd : fds_) close(fd);
    fds_.clear();
  }

  void Resume() { Listen(port_); }
  // `after` runs once etcd's answer is in hand, before the connection drops.
  void LoseAnswers(int n, std::function<void()> after = nullptr) {
    absl::MutexLock lock(&mu_);
    after_loss_ = std::move(after);
    lose_answers_.store(n);
  }
  int lost() const { return lost_.load(); }

 private:
  static int Port(const std::string& endpoint) {
    return std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
  }

  static sockaddr_in Loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    return addr;
  }

  void Listen(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr = Loopback(port);
    socklen_t len = sizeof(addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "proxy: cannot listen on port " << port;
      close(fd);
      return;
    }
    port_ = ntohs(addr.sin_port);
    listen_fd_ = fd;
    acceptor_ = std::thread([this, fd] { Accept(fd); });
  }

  void Accept(int listen_fd) {
    for (;;) {
      int client = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;  // shut down by Cut()
      int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr = Loopback(target_port_);
      if (connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        close(client);
        close(upstream);
        continue;
      }
      absl::MutexLock lock(&mu_);
      fds_.push_back(client);
      fds_.push_back(upstream);
      pumps_.emplace_back([this, client, upstream] { Pump(client, upstream, false); });
      pumps_.emplace_back([this, client, upstream] { Pump(upstream, client, true); });
    }
  }

  void Pump(int from, int to, bool answers) {
    char buf[16 << 10];
    for (;;) {
      ssize_t n = read(from, buf, sizeof(buf));
      if (n <= 0) break;
      int left = lose_answers_.load();
      while (answers && left > 0 && !lose_answers_.compare_exchange_weak(left, left - 1)) {
      }
      if (answers && left > 0) {
        std::function<void()> after;
        {
          absl::MutexLock lock(&mu_);
          after.swap(after_loss_);
        }
        if (after) after();
        ++lost_;
        shutdown(from, SHUT_RDWR);
        shutdown(to, SHUT_RDWR);
        return;
      }
      for (ssize_t done = 0; done < n;) {
        // MSG_NOSIGNAL: a peer that went away is an error here, not a SIGPIPE.
        ssize_t w = send(to, buf + done, n - done, MSG_NOSIGNAL);
        if (w <= 0) return;
        done += w;
      }
    }
    shutdown(to, SHUT_WR);
  }

  const int target_port_;
  std::atomic<int> lose_answers_{0};
  std::atomic<int> lost_{0};
  int port_ = 0;
  int listen_fd_ = -1;
  std::thread acceptor_;
  absl::Mutex mu_;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> pumps_ ABSL_GUARDED_BY(mu_);
  std::function<void()> after_loss_ ABSL_GUARDED_BY(mu_);
};

TEST(EtcdUrlTest, ParsesOneOrMoreEndpoints) {
  EXPECT_THAT(ParseEtcdUrl("etcd://127.0.0.1:2379").value(), ElementsAre("127.0.0.1:2379"));
  EXPECT_THAT(ParseEtcdUrl("etcd://a.example:1,b.example:2,[::1]:2379").value(),
              ElementsAre("a.example:1", "b.example:2", "[::1]:2379"));
}

TEST(EtcdUrlTest, RefusesMalformedUrlsNamingThePart) {
  struct Case {
    const char* url;
    const char* says;
  };
  for (const Case& c :
       {Case{"http://127.0.0.1:2379", "must be etcd://"}, Case{"etcd://", "names no endpoint"},
        Case{"etcd://127.0.0.1", "must be HOST:PORT"},
        Case{"etcd://127.0.0.1:0", "port must be 1-65535"},
        Case{"etcd://127.0.0.1:65536", "port must be 1-65535"},
        Case{"etcd://127.0.0.1:2x", "port must be 1-65535"},
        Case{"etcd://:2379", "host must not be empty"}, Case{"etcd://a:1,,b:2", "endpoint 2"},
        Case{"etcd://a:1,", "endpoint 2"}, Case{"etcd://a:1/path", "port must be"},
        Case{"etcd://[::1:2379", "[IPV6]:PORT"}}) {
    absl::StatusOr<std::vector<std::string>> parsed = ParseEtcdUrl(c.url);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.url;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(c.says)) << c.url;
    EXPECT_EQ(OpenEtcdStore(c.url).status().code(), absl::StatusCode::kInvalidArgument) << c.url;
  }
}

class EtcdStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::EtcdCluster::Start(1);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
  }

  std::unique_ptr<testing::EtcdCluster> cluster_;
};

TEST_F(EtcdStoreTest, OpenByUrlReachesTheCluster) {
  auto store = OpenEtcdStore(core::Cat("etcd://", cluster_->endpoint(0)));
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Put("/a", "1").value(), 1);
  EXPECT_EQ((*store)->Get("/a")->kv->value, "1");
}

TEST_F(EtcdStoreTest, OpenFailsWhenNoEndpointAnswers) {
  std::string dead = DeadEndpoint();
  auto store = EtcdStore::Open({dead});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(dead));
}

TEST_F(EtcdStoreTest, FailsOverToAnEndpointThatAnswers) {
  std::string dead = DeadEndpoint();
  // The dead endpoint comes first, so every kind of call meets it.
  auto store = EtcdStore::Open({dead, cluster_->endpoint(0)});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Put("/a", "1").value(), 1);
  EXPECT_EQ((*store)->CompareAndSwap("/a", 1, "2").value(), 2);
  EXPECT_EQ((*store)->Get("/a")->kv->value, "2");
  testing::EventLog log;
  auto watch = (*store)->Watch("/a", 1, log.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status();
  EXPECT_THAT(Revisions(log.WaitFor(2)), ElementsAre(1, 2));
}

TEST_F(EtcdStoreTest, ErrorsNameTheKeyAndOperation) {
  auto store = EtcdStore::Open(cluster_->endpoints());
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<int64_t> put = (*store)->Put("/hosts/h1", "up", PutOptions{.lease = 777});
  EXPECT_EQ(put.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(put.status().message()), HasSubstr("\"/hosts/h1\""));
  EXPECT_THAT(std::string(put.status().message()), HasSubstr("777"));
  absl::Status compact = (*store)->Compact(50);
  EXPECT_EQ(compact.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(compact.message()), HasSubstr("50"));
}

TEST_F(EtcdStoreTest, LeasesExpireByTheClusterClock) {
  auto store = EtcdStore::Open(cluster_->endpoints());
  ASSERT_TRUE(store.ok()) << store.status();
  // Whole seconds, and at least etcd's minimum.
  LeaseId short_lease = (*store)->Grant(absl::Milliseconds(1500)).value();
  absl::StatusOr<LeaseInfo> info = (*store)->GetLease(short_lease);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->ttl, absl::Seconds(2));
  ASSERT_TRUE((*store)->Revoke(short_lease).ok());

  LeaseId lease = (*store)->Grant(absl::Seconds(8)).value();
  ASSERT_TRUE((*store)->Put("/hosts/a", "up", PutOptions{.lease = lease}).ok());  // 1
  ASSERT_TRUE((*store)->Put("/hosts/b", "up", PutOptions{.lease = lease}).ok());  // 2
  ASSERT_TRUE((*store)->Put("/keep", "v").ok());                                  // 3
  // On a very slow machine the lease may already be gone; expiry is what this test is about.
  absl::StatusOr<GetResponse> got = (*store)->Get("/hosts/a");
  ASSERT_TRUE(got.ok()) << got.status();
  if (got->kv.has_value()) {
    EXPECT_EQ(got->kv->lease, lease);
  }
  absl::StatusOr<LeaseInfo> attached = (*store)->GetLease(lease);
  if (attached.ok()) {
    EXPECT_THAT(attached->keys, ElementsAre("/hosts/a", "/hosts/b"));
  }

  testing::EventLog log;
  // From revision 3, so the deletes arrive however early the lease ended.
  auto watch = (*store)->Watch("/hosts/", 3, log.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status();
  // Nobody calls ExpireLeases: etcd ends the lease by itself, both keys in one revision.
  std::vector<Event> events = log.WaitFor(2, absl::Seconds(120));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, Event::Type::kDelete);
  EXPECT_EQ(events[0].revision(), 4);
  EXPECT_EQ(events[1].revision(), 4);
  EXPECT_EQ((*store)->Get("/hosts/a")->kv, std::nullopt);
  EXPECT_EQ((*store)->Get("/keep")->kv->value, "v");
  EXPECT_EQ((*store)->ExpireLeases().value(), 0);
  EXPECT_EQ((*store)->KeepAlive(lease).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*store)->GetLease(lease).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*store)->Revoke(lease).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*store)->Put("/hosts/a", "up", PutOptions{.lease = lease}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(EtcdStoreTest, KeepAliveRestartsTheTtl) {
  auto store = EtcdStore::Open(cluster_->endpoints());
  ASSERT_TRUE(store.ok()) << store.status();
  LeaseId lease = (*store)->Grant(absl::Seconds(60)).value();
  // Wait (on the condition, not a fixed time) until the remaining ttl has visibly dropped.
  absl::Duration before = absl::Seconds(60);
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (before >= absl::Seconds(59) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
    before = (*store)->GetLease(lease)->remaining;
  }
  ASSERT_LT(before, absl::Seconds(59));
  ASSERT_TRUE((*store)->KeepAlive(lease).ok());
  EXPECT_GT((*store)->GetLease(lease)->remaining, before);
  ASSERT_TRUE((*store)->Revoke(lease).ok());
}

TEST_F(EtcdStoreTest, WatchResumesAfterEtcdRestartsWithoutLossOrRepeats) {
  auto store = EtcdStore::Open(cluster_->endpoints());
  ASSERT_TRUE(store.ok()) << store.status();
  testing::EventLog log;
  auto watch = (*store)->Watch("/w/", 0, log.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*store)->Put(core::Cat("/w/", i), "a").ok());
  ASSERT_EQ(log.WaitFor(3).size(), 3u);

  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(core::Cat("restart ", round));
    ASSERT_TRUE(cluster_->Restart(0).ok());
    // Written while the watch may still be reconnecting: it must pick these up from history.
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(Eventually([&] { return (*store)->Put(core::Cat("/w/", i), "b"); }).ok());
    }
    ASSERT_TRUE(Eventually([&] { return (*store)->Delete("/w/0"); }).ok());
  }
  const size_t total = 3 + 2 * 4;
  std::vector<Event> live = log.WaitFor(total);
  std::vector<Event> history = History(**store, "/w/", total);
  ASSERT_EQ(history.size(), total);
  EXPECT_EQ(live, history);
  // Nothing beyond what happened arrives late.
  ASSERT_TRUE((*store)->Put("/w/sentinel", "x").ok());
  EXPECT_EQ(log.WaitFor(total + 1).size(), total + 1);
}

TEST_F(EtcdStoreTest, WatchResumesAfterTheConnectionDrops) {
  CuttableProxy proxy(cluster_->endpoint(0));
  auto store = EtcdStore::Open({proxy.endpoint()});
  ASSERT_TRUE(store.ok()) << store.status();
  auto direct = EtcdStore::Open(cluster_->endpoints());
  ASSERT_TRUE(direct.ok()) << direct.status();
  testing::EventLog log;
  auto watch = (*store)->Watch("/w/", 0, log.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status();
  ASSERT_TRUE((*direct)->Put("/w/a", "1").ok());  // 1
  ASSERT_EQ(log.WaitFor(1).size(), 1u);

  proxy.Cut();
  ASSERT_TRUE((*direct)->Put("/w/b", "1").ok());  // 2, while the watch is cut off
  ASSERT_TRUE((*direct)->Put("/x", "1").ok());    // 3
  ASSERT_TRUE((*direct)->Put("/w/a", "2").ok());  // 4
  proxy.Resume();
  ASSERT_TRUE(proxy.listening());
  ASSERT_TRUE((*direct)->Put("/w/c", "1").ok());  // 5
  std::vector<Event> live = log.WaitFor(4);
  EXPECT_THAT(Revisions(live), ElementsAre(1, 2, 4, 5));
  EXPECT_EQ(live, History(**direct, "/w/", 4));
}

TEST_F(EtcdStoreTest, AWriteWhoseAnswerIsLostIsResolvedOnceByReadingBack) {
  CuttableProxy proxy(cluster_->endpoint(0));
  auto store = EtcdStore::Open({proxy.endpoint()});
  ASSERT_TRUE(store.ok()) << store.status();
  auto direct = EtcdStore::Open(cluster_->endpoints());
  ASSERT_TRUE(direct.ok()) << direct.status();

  // A put without a compare: sent again, it would write twice (version 2). The read-back finds
  // it landed and answers with the revision it landed at.
  proxy.LoseAnswers(1);
  absl::StatusOr<int64_t> put = (*store)->Put("/r/a", "1");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(proxy.lost(), 1);
  absl::StatusOr<GetResponse> a = (*direct)->Get("/r/a");
  ASSERT_TRUE(a.ok() && a->kv.has_value());
  EXPECT_EQ(a->kv->version, 1);
  EXPECT_EQ(a->kv->mod_revision, *put);

  // A create that landed is a success, not "already exists".
  proxy.LoseAnswers(1);
  absl::StatusOr<int64_t> created = (*store)->CreateIfAbsent("/r/b", "1");
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(proxy.lost(), 2);

  // A create that landed and was changed by another writer before the read-back: still a
  // success, found by reading the keys as of the revisions they were written at.
  proxy.LoseAnswers(1, [&] { ASSERT_TRUE((*direct)->Put("/r/d", "2").ok()); });
  absl::StatusOr<int64_t> changed = (*store)->CreateIfAbsent("/r/d", "1");
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(proxy.lost(), 3);
  absl::StatusOr<GetResponse> d = (*direct)->Get("/r/d");
  ASSERT_TRUE(d.ok() && d->kv.has_value());
  EXPECT_EQ(d->kv->version, 2);
  EXPECT_EQ(d->kv->create_revision, *changed);

  // A compare-and-set that etcd refused is refused after the lost answer too, and changes
  // nothing.
  proxy.LoseAnswers(1);
  absl::StatusOr<TxnResponse> refused =
      (*store)->Txn(TxnRequest{.compares = {Compare::ModRevision("/r/a", a->kv->mod_revision - 1)},
                               .then_ops = {Op::Put("/r/a", "2")},
                               .else_ops = {}});
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_FALSE(refused->succeeded);
  EXPECT_EQ(proxy.lost(), 4);
  a = (*direct)->Get("/r/a");
  ASSERT_TRUE(a.ok() && a->kv.has_value());
  EXPECT_EQ(a->kv->value, "1");

  // A guarded update that landed: the same compare sent again would be refused; the read-back
  // tells the caller it succeeded.
  proxy.LoseAnswers(1);
  absl::StatusOr<TxnResponse> updated =
      (*store)->Txn(TxnRequest{.compares = {Compare::ModRevision("/r/a", a->kv->mod_revision)},
                               .then_ops = {Op::Put("/r/a", "3"), Op::Put("/r/c", "3")},
                               .else_ops = {}});
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_TRUE(updated->succeeded);
  EXPECT_EQ(proxy.lost(), 5);
  absl::StatusOr<GetResponse> c = (*direct)->Get("/r/c");
  ASSERT_TRUE(c.ok() && c->kv.has_value());
  EXPECT_EQ(updated->revision, c->kv->mod_revision);

  // A delete leaves nothing to read back: it is sent again, and the key is gone.
  proxy.LoseAnswers(1);
  ASSERT_TRUE((*store)->Delete("/r/b").ok());
  EXPECT_EQ(proxy.lost(), 6);
  absl::StatusOr<GetResponse> b = (*direct)->Get("/r/b");
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->kv.has_value());
}

TEST_F(EtcdStoreTest, AWatchWhoseResumePointWasCompactedEndsAndIsReported) {
  CuttableProxy proxy(cluster_->endpoint(0));
  auto store = EtcdStore::Open({proxy.endpoint()});
  ASSERT_TRUE(store.ok()) << store.status();
  auto direct = EtcdStore::Open(cluster_->endpoints());
  ASSERT_TRUE(direct.ok()) << direct.status();
  testing::EventLog log;
  auto watch = (*store)->Watch("/w/", 0, log.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status();
  ASSERT_TRUE((*direct)->Put("/w/a", "1").ok());  // 1
  ASSERT_EQ(log.WaitFor(1).size(), 1u);
  auto reported = [] {
    std::map<std::string, int64_t> counts = core::ErrorCounts();
    auto it = counts.find("store.etcd");
    return it == counts.end() ? int64_t{0} : it->second;
  };
  const int64_t before = reported();

  proxy.Cut();
  ASSERT_TRUE((*direct)->Put("/w/b", "1").ok());  // 2: the watch can no longer deliver it
  ASSERT_TRUE((*direct)->Put("/x", "1").ok());    // 3
  ASSERT_TRUE((*direct)->Compact(3).ok());
  proxy.Resume();
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (reported() == before && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_GT(reported(), before) << "the ended watch was not reported";
  // It delivers nothing more, rather than skip what was compacted: a sentinel watch sees a
  // later change while the ended one stays at its first event.
  testing::EventLog sentinel;
  auto sentinel_watch = (*store)->Watch("/w/", 0, sentinel.Callback());
  ASSERT_TRUE(sentinel_watch.ok()) << sentinel_watch.status();
  ASSERT_TRUE((*direct)->Put("/w/c", "1").ok());
  ASSERT_EQ(sentinel.WaitFor(1).size(), 1u);
  EXPECT_EQ(log.Snapshot().size(), 1u);
}

// Three members; the one the store talks to is killed while a watch is open.
TEST(EtcdClusterTest, ReadsWritesTxnsAndWatchesSurviveTheLossOfAMember) {
  auto cluster = testing::EtcdCluster::Start(3);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto store = EtcdStore::Open((*cluster)->endpoints());
  ASSERT_TRUE(store.ok()) << store.status();
  testing::EventLog log;
  auto watch = (*store)->Watch("/c/", 0, log.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status();
  ASSERT_TRUE((*store)->Put("/c/a", "1").ok());
  ASSERT_EQ(log.WaitFor(1).size(), 1u);

  // Requests went to the first endpoint, which answered: kill it.
  ASSERT_TRUE((*cluster)->Kill(0).ok());
  // Writes get a definite answer, though etcd may be electing a new leader.
  absl::StatusOr<int64_t> put = (*store)->Put("/c/b", "1");
  ASSERT_TRUE(put.ok()) << put.status();
  absl::StatusOr<GetResponse> get = Eventually([&] { return (*store)->Get("/c/a"); });
  ASSERT_TRUE(get.ok()) << get.status();
  int64_t a_revision = get->kv->mod_revision;
  absl::StatusOr<TxnResponse> txn =
      (*store)->Txn(TxnRequest{.compares = {Compare::ModRevision("/c/a", a_revision)},
                               .then_ops = {Op::Put("/c/a", "2"), Op::Put("/c/c", "1")},
                               .else_ops = {}});
  ASSERT_TRUE(txn.ok()) << txn.status();
  EXPECT_TRUE(txn->succeeded);
  absl::StatusOr<ListResponse> list = Eventually([&] { return (*store)->List("/c/"); });
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->kvs.size(), 3u);
  EXPECT_EQ(list->kvs[0].value, "2");

  // The watch moved to a live member and saw every change once, in order.
  absl::StatusOr<int64_t> revision = Eventually([&] { return (*store)->Revision(); });
  ASSERT_TRUE(revision.ok());
  // A fresh watch from revision 1 replays the history; the live log must match it exactly.
  testing::EventLog replay;
  auto again = (*store)->Watch("/c/", 1, replay.Callback());
  ASSERT_TRUE(again.ok()) << again.status();
  std::vector<Event> history;
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < deadline) {
    history = replay.Snapshot();
    if (!history.empty() && history.back().revision() == *revision) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_FALSE(history.empty());
  EXPECT_EQ(history.back().revision(), *revision);
  EXPECT_EQ(log.WaitFor(history.size()), history);
}

}  // namespace
}  // namespace berth::state
