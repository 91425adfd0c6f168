#include "core/flags.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <iostream>

#include "core/json.h"
#include "core/quantity.h"
#include "core/strings.h"

namespace berth::core {
namespace {

// The flags in scope at one command: its own and its ancestors'. Ancestors come first, so a
// command's own declaration of a name wins.
struct Scope {
  std::map<std::string, const FlagDef*, std::less<>> by_name;
  std::map<char, const FlagDef*> by_short;

  void Add(const Command& c) {
    for (const FlagDef& f : c.flags) {
      by_name[f.name] = &f;
      if (f.short_name != 0) by_short[f.short_name] = &f;
    }
  }
  const FlagDef* Find(std::string_view token) const {
    if (token.size() == 2 && token[0] == '-' && token[1] != '-') {
      auto it = by_short.find(token[1]);
      return it == by_short.end() ? nullptr : it->second;
    }
    if (token.rfind("--", 0) != 0) return nullptr;
    auto it = by_name.find(token.substr(2));
    return it == by_name.end() ? nullptr : it->second;
  }
};

bool IsFlagToken(std::string_view a) { return a.size() > 1 && a[0] == '-'; }
bool IsHelp(std::string_view a) { return a == "--help" || a == "-h"; }

const Command* FindChild(const Command& group, std::string_view name) {
  for (const Command& c : group.subcommands) {
    if (c.name == name) return &c;
    if (std::find(c.aliases.begin(), c.aliases.end(), name) != c.aliases.end()) return &c;
  }
  return nullptr;
}

std::string JoinPath(const std::vector<const Command*>& chain) {
  std::string path;
  for (const Command* c : chain) path += (path.empty() ? "" : " ") + c->name;
  return path;
}

// Every command below `node` (itself included) that declares a flag spelled `token`.
void FindDeclarers(const Command& node, const std::string& path, std::string_view token,
                   std::vector<std::string>* found) {
  for (const FlagDef& f : node.flags) {
    bool match = (token.rfind("--", 0) == 0 && token.substr(2) == f.name) ||
                 (token.size() == 2 && f.short_name != 0 && token[1] == f.short_name);
    if (match) {
      found->push_back(path);
      break;
    }
  }
  for (const Command& c : node.subcommands) FindDeclarers(c, path + " " + c.name, token, found);
}

std::string QuoteList(const std::vector<std::string>& items) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) {
    s += (i == 0 ? "" : i + 1 == items.size() ? " or " : ", ") + items[i];
  }
  return s;
}

absl::Status CheckValue(const FlagDef& f, std::string_view v) {
  auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(Cat("--", f.name, " must be ", what, ", got \"", v, "\""));
  };
  switch (f.type) {
    case FlagType::kInt: {
      int64_t n = 0;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (v.empty() || ec != std::errc() || ptr != v.data() + v.size()) {
        return bad("an integer");
      }
      if (n < f.min || n > f.max) {
        if (f.max == INT64_MAX) return bad(Cat("an integer of at least ", f.min));
        return bad(Cat("an integer between ", f.min, " and ", f.max));
      }
      break;
    }
    case FlagType::kBool:
      if (v != "true" && v != "false") return bad("true or false");
      break;
    case FlagType::kDuration: {
      absl::Duration d;
      if (!absl::ParseDuration(std::string(v), &d) || d < absl::ZeroDuration()) {
        return bad("a duration like 30s, 5m or 1h30m");
      }
      break;
    }
    case FlagType::kSize:
      if (!ParseSizeMiB(v).ok()) return bad("a size like 512Mi, 10Gi or 1073741824");
      break;
    case FlagType::kEnum:
      if (std::find(f.choices.begin(), f.choices.end(), v) == f.choices.end()) {
        return bad(QuoteList(f.choices));
      }
      break;
    case FlagType::kString:
    case FlagType::kList:
      break;
  }
  if (f.check) {
    absl::Status s = f.check(v);
    if (!s.ok()) {
      std::string message(s.message());
      // A check that already names the flag is left as it is.
      if (message.find(Cat("--", f.name)) == std::string::npos) {
        message = Cat("--", f.name, ": ", message);
      }
      return absl::InvalidArgumentError(message);
    }
  }
  return absl::OkStatus();
}

