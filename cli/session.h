// CommandSession: what every client command's body shares: the invocation, its positional words,
// `--json`, the typed API client made on first use, and the one way a call's failure is printed.
// The command groups (cli.cc, storenet_cmd.cc) derive their method holders from it.
#pragma once

#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "api/body_parser.h"
#include "api/client/client.h"
#include "cli/cli.h"
#include "core/flags.h"
#include "core/json.h"
#include "core/strings.h"

namespace berth::cli {

// `-f FILE`, the spec file of the create and update commands.
inline core::FlagDef SpecFileFlag() {
  return {.name = "file",
          .help = "the spec file; - reads standard input",
          .value_name = "FILE",
          .short_name = 'f',
          .required = true};
}

class CommandSession {
 public:
  // `words` are the command path's words the body dispatches on ("create"); the invocation's
  // positional arguments follow them. Each request may take up to `timeout`.
  CommandSession(core::Invocation& inv, std::vector<std::string> words,
                 absl::Duration timeout = absl::Seconds(60))
      : inv_(inv),
        out_(inv.out()),
        err_(inv.err()),
        pos_(std::move(words)),
        json_(inv.json()),
        timeout_(timeout) {
    for (const std::string& a : inv.args()) pos_.push_back(a);
  }

  int Usage(std::string_view problem) { return inv_.UsageError(problem); }
  int Fail(std::string_view message) { return inv_.Fail(message); }
  std::string Arg(size_t i) const { return i < pos_.size() ? pos_[i] : std::string(); }

  // The documents of the spec file named by --file (`-`: standard input), YAML or JSON, one or
  // more; nullopt after printing why there are none. `what` names the spec ("workload").
  std::optional<std::vector<core::Json>> SpecDocuments(std::string_view what) {
    const std::string file = inv_.String("file");
    std::stringstream text;
    if (file == "-") {
      text << std::cin.rdbuf();
    } else {
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        Fail(core::Cat("cannot read ", file, ": check the path (- reads standard input)"));
        return std::nullopt;
      }
      text << in.rdbuf();
    }
    auto docs = api::ParseYamlDocuments(text.str());
    if (!docs.ok()) {
      Fail(core::Cat(file, ": ", docs.status().message()));
      return std::nullopt;
    }
    if (docs->empty()) {
      Fail(core::Cat(file, ": holds no ", what, " spec"));
      return std::nullopt;
    }
    return std::move(*docs);
  }

  // `berth ... create -f FILE`: sends each document of the spec file to `create` (the body as
  // JSON), says each created object with `say` (unless --json), and with --json prints the
  // reply (an array for several documents). Returns the command's exit code.
  int CreateEach(
      std::string_view what,
      const std::function<absl::Status(api::Client&, const std::string& body, api::Raw*)>& create,
      const std::function<void(const core::Json& created)>& say) {
    std::optional<std::vector<core::Json>> docs = SpecDocuments(what);
    if (!docs) return 1;
    core::Json created = core::Json::array();
    for (const core::Json& doc : *docs) {
      auto j = Do([&](api::Client& c, api::Raw* r) { return create(c, doc.dump(), r); });
      if (!j) return 1;
      created.push_back(*j);
      if (!json_) say(*j);
    }
    if (json_) out_ << (created.size() == 1 ? created[0] : created).dump() << "\n";
    return 0;
  }

  // The client, made on first use; nullptr after printing why there is none.
  api::Client* Api() {
    if (!client_) client_ = MakeClient(inv_, timeout_);
    return client_.get();
  }

  // Runs one typed call, `call(client, raw)`, and returns the reply's JSON body as the server
  // sent it; nullopt after printing why the call failed.
  std::optional<core::Json> Do(const std::function<absl::Status(api::Client&, api::Raw*)>& call) {
    api::Client* c = Api();
    if (!c) return std::nullopt;
    api::Raw raw;
    absl::Status s = call(*c, &raw);
    if (!s.ok()) {
      FailCall(inv_, *c, s);
      return std::nullopt;
    }
    return std::move(raw.body);
  }

 protected:
  core::Invocation& inv_;
  std::ostream& out_;
  std::ostream& err_;
  std::vector<std::string> pos_;
  bool json_ = false;

 private:
  absl::Duration timeout_;
  std::unique_ptr<api::Client> client_;
};

}  // namespace berth::cli
