#include "runtime/host/proc_stat.h"

#include <unistd.h>

#include "gtest/gtest.h"

namespace berth::runtime::host {
namespace {

TEST(ProcStatTest, ParsesANameWithSpacesAndParentheses) {
  std::string text =
      "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 5 0 123456 1000000 250 "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
  std::optional<ProcStat> st = ParseProcStat(text);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->pid, 42);
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->ppid, 1);
  EXPECT_EQ(st->pgrp, 42);
  EXPECT_EQ(st->utime_ticks, 7u);
  EXPECT_EQ(st->stime_ticks, 3u);
  EXPECT_EQ(st->threads, 5);
  EXPECT_EQ(st->start_ticks, 123456u);
  EXPECT_EQ(st->rss_pages, 250);
  EXPECT_FALSE(ParseProcStat("42 (short) S 1").has_value());
  EXPECT_FALSE(ParseProcStat("garbage").has_value());
}

TEST(ProcStatTest, ReadsItself) {
  std::optional<ProcStat> st = ReadProcStat(getpid());
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->pid, getpid());
  EXPECT_TRUE(ProcessAlive(getpid(), st->start_ticks));
  EXPECT_FALSE(ProcessAlive(getpid(), st->start_ticks + 1));
  EXPECT_TRUE(ReadThreadStat(getpid(), getpid()).has_value());
  EXPECT_FALSE(BootId().empty());
}

}  // namespace
}  // namespace berth::runtime::host