std::string ValueName(const FlagDef& f) {
  if (!f.value_name.empty()) return f.value_name;
  switch (f.type) {
    case FlagType::kInt:
      return "N";
    case FlagType::kBool:
      return "";
    case FlagType::kDuration:
      return "DURATION";
    case FlagType::kSize:
      return "SIZE";
    case FlagType::kEnum: {
      std::string s;
      for (const std::string& c : f.choices) s += (s.empty() ? "" : "|") + c;
      return s;
    }
    case FlagType::kString:
    case FlagType::kList:
      break;
  }
  return "VALUE";
}

std::string FlagColumn(const FlagDef& f) {
  std::string s =
      f.short_name != 0 ? Cat("-", f.short_name, ", --", f.name) : Cat("    --", f.name);
  std::string v = ValueName(f);
  if (!v.empty()) s += " " + v;
  return s;
}

// "  LEFT   help" with the help column aligned; a long left side puts the help on its own line.
void Rows(std::string& out, const std::vector<std::pair<std::string, std::string>>& rows) {
  size_t width = 0;
  for (const auto& [left, help] : rows) {
    if (left.size() <= 30) width = std::max(width, left.size());
  }
  for (const auto& [left, help] : rows) {
    out += "  " + left;
    if (help.empty()) {
      out += "\n";
      continue;
    }
    std::string indent(width + 4, ' ');
    if (left.size() > width) {
      out += "\n" + indent;
    } else {
      out += std::string(width - left.size() + 2, ' ');
    }
    // Continuation lines of a multi-line help keep the column.
    for (char c : help) {
      out += c;
      if (c == '\n') out += indent;
    }
    out += "\n";
  }
}

void FlagRows(std::string& out, const std::vector<const FlagDef*>& flags) {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const FlagDef* f : flags) {
    std::string help = f->help;
    if (f->required) help += " (required)";
    if (!f->default_value.empty()) help += Cat(" (default ", f->default_value, ")");
    if (f->type == FlagType::kList) help += " (repeatable)";
    rows.emplace_back(FlagColumn(*f), help);
  }
  Rows(out, rows);
}

std::string ArgsSynopsis(const Command& c) {
  if (!c.synopsis.empty()) return c.synopsis;
  std::string s;
  for (const ArgDef& a : c.args) {
    std::string one = a.rest ? a.name + "..." : a.name;
    if (a.optional) one = "[" + one + "]";
    s += (s.empty() ? "" : " ") + one;
  }
  for (const FlagDef& f : c.flags) {
    if (!f.required) continue;
    s += Cat(s.empty() ? "" : " ", "--", f.name, " ", ValueName(f));
  }
  return s;
}

// The leaves below `c` as "path synopsis" rows, `prefix` being c's path without the program.
void LeafRows(const Command& c, const std::string& prefix,
              std::vector<std::pair<std::string, std::string>>* rows) {
  if (c.subcommands.empty()) {
    std::string syn = ArgsSynopsis(c);
    rows->emplace_back(prefix + (syn.empty() ? "" : " " + syn), c.summary);
    return;
  }
  for (const Command& s : c.subcommands) LeafRows(s, prefix + " " + s.name, rows);
}

