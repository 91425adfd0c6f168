// The command framework: parsing, refusals that name the flag, help from the declarations.
#include "core/flags.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::core {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Result {
  int code = -1;
  std::string out, err;
  std::string seen;  // what the command saw, as the test's command wrote it
};

Command TestRoot(std::string* seen) {
  auto show = [seen](Invocation& inv) {
    std::ostringstream s;
    s << inv.path() << "|size=" << inv.String("size") << "|n=" << inv.Int("count")
      << "|wait=" << absl::FormatDuration(inv.Duration("wait")) << "|quick=" << inv.Bool("quick")
      << "|mode=" << inv.String("mode") << "|tags=";
    for (const auto& t : inv.List("tag")) s << t << ",";
    s << "|args=";
    for (const auto& a : inv.args()) s << a << ",";
    s << "|json=" << inv.json();
    *seen = s.str();
    return inv.Given("fail") ? inv.Fail("it went wrong") : kExitOk;
  };
  Command root{.name = "berth", .flags = GlobalFlags()};
  root.subcommands = {
      Command{
          .name = "disk",
          .section = "Storage",
          .summary = "disks",
          .flags = {{.name = "server", .help = "the server", .value_name = "URL"}},
          .subcommands = {Command{
                              .name = "create",
                              .summary = "make a disk",
                              .flags = {{.name = "size",
                                         .type = FlagType::kSize,
                                         .help = "how big",
                                         .default_value = "1Gi"},
                                        {.name = "count",
                                         .type = FlagType::kInt,
                                         .help = "copies",
                                         .default_value = "1",
                                         .min = 1,
                                         .max = 8},
                                        {.name = "wait",
                                         .type = FlagType::kDuration,
                                         .help = "how long to wait"},
                                        {.name = "quick",
                                         .type = FlagType::kBool,
                                         .help = "skip zeroing",
                                         .short_name = 'q'},
                                        {.name = "mode",
                                         .type = FlagType::kEnum,
                                         .help = "format",
                                         .default_value = "qcow2",
                                         .choices = {"qcow2", "raw"}},
                                        {.name = "tag", .type = FlagType::kList, .help = "labels"},
                                        {.name = "fail", .type = FlagType::kBool, .help = "fail"}},
                              .args = {{.name = "NAME", .help = "the disk's name"}},
                              .run = show},
                          Command{.name = "ls",
                                  .aliases = {"list"},
                                  .summary = "list disks",
                                  .run = show}}},
      Command{.name = "exec",
              .summary = "run a command",
              .flags = {{.name = "timeout", .type = FlagType::kDuration, .help = "limit"}},
              .args = {{.name = "NAME"}, {.name = "CMD", .rest = true}},
              .verbatim_rest = true,
              .run = show}};
  return root;
}

