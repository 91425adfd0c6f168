#include "state/repository.h"

#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::state {
namespace {

struct Widget {
  std::string image;
  int replicas = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Widget, image, replicas)

class RepositoryTest : public ::testing::Test {
 protected:
  MemoryStore store_{StoreOptions{.lease_tick_interval = absl::ZeroDuration()}};
  Repository<Widget> widgets_{&store_, "widget", "/widgets/"};
};

TEST_F(RepositoryTest, CreateGetList) {
  EXPECT_EQ(widgets_.Create("b", Widget{"img:2", 2}).value(), 1);
  EXPECT_EQ(widgets_.Create("a", Widget{"img:1", 1}).value(), 2);
  absl::StatusOr<int64_t> again = widgets_.Create("a", Widget{});
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(again.status().message(), "widget \"a\": already exists");
  ASSERT_TRUE(store_.Put("/other/x", "{}").ok());

  absl::StatusOr<Repository<Widget>::Item> a = widgets_.Get("a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->name, "a");
  EXPECT_EQ(a->value.image, "img:1");
  EXPECT_EQ(a->mod_revision, 2);
  EXPECT_EQ(store_.Get("/widgets/a").value().kv->value, R"({"image":"img:1","replicas":1})");

  absl::Status missing = widgets_.Get("zzz").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.message(), "widget \"zzz\": not found");

  absl::StatusOr<Repository<Widget>::ListResult> list = widgets_.List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 2u);
  EXPECT_EQ(list->items[0].name, "a");
  EXPECT_EQ(list->items[1].name, "b");
  EXPECT_EQ(list->items[1].value.replicas, 2);
  EXPECT_EQ(list->revision, 3);
}