std::string Help(const std::vector<const Command*>& chain) {
  const Command& c = *chain.back();
  const std::string path = JoinPath(chain);
  const bool root = chain.size() == 1;
  std::string out;
  if (c.subcommands.empty()) {
    std::string syn = ArgsSynopsis(c);
    out += Cat("Usage: ", path, syn.empty() ? "" : " ", syn, " [FLAGS]\n");
  } else {
    out += Cat("Usage: ", path, " COMMAND [FLAGS]\n");
  }
  if (!c.summary.empty()) out += "\n" + c.summary + "\n";
  if (!c.description.empty())
    out += "\n" + c.description + (c.description.back() == '\n' ? "" : "\n");

  std::vector<std::pair<std::string, std::string>> arg_rows;
  for (const ArgDef& a : c.args) {
    if (!a.help.empty()) arg_rows.emplace_back(a.name, a.help);
  }
  if (!arg_rows.empty()) {
    out += "\nArguments:\n";
    Rows(out, arg_rows);
  }

  if (!c.subcommands.empty()) {
    // Commands grouped under their sections, in the order the sections first appear.
    std::vector<std::string> sections;
    for (const Command& s : c.subcommands) {
      if (std::find(sections.begin(), sections.end(), s.section) == sections.end()) {
        sections.push_back(s.section);
      }
    }
    for (const std::string& section : sections) {
      out += "\n" + (section.empty() ? std::string("Commands") : section) + ":\n";
      std::vector<std::pair<std::string, std::string>> rows;
      for (const Command& s : c.subcommands) {
        if (s.section != section) continue;
        if (root) {
          std::string subs;
          for (const Command& g : s.subcommands) subs += (subs.empty() ? "" : "|") + g.name;
          std::string left = s.name + (subs.empty() ? "" : " " + subs);
          if (subs.empty() && !ArgsSynopsis(s).empty()) left += " " + ArgsSynopsis(s);
          rows.emplace_back(left, s.summary);
        } else {
          LeafRows(s, JoinPath({chain.begin() + 1, chain.end()}) + " " + s.name, &rows);
        }
      }
      Rows(out, rows);
    }
  }

  // The command's own and its groups' flags, then the global ones; a name declared twice shows
  // the innermost declaration.
  std::vector<const FlagDef*> local, global;
  std::vector<std::string> seen;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    for (const FlagDef& f : (*it)->flags) {
      if (std::find(seen.begin(), seen.end(), f.name) != seen.end()) continue;
      seen.push_back(f.name);
      (*it == chain.front() ? global : local).push_back(&f);
    }
  }
  static const FlagDef kHelp = {
      .name = "help", .type = FlagType::kBool, .help = "show this help", .short_name = 'h'};
  global.push_back(&kHelp);
  if (!local.empty()) {
    out += "\nFlags:\n";
    FlagRows(out, local);
  }
  out += root ? "\nFlags (every command takes these):\n" : "\nGlobal flags:\n";
  FlagRows(out, global);
  if (!c.subcommands.empty()) {
    out += Cat("\nRun `", path, " COMMAND --help` for a command's arguments and flags.\n");
  }
  if (root) {
    out +=
        "\nExit codes: 0 success, 1 failure (the message says why), 2 usage error (a wrong "
        "command,\nflag or value; nothing was done).\n";
  }
  return out;
}

}  // namespace

std::vector<FlagDef> GlobalFlags() {
  return {{.name = "json", .type = FlagType::kBool, .help = "print results (and errors) as JSON"},
          {.name = "log-level",
           .type = FlagType::kEnum,
           .help = "the least severe log lines written",
           .default_value = "info",
           .choices = {"debug", "info", "warn", "error", "off"}},
          {.name = "log-file", .help = "also append log lines to FILE", .value_name = "FILE"}};
}

bool Invocation::Given(std::string_view name) const { return values_.count(name) > 0; }

std::string Invocation::String(std::string_view name) const {
  if (auto it = values_.find(name); it != values_.end() && !it->second.empty()) {
    return it->second.back();
  }
  if (auto it = defs_.find(name); it != defs_.end()) return it->second->default_value;
  return "";
}

int64_t Invocation::Int(std::string_view name) const {
  std::string v = String(name);
  int64_t n = 0;
  std::from_chars(v.data(), v.data() + v.size(), n);
  return n;
}

bool Invocation::Bool(std::string_view name) const { return String(name) == "true"; }

absl::Duration Invocation::Duration(std::string_view name) const {
  absl::Duration d = absl::ZeroDuration();
  std::string v = String(name);
  if (!v.empty() && !absl::ParseDuration(v, &d)) d = absl::ZeroDuration();
  return d;
}

std::vector<std::string> Invocation::List(std::string_view name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  return {};
}

std::string Invocation::Arg(std::string_view name) const {
  for (size_t i = 0; i < arg_defs_.size() && i < args_.size(); ++i) {
    if (arg_defs_[i]->name == name && !arg_defs_[i]->rest) return args_[i];
  }
  return "";
}

std::vector<std::string> Invocation::Rest() const {
  for (size_t i = 0; i < arg_defs_.size(); ++i) {
    if (arg_defs_[i]->rest) {
      return i < args_.size() ? std::vector<std::string>(args_.begin() + i, args_.end())
                              : std::vector<std::string>();
    }
  }
  return {};
}

int Invocation::Fail(std::string_view message) {
  if (json()) {
    err_ << Json{{"error", std::string(message)}}.dump() << "\n";
  } else {
    err_ << path_ << ": " << message << "\n";
  }
  return kExitFailure;
}

int Invocation::UsageError(std::string_view message) {
  err_ << path_ << ": " << message << "; see " << path_ << " --help\n";
  return kExitUsage;
}

