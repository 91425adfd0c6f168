#include "cli/image_cmd.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "api/client/client.h"
#include "cli/cli.h"
#include "cli/table.h"
#include "core/json.h"
#include "core/quantity.h"
#include "core/strings.h"

namespace berth::cli {

using core::Cat;
using core::Command;
using core::FlagType;
using core::Invocation;
using core::Json;

namespace {

std::string Size(int64_t bytes) { return core::FormatMiB((bytes + (1 << 20) - 1) >> 20); }

// "2026-01-02T03:04:05.000Z" -> "2026-01-02 03:04"; anything else as it is.
std::string Minute(const std::string& text) {
  absl::Time t;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &error)) return text;
  return absl::FormatTime("%Y-%m-%d %H:%M", t, absl::UTCTimeZone());
}

// Connects to the server and picks the host whose catalog the command acts on: --host, else the
// only host there is. Runs `body` with them, or returns why it cannot.
core::RunFn WithHost(std::function<int(Invocation&, api::Client&, const std::string&)> body) {
  return [body](Invocation& inv) {
    std::unique_ptr<api::Client> client = MakeClient(inv, absl::Hours(1));
    if (!client) return core::kExitFailure;
    std::string host = inv.String("host");
    if (host.empty()) {
      auto hosts = client->ListHosts();
      if (!hosts.ok()) return FailCall(inv, *client, hosts.status());
      if (hosts->items.empty()) {
        return inv.Fail("the server has no hosts yet; an image goes into a host's catalog");
      }
      if (hosts->items.size() > 1) {
        std::string names;
        for (const auto& h : hosts->items) names += (names.empty() ? "" : ", ") + h.name;
        return inv.UsageError(
            Cat("the server has several hosts (", names, "); name one with --host NAME"));
      }
      host = hosts->items[0].name;
    }
    return body(inv, *client, host);
  };
}

int Import(Invocation& inv, api::Client& client, const std::string& host) {
  api::wire::ImageImport request{.name = inv.Arg("NAME"),
                                 .kernel = inv.String("kernel"),
                                 .initrd = inv.String("initrd"),
                                 .cmdline = inv.String("cmdline"),
                                 .disk = inv.String("disk"),
                                 .rootfs = inv.String("rootfs"),
                                 .replace = inv.Bool("replace")};
  api::Raw raw;
  auto image = client.ImportImage(host, request, &raw);
  if (!image.ok()) return FailCall(inv, client, image.status());
  if (inv.json()) {
    inv.out() << raw.body.dump() << "\n";
  } else {
    inv.out() << "image " << image->value("name", "") << " imported (" << image->value("kind", "")
              << ", " << Size(image->value("size_bytes", int64_t{0})) << ")\n";
  }
  return core::kExitOk;
}

int List(Invocation& inv, api::Client& client, const std::string& host) {
  auto list = client.ListImages(host);
  if (!list.ok()) return FailCall(inv, client, list.status());
  const Json items =
      list->is_object() && list->contains("items") ? (*list)["items"] : Json::array();
  if (inv.json()) {
    inv.out() << items.dump() << "\n";
    return core::kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "KIND", "SIZE", "IMPORTED", "SOURCE"}};
  for (const Json& e : items) {
    const std::string kind = e.value("kind", "");
    std::string source = kind == "kernel" ? e.value("kernel", "")
                         : kind == "disk" ? e.value("disk", "")
                                          : e.value("rootfs", "");
    rows.push_back({e.value("name", ""), kind, Size(e.value("size_bytes", int64_t{0})),
                    Minute(e.value("imported_at", "")), source});
  }
  PrintTable(inv.out(), rows);
  return core::kExitOk;
}

int Remove(Invocation& inv, api::Client& client, const std::string& host) {
  const std::string name = inv.Arg("NAME");
  absl::Status s = client.RemoveImage(host, name);
  if (!s.ok()) return FailCall(inv, client, s);
  if (inv.json()) {
    inv.out() << Json{{"name", name}, {"removed", true}}.dump() << "\n";
  } else {
    inv.out() << "image " << name << " removed\n";
  }
  return core::kExitOk;
}

}  // namespace

Command ImageCommand() {
  const core::ArgDef name = {.name = "NAME", .help = "the image's name in the catalog"};
  std::vector<core::FlagDef> flags = ServerFlags();
  flags.push_back({.name = "host",
                   .help = "the host whose catalog to use (default: the only host there is)",
                   .value_name = "NAME"});
  return Command{
      .name = "image",
      .aliases = {"images"},
      .section = "Images (a host's catalog)",
      .summary = "import, list and remove images of a host's catalog",
      .description =
          "Images live in each host's catalog; workloads on that host name them with `image:`.\n"
          "The commands go through the server to the catalog of --host NAME, or of the only\n"
          "host when there is one. Import files are names relative to the server's image\n"
          "import directory (`berth serve --image-import-dir DIR`, default DATA_DIR/imports):\n"
          "copy them there first. A container rootfs is imported from a tar archive.",
      .flags = std::move(flags),
      .subcommands = {
          Command{
              .name = "import",
              .summary = "copy a VM kernel (+ initramfs), a VM disk image or a container "
                         "root filesystem from the server's import directory into the catalog",
              .synopsis = "NAME (--kernel FILE [--initrd FILE] [--cmdline S] | --disk FILE | "
                          "--rootfs TAR)",
              .flags =
                  {{.name = "kernel",
                    .help = "a VM kernel, relative to the import directory",
                    .value_name = "FILE"},
                   {.name = "initrd", .help = "the kernel's initramfs", .value_name = "FILE"},
                   {.name = "cmdline", .help = "the kernel's command line", .value_name = "ARGS"},
                   {.name = "disk", .help = "a VM disk image (qcow2 or raw)", .value_name = "FILE"},
                   {.name = "rootfs",
                    .help = "a container root filesystem as a tar archive",
                    .value_name = "TAR"},
                   {.name = "replace",
                    .type = FlagType::kBool,
                    .help = "replace an image of that name"}},
              .args = {name},
              .run = WithHost(Import)},
          Command{.name = "ls",
                  .aliases = {"list"},
                  .summary = "list the images",
                  .run = WithHost(List)},
          Command{.name = "rm",
                  .aliases = {"remove", "delete"},
                  .summary = "remove an image",
                  .args = {name},
                  .run = WithHost(Remove)}}};
}

}  // namespace berth::cli