TEST_F(RepositoryTest, UpdateGuardsAgainstConcurrentWriters) {
  int64_t revision = widgets_.Create("a", Widget{"img", 1}).value();
  int64_t next = widgets_.Update("a", Widget{"img", 2}, revision).value();
  EXPECT_GT(next, revision);
  absl::StatusOr<int64_t> stale = widgets_.Update("a", Widget{"img", 3}, revision);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(widgets_.Get("a")->value.replicas, 2);
  EXPECT_EQ(widgets_.Update("nope", Widget{}, 5).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RepositoryTest, MutateRetriesUntilItWins) {
  ASSERT_TRUE(widgets_.Create("a", Widget{"img", 0}).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        auto result = widgets_.Mutate(
            "a",
            [](Widget& w) {
              ++w.replicas;
              return absl::OkStatus();
            },
            MutateOptions{.max_attempts = 1000});
        ASSERT_TRUE(result.ok()) << result.status();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(widgets_.Get("a")->value.replicas, 200);

  int64_t before = store_.Revision().value();
  absl::StatusOr<Repository<Widget>::Item> refused = widgets_.Mutate(
      "a", [](Widget&) { return absl::FailedPreconditionError("widget \"a\": frozen"); });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_.Revision().value(), before);
  EXPECT_EQ(widgets_.Mutate("nope", [](Widget&) { return absl::OkStatus(); }).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RepositoryTest, Delete) {
  int64_t revision = widgets_.Create("a", Widget{}).value();
  ASSERT_TRUE(widgets_.Create("b", Widget{}).ok());
  EXPECT_EQ(widgets_.Delete("a", revision + 100).code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(widgets_.Delete("a", revision).ok());
  EXPECT_TRUE(widgets_.Delete("b").ok());
  EXPECT_EQ(widgets_.Delete("b").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(widgets_.Delete("b", 7).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(widgets_.List()->items.empty());
}

TEST_F(RepositoryTest, UndecodableValueIsDataLoss) {
  ASSERT_TRUE(store_.Put("/widgets/bad", "not json").ok());
  ASSERT_TRUE(store_.Put("/widgets/wrong", R"({"image": 5})").ok());
  EXPECT_EQ(widgets_.Get("bad").status().code(), absl::StatusCode::kDataLoss);
  absl::Status wrong = widgets_.Get("wrong").status();
  EXPECT_EQ(wrong.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(wrong.message()), ::testing::HasSubstr("widget \"wrong\""));
  EXPECT_EQ(widgets_.List().status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(RepositoryTest, ListCanSkipUndecodableEntriesAndSayWhich) {
  ASSERT_TRUE(widgets_.Create("good", Widget{"img", 1}).ok());
  ASSERT_TRUE(store_.Put("/widgets/wrong", R"({"image": 5})").ok());
  std::vector<absl::Status> undecodable;
  auto list = widgets_.List(&undecodable);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(list->items[0].name, "good");
  ASSERT_EQ(undecodable.size(), 1u);
  EXPECT_EQ(undecodable[0].code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(undecodable[0].message()), ::testing::HasSubstr("widget \"wrong\""));
}

TEST_F(RepositoryTest, FindSaysAbsentWithoutAnError) {
  auto none = widgets_.Find("a");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(widgets_.Create("a", Widget{"img", 3}).ok());
  auto found = widgets_.Find("a");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->value.replicas, 3);
}

// Two objects and a third key commit together, or not at all when one guard fails.
TEST_F(RepositoryTest, AddMethodsBuildOneTransaction) {
  int64_t a_rev = widgets_.Create("a", Widget{"img", 1}).value();
  TxnRequest txn;
  ASSERT_TRUE(widgets_.AddUpdate(&txn, "a", Widget{"img", 2}, a_rev).ok());
  ASSERT_TRUE(widgets_.AddCreate(&txn, "b", Widget{"img", 1}).ok());
  txn.then_ops.push_back(Op::Put("/log/1", "a and b"));
  auto committed = store_.Txn(txn);
  ASSERT_TRUE(committed.ok() && committed->succeeded);
  EXPECT_EQ(widgets_.Get("a")->value.replicas, 2);
  EXPECT_TRUE(store_.Get("/log/1")->kv.has_value());

  // `a` moved on since a_rev: nothing of this one lands.
  TxnRequest stale;
  widgets_.AddDelete(&stale, "b", widgets_.Get("b")->mod_revision);
  ASSERT_TRUE(widgets_.AddUpdate(&stale, "a", Widget{"img", 9}, a_rev).ok());
  stale.then_ops.push_back(Op::Put("/log/2", "never"));
  auto refused = store_.Txn(stale);
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE(refused->succeeded);
  EXPECT_TRUE(widgets_.Find("b")->has_value());
  EXPECT_EQ(widgets_.Get("a")->value.replicas, 2);
  EXPECT_FALSE(store_.Get("/log/2")->kv.has_value());
}

// AddWrite guards a record read as absent (revision 0) by its absence, and one read at a
// revision by that revision: a second writer from the same reading loses either way.
TEST_F(RepositoryTest, AddWriteCreatesOrUpdatesFromWhatWasRead) {
  TxnRequest first;
  ASSERT_TRUE(widgets_.AddWrite(&first, "a", Widget{"img", 1}, 0).ok());
  auto created = store_.Txn(first);
  ASSERT_TRUE(created.ok() && created->succeeded);
  TxnRequest also_from_absent;
  ASSERT_TRUE(widgets_.AddWrite(&also_from_absent, "a", Widget{"img", 5}, 0).ok());
  auto lost = store_.Txn(also_from_absent);
  ASSERT_TRUE(lost.ok());
  EXPECT_FALSE(lost->succeeded);

  int64_t rev = widgets_.Get("a")->mod_revision;
  TxnRequest update;
  ASSERT_TRUE(widgets_.AddWrite(&update, "a", Widget{"img", 2}, rev).ok());
  auto updated = store_.Txn(update);
  ASSERT_TRUE(updated.ok() && updated->succeeded);
  TxnRequest stale;
  ASSERT_TRUE(widgets_.AddWrite(&stale, "a", Widget{"img", 9}, rev).ok());
  auto refused = store_.Txn(stale);
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE(refused->succeeded);
  EXPECT_EQ(widgets_.Get("a")->value.replicas, 2);
}

// A codec whose decoder returns a status (rather than throwing) names the field in the
// repository's DataLoss message.
struct StrictWidgetCodec {
  static absl::StatusOr<nlohmann::json> Encode(const Widget& w) {
    return nlohmann::json{{"image", w.image}, {"replicas", w.replicas}};
  }
  static absl::StatusOr<Widget> Decode(const nlohmann::json& j) {
    if (!j.contains("replicas") || !j["replicas"].is_number_integer()) {
      return absl::InvalidArgumentError("replicas must be an integer");
    }
    return Widget{j.value("image", ""), j["replicas"].get<int>()};
  }
};

TEST_F(RepositoryTest, ACustomCodecsErrorsAreKept) {
  Repository<Widget, StrictWidgetCodec> strict{&store_, "widget", "/widgets/"};
  ASSERT_TRUE(strict.Create("a", Widget{"img", 4}).ok());
  EXPECT_EQ(strict.Get("a")->value.replicas, 4);
  ASSERT_TRUE(store_.Put("/widgets/b", R"({"image":"x","replicas":"two"})").ok());
  absl::Status b = strict.Get("b").status();
  EXPECT_EQ(b.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(b.message()), ::testing::HasSubstr("widget \"b\""));
  EXPECT_THAT(std::string(b.message()), ::testing::HasSubstr("replicas must be an integer"));
}

}  // namespace
}  // namespace berth::state
