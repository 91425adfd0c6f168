// The one command framework of the `berth` binary: every command and group declares its flags
// (type, default, help) and positional arguments; Run parses a command line against that tree,
// refuses unknown, misplaced and malformed flags naming the flag, and renders --help from the
// declarations. Exit codes are the same for every command: kExitOk, kExitFailure, kExitUsage.
//
// A flag declared on a group applies to every command below it; the root's flags are global.
// Thread-safety: a Command tree is a plain value; Run keeps its state on the stack.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace berth::core {

inline constexpr int kExitOk = 0;       // the command did what was asked
inline constexpr int kExitFailure = 1;  // it could not (the server said no, a file is missing)
inline constexpr int kExitUsage = 2;    // the command line is wrong: nothing was attempted

enum class FlagType {
  kString,
  kInt,       // a whole number within [min, max]
  kBool,      // --name or --name=true|false; takes no separate value
  kDuration,  // 15s, 1m30s, 2h
  kSize,      // a byte quantity: 64Mi, 40Gi, 1073741824
  kList,      // may be given many times; each value is kept
  kEnum,      // one of `choices`
};

struct FlagDef {
  std::string name;  // the long name, without "--"
  FlagType type = FlagType::kString;
  std::string help;
  std::string default_value;         // as text; shown in --help when not empty
  std::string value_name;            // the placeholder in --help ("FILE"); by default from the type
  char short_name = 0;               // e.g. 'f' for -f
  std::vector<std::string> choices;  // kEnum
  int64_t min = INT64_MIN;           // kInt
  int64_t max = INT64_MAX;
  bool required = false;
  // Further checks of a given value; the message follows "--name: ".
  std::function<absl::Status(std::string_view)> check;
};

struct ArgDef {
  std::string name;  // "NAME", as --help shows it
  std::string help;
  bool optional = false;
  bool rest = false;  // takes every remaining argument; at least one unless optional
};

class Invocation;
using RunFn = std::function<int(Invocation&)>;

struct Command {
  std::string name;
  std::vector<std::string> aliases;
  std::string section;      // the heading its parent's --help lists it under
  std::string summary;      // one line in its parent's --help
  std::string synopsis;     // overrides the generated "NAME [FLAGS]" after the command's path
  std::string description;  // paragraphs after the usage line
  std::vector<FlagDef> flags;
  std::vector<ArgDef> args;
  // Once the declared arguments before the `rest` one are in, the first argument that is not a
  // flag of ours starts the rest, flags and all: `workload exec NAME ls -la`.
  bool verbatim_rest = false;
  RunFn run;                         // empty for a group
  std::vector<Command> subcommands;  // a group's commands
  // On the root only: runs before any command, after parsing (logging, say). A non-zero return
  // ends the program with that code.
  RunFn before_run;
};

// What a command is given: its flags' values (or their defaults), its arguments, the output
// streams, and the helpers every command reports through.
class Invocation {
 public:
  Invocation(std::string path, std::ostream& out, std::ostream& err)
      : path_(std::move(path)), out_(out), err_(err) {}

  // "berth disk create".
  const std::string& path() const { return path_; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

  // True when the flag was on the command line.
  bool Given(std::string_view name) const;
  // The value given, else the declared default. Kinds other than the declared type are a bug.
  std::string String(std::string_view name) const;
  int64_t Int(std::string_view name) const;
  bool Bool(std::string_view name) const;
  absl::Duration Duration(std::string_view name) const;
  std::vector<std::string> List(std::string_view name) const;
  // --json, on every command.
  bool json() const { return Bool("json"); }

  // The positional arguments in order (the `rest` ones included), and one by declared name.
  const std::vector<std::string>& args() const { return args_; }
  std::string Arg(std::string_view name) const;
  std::vector<std::string> Rest() const;

  // Prints "PATH: MESSAGE" (or {"error": MESSAGE} with --json) to err; returns kExitFailure.
  int Fail(std::string_view message);
  // Prints "PATH: MESSAGE; see PATH --help" to err; returns kExitUsage.
  int UsageError(std::string_view message);

 private:
  friend int Run(const Command&, const std::vector<std::string>&, std::ostream&, std::ostream&);
  std::string path_;
  std::ostream& out_;
  std::ostream& err_;
  std::map<std::string, const FlagDef*, std::less<>> defs_;
  std::map<std::string, std::vector<std::string>, std::less<>> values_;
  std::vector<std::string> args_;
  std::vector<const ArgDef*> arg_defs_;
};

// The flags every command takes, declared on the root: --json, --log-level, --log-file.
std::vector<FlagDef> GlobalFlags();

// Parses `args` (without the program name) against `root` and runs the command they name.
// Returns its exit code; usage errors return kExitUsage with the flag or command named.
int Run(const Command& root, const std::vector<std::string>& args, std::ostream& out,
        std::ostream& err);

// The --help text of the command at `path` below `root` ({} is the root itself).
std::string HelpText(const Command& root, const std::vector<std::string>& path);

}  // namespace berth::core