int Run(const Command& root, const std::vector<std::string>& args, std::ostream& out,
        std::ostream& err) {
  std::vector<const Command*> chain = {&root};
  Scope scope;
  scope.Add(root);
  std::map<std::string, std::vector<std::string>, std::less<>> values;
  std::vector<std::string> positional;
  bool help = false;
  auto usage = [&](std::string_view message) {
    std::string path = JoinPath(chain);
    err << path << ": " << message << "; see " << path << " --help\n";
    return kExitUsage;
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const Command& node = *chain.back();
    const bool group = !node.subcommands.empty();
    if (a == "--") {
      if (group) return usage("`--` before a command");
      positional.insert(positional.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (!group && node.verbatim_rest && !IsFlagToken(a)) {
      size_t fixed = 0;
      for (const ArgDef& d : node.args) fixed += d.rest ? 0 : 1;
      if (positional.size() >= fixed) {
        positional.insert(positional.end(), args.begin() + i, args.end());
        break;
      }
    }
    if (IsFlagToken(a)) {
      std::string token = a;
      std::string value;
      bool has_value = false;
      if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
        token = a.substr(0, eq);
        value = a.substr(eq + 1);
        has_value = true;
      }
      if (IsHelp(token)) {
        help = true;
        continue;
      }
      const FlagDef* f = scope.Find(token);
      if (f == nullptr) {
        std::vector<std::string> declarers;
        FindDeclarers(root, root.name, token, &declarers);
        if (group && !declarers.empty()) {
          return usage(Cat("flag ", token, " goes after the command it belongs to (",
                           QuoteList(declarers), ")"));
        }
        if (!declarers.empty()) {
          return usage(
              Cat("unknown flag ", token, " (it is a flag of ", QuoteList(declarers), ")"));
        }
        return usage(Cat("unknown flag ", token));
      }
      if (f->type == FlagType::kBool) {
        if (!has_value) value = "true";
      } else if (!has_value) {
        if (i + 1 >= args.size()) return usage(Cat("flag --", f->name, " needs a value"));
        value = args[++i];
      }
      if (absl::Status s = CheckValue(*f, value); !s.ok()) return usage(std::string(s.message()));
      auto& slot = values[f->name];
      // A value given twice is a mistake in one of them; a switch given twice is harmless.
      if (!slot.empty() && f->type != FlagType::kList) {
        if (f->type != FlagType::kBool) return usage(Cat("--", f->name, " given twice"));
        slot.clear();
      }
      slot.push_back(value);
      continue;
    }
    if (group) {
      if (chain.size() == 1 && a == "help") {
        // `berth help disk create` is `berth disk create --help`.
        std::vector<std::string> rest(args.begin() + i + 1, args.end());
        rest.push_back("--help");
        return Run(root, rest, out, err);
      }
      const Command* child = FindChild(node, a);
      if (child == nullptr) return usage(Cat("unknown command \"", a, "\""));
      chain.push_back(child);
      scope.Add(*child);
      continue;
    }
    positional.push_back(a);
  }

  const Command& cmd = *chain.back();
  if (help) {
    out << Help(chain);
    return kExitOk;
  }
  if (!cmd.run) {
    err << Help(chain);
    return kExitUsage;
  }
  for (const auto& [name, def] : scope.by_name) {
    if (def->required && !values.count(name)) return usage(Cat("--", name, " is required"));
  }
  size_t required = 0;
  bool rest = false;
  for (const ArgDef& d : cmd.args) {
    if (d.rest) {
      rest = true;
      if (!d.optional) ++required;
    } else if (!d.optional) {
      ++required;
    }
  }
  if (positional.size() < required) {
    // The first declared argument not given.
    for (size_t k = positional.size(); k < cmd.args.size(); ++k) {
      if (!cmd.args[k].optional) return usage(Cat("missing ", cmd.args[k].name));
    }
  }
  if (!rest && positional.size() > cmd.args.size()) {
    return usage(Cat("unexpected argument \"", positional[cmd.args.size()], "\""));
  }

  Invocation inv(JoinPath(chain), out, err);
  inv.defs_ = scope.by_name;
  inv.values_ = std::move(values);
  inv.args_ = std::move(positional);
  for (const ArgDef& d : cmd.args) inv.arg_defs_.push_back(&d);
  if (root.before_run) {
    if (int code = root.before_run(inv); code != kExitOk) return code;
  }
  return cmd.run(inv);
}

std::string HelpText(const Command& root, const std::vector<std::string>& path) {
  std::vector<const Command*> chain = {&root};
  for (const std::string& name : path) {
    const Command* child = FindChild(*chain.back(), name);
    if (child == nullptr) break;
    chain.push_back(child);
  }
  return Help(chain);
}

}  // namespace berth::core