Result Berth(std::vector<std::string> args) {
  Result r;
  Command root = TestRoot(&r.seen);
  std::ostringstream out, err;
  r.code = Run(root, args, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

TEST(FlagsTest, ParsesEveryTypeWithDefaults) {
  Result r = Berth({"disk", "create", "d1", "--size=2Gi", "--count", "3", "--wait", "1m30s", "-q",
                    "--mode", "raw", "--tag", "a", "--tag=b", "--json"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.seen,
            "berth disk create|size=2Gi|n=3|wait=1m30s|quick=1|mode=raw|tags=a,b,|args=d1,|json=1");
  r = Berth({"disk", "create", "d1", "--json", "--json"});  // a switch twice is harmless
  EXPECT_EQ(r.code, kExitOk) << r.err;
  r = Berth({"disk", "create", "d1"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.seen,
            "berth disk create|size=1Gi|n=1|wait=0|quick=0|mode=qcow2|tags=|args=d1,|json=0");
  // Aliases, group flags before the command, global flags anywhere.
  r = Berth({"--json", "disk", "--server", "x", "list"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_THAT(r.seen, HasSubstr("berth disk ls|"));
}

TEST(FlagsTest, AnUnknownFlagIsRefusedWithItsNameAndExitTwo) {
  Result r = Berth({"disk", "create", "d1", "--sise", "1Gi"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_EQ(r.err, "berth disk create: unknown flag --sise; see berth disk create --help\n");
  EXPECT_TRUE(r.seen.empty());
  r = Berth({"disk", "ls", "-x"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("unknown flag -x"));
}

TEST(FlagsTest, AMisplacedFlagSaysWhereItBelongs) {
  // A command's flag before the command it belongs to.
  Result r = Berth({"disk", "--size", "1Gi", "create", "d1"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("--size"));
  EXPECT_THAT(r.err, HasSubstr("berth disk create"));
  // Another command's flag.
  r = Berth({"disk", "ls", "--size", "1Gi"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("unknown flag --size (it is a flag of berth disk create)"));
}

TEST(FlagsTest, BadValuesAreRefusedNamingTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"disk", "create", "d", "--count", "many"}, "--count must be an integer"},
           {{"disk", "create", "d", "--count", "9"}, "--count must be an integer between 1 and 8"},
           {{"disk", "create", "d", "--wait", "soon"}, "--wait must be a duration"},
           {{"disk", "create", "d", "--size", "big"}, "--size must be a size"},
           {{"disk", "create", "d", "--mode", "vhd"}, "--mode must be qcow2 or raw, got \"vhd\""},
           {{"disk", "create", "d", "--quick=maybe"}, "--quick must be true or false"},
           {{"disk", "create", "d", "--count"}, "flag --count needs a value"},
           {{"disk", "create", "d", "--count", "1", "--count=2"}, "--count given twice"},
           {{"--log-level", "loud", "disk", "ls"}, "--log-level must be debug, info, warn, error"},
       }) {
    Result r = Berth(c.args);
    EXPECT_EQ(r.code, kExitUsage) << c.message;
    EXPECT_THAT(r.err, HasSubstr(c.message));
    EXPECT_TRUE(r.seen.empty()) << c.message;
  }
}

TEST(FlagsTest, ArgumentsAndCommandsAreChecked) {
  Result r = Berth({"disk", "create"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("missing NAME"));
  r = Berth({"disk", "create", "a", "b"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("unexpected argument \"b\""));
  r = Berth({"disk", "frob"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("berth disk: unknown command \"frob\""));
  // A group alone prints its help as a usage error.
  r = Berth({"disk"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("Usage: berth disk COMMAND"));
  EXPECT_EQ(Berth({}).code, kExitUsage);
}

TEST(FlagsTest, ExitCodesAreUniform) {
  EXPECT_EQ(Berth({"disk", "create", "d"}).code, kExitOk);
  Result failed = Berth({"disk", "create", "d", "--fail"});
  EXPECT_EQ(failed.code, kExitFailure);
  EXPECT_EQ(failed.err, "berth disk create: it went wrong\n");
  Result json = Berth({"disk", "create", "d", "--fail", "--json"});
  EXPECT_EQ(json.code, kExitFailure);
  EXPECT_EQ(json.err, "{\"error\":\"it went wrong\"}\n");
  EXPECT_EQ(Berth({"disk", "create", "d", "--nope"}).code, kExitUsage);
}

TEST(FlagsTest, VerbatimRestKeepsTheCommandsFlags) {
  Result r = Berth({"exec", "w1", "--timeout", "5s", "ls", "-la", "--json"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_THAT(r.seen, HasSubstr("|args=w1,ls,-la,--json,|json=0"));
  r = Berth({"exec", "w1", "--", "-x"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_THAT(r.seen, HasSubstr("|args=w1,-x,|"));
  r = Berth({"exec", "w1", "-la"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("unknown flag -la"));
  EXPECT_EQ(Berth({"exec", "w1"}).code, kExitUsage);  // CMD is required
}

TEST(FlagsTest, HelpIsRenderedFromTheDeclarations) {
  Result r = Berth({"disk", "create", "--help"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_TRUE(r.seen.empty());
  for (const char* text : {"Usage: berth disk create NAME [FLAGS]", "make a disk", "NAME",
                           "the disk's name", "--size SIZE", "how big (default 1Gi)", "--count N",
                           "--mode qcow2|raw", "-q, --quick", "--server URL", "Global flags:",
                           "--json", "--log-level", "--log-file FILE", "-h, --help"}) {
    EXPECT_THAT(r.out, HasSubstr(text)) << r.out;
  }
  Result group = Berth({"disk", "-h"});
  EXPECT_EQ(group.code, kExitOk);
  EXPECT_THAT(group.out, HasSubstr("Usage: berth disk COMMAND [FLAGS]"));
  EXPECT_THAT(group.out, HasSubstr("disk create NAME"));
  EXPECT_THAT(group.out, HasSubstr("disk ls"));
  EXPECT_THAT(group.out, Not(HasSubstr("--size")));
  Result root = Berth({"--help"});
  EXPECT_EQ(root.code, kExitOk);
  EXPECT_THAT(root.out, HasSubstr("Storage:"));
  EXPECT_THAT(root.out, HasSubstr("disk create|ls"));
  EXPECT_THAT(root.out, HasSubstr("Exit codes: 0 success, 1 failure"));
  // `help PATH` is `PATH --help`.
  EXPECT_EQ(Berth({"help", "disk", "create"}).out, r.out);
}

}  // namespace
}  // namespace berth::core
