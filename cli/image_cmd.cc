#include "cli/image_cmd.h"

#include "absl/time/time.h"
#include "cli/cli.h"
#include "cli/table.h"
#include "core/json.h"
#include "core/quantity.h"
#include "core/strings.h"
#include "runtime/image/catalog.h"

namespace berth::cli {

using core::Cat;
using core::Command;
using core::FlagType;
using core::Invocation;
using core::Json;

namespace {

std::string Size(int64_t bytes) { return core::FormatMiB((bytes + (1 << 20) - 1) >> 20); }

// Opens the catalog the invocation names and runs `body` on it.
core::RunFn WithCatalog(std::function<int(Invocation&, runtime::ImageCatalog&)> body) {
  return [body](Invocation& inv) {
    std::string dir =
        inv.Given("images") ? inv.String("images") : ImagesDir(DefaultDataDir() + "/agent");
    auto catalog = runtime::ImageCatalog::Open(dir);
    if (!catalog.ok()) {
      return inv.Fail(Cat("cannot open the image catalog: ", catalog.status().message()));
    }
    return body(inv, **catalog);
  };
}

int Import(Invocation& inv, runtime::ImageCatalog& catalog) {
  runtime::ImportOptions o;
  o.kernel = inv.String("kernel");
  o.initrd = inv.String("initrd");
  o.cmdline = inv.String("cmdline");
  o.disk = inv.String("disk");
  o.rootfs = inv.String("rootfs");
  o.replace = inv.Bool("replace");
  auto e = catalog.Import(inv.Arg("NAME"), o);
  if (!e.ok()) return inv.Fail(std::string(e.status().message()));
  if (inv.json()) {
    inv.out() << runtime::ImageEntryToJson(*e).dump() << "\n";
  } else {
    inv.out() << "image " << e->name << " imported (" << runtime::ImageKindName(e->kind) << ", "
              << Size(e->size_bytes) << ")\n";
  }
  return core::kExitOk;
}

int List(Invocation& inv, runtime::ImageCatalog& catalog) {
  std::vector<runtime::ImageEntry> list = catalog.List();
  if (inv.json()) {
    Json items = Json::array();
    for (const auto& e : list) items.push_back(runtime::ImageEntryToJson(e));
    inv.out() << items.dump() << "\n";
    return core::kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "KIND", "SIZE", "IMPORTED", "SOURCE"}};
  for (const auto& e : list) {
    std::string source = e.kind == runtime::ImageKind::kKernel ? e.kernel
                         : e.kind == runtime::ImageKind::kDisk ? e.disk
                                                               : e.rootfs;
    rows.push_back({e.name, std::string(runtime::ImageKindName(e.kind)), Size(e.size_bytes),
                    absl::FormatTime("%Y-%m-%d %H:%M", e.imported_at, absl::UTCTimeZone()),
                    source});
  }
  PrintTable(inv.out(), rows);
  return core::kExitOk;
}

int Remove(Invocation& inv, runtime::ImageCatalog& catalog) {
  const std::string name = inv.Arg("NAME");
  absl::Status s = catalog.Remove(name);
  if (!s.ok()) return inv.Fail(std::string(s.message()));
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
  return Command{
      .name = "image",
      .aliases = {"images"},
      .section = "Images (this host's catalog)",
      .summary = "import, list and remove images of this host's catalog",
      .description =
          "Images live in this host's catalog (BERTH_DATA_DIR/agent/images, or --images DIR); "
          "workloads on\n"
          "this host name them with `image:`. In dev mode that is the server's machine.\n"
          "Import reads FILE on this host and copies it into the catalog. Only this command "
          "reads host\n"
          "files: through the API, a disk is made from a catalog image by name (`berth disk "
          "create\n"
          "--from-image NAME`), never from a path elsewhere.",
      .flags = {{.name = "images",
                 .help = "the catalog's directory (default BERTH_DATA_DIR/agent/images)",
                 .value_name = "DIR"}},
      .subcommands = {
          Command{
              .name = "import",
              .summary = "copy a VM kernel (+ initramfs), a VM disk image or a container "
                         "root filesystem into the catalog",
              .synopsis = "NAME (--kernel FILE [--initrd FILE] [--cmdline S] | --disk FILE | "
                          "--rootfs DIR|TAR)",
              .flags =
                  {{.name = "kernel", .help = "a VM kernel", .value_name = "FILE"},
                   {.name = "initrd", .help = "the kernel's initramfs", .value_name = "FILE"},
                   {.name = "cmdline", .help = "the kernel's command line", .value_name = "ARGS"},
                   {.name = "disk", .help = "a VM disk image (qcow2 or raw)", .value_name = "FILE"},
                   {.name = "rootfs",
                    .help = "a container root filesystem",
                    .value_name = "DIR|TAR"},
                   {.name = "replace",
                    .type = FlagType::kBool,
                    .help = "replace an image of that name"}},
              .args = {name},
              .run = WithCatalog(Import)},
          Command{.name = "ls",
                  .aliases = {"list"},
                  .summary = "list the images",
                  .run = WithCatalog(List)},
          Command{.name = "rm",
                  .aliases = {"remove", "delete"},
                  .summary = "remove an image",
                  .args = {name},
                  .run = WithCatalog(Remove)}}};
}

}  // namespace berth::cli
