#include "cli/image_cmd.h"

#include <map>
#include <optional>

#include "absl/time/time.h"
#include "cli/cli.h"
#include "cli/table.h"
#include "core/json.h"
#include "core/quantity.h"
#include "core/strings.h"
#ifdef BERTH_WITH_IMAGES
#include "runtime/image/catalog.h"
#endif

namespace berth::cli {

using core::Cat;
using core::Json;

namespace {

constexpr char kImageUsage[] =
    R"(Usage: berth image COMMAND [--json] [--images DIR]

Images live in this host's catalog (BERTH_DATA_DIR/agent/images, or --images DIR); workloads on
this host name them with `image:`. In dev mode that is the server's machine.

  import NAME --kernel FILE [--initrd FILE] [--cmdline "ARGS"]   a VM kernel (+ initramfs)
  import NAME --disk FILE                                         a VM disk image (qcow2 or raw)
  import NAME --rootfs DIR|TAR                                    a container root filesystem
         [--replace]                                              replace an image of that name
  ls                                                              list the images
  rm NAME                                                         remove an image

Import reads FILE on this host and copies it into the catalog. Only this command reads host
files: through the API, a disk is made from a catalog image by name (`berth disk create
--from-image NAME`), never from a path elsewhere.
)";

struct ImageFlags {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;
  std::map<std::string, bool> switches;
};

std::optional<std::string> Parse(const std::vector<std::string>& args, ImageFlags* f) {
  static const char* kValued[] = {"--kernel", "--initrd", "--cmdline",
                                  "--disk",   "--rootfs", "--images"};
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a.size() < 2 || a[0] != '-') {
      f->positional.push_back(a);
      continue;
    }
    std::string value;
    bool has_value = false;
    if (auto eq = a.find('='); eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_value = true;
    }
    bool valued = false;
    for (const char* v : kValued) valued = valued || a == v;
    if (!valued) {
      if (a != "--json" && a != "--help" && a != "-h" && a != "--replace") {
        return Cat("unknown flag ", a);
      }
      f->switches[a] = true;
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return Cat("flag ", a, " needs a value");
      value = args[++i];
    }
    f->values[a] = value;
  }
  return std::nullopt;
}

}  // namespace

#ifdef BERTH_WITH_IMAGES

namespace {

Json EntryJson(const runtime::ImageEntry& e) { return runtime::ImageEntryToJson(e); }

std::string Size(int64_t bytes) { return core::FormatMiB((bytes + (1 << 20) - 1) >> 20); }

}  // namespace

int RunImageCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  ImageFlags f;
  if (auto bad = Parse(args, &f)) {
    err << "berth image: " << *bad << "\n" << kImageUsage;
    return 2;
  }
  const bool json = f.switches.count("--json") > 0;
  auto fail = [&](std::string_view message) {
    if (json) {
      err << Json{{"error", std::string(message)}}.dump() << "\n";
    } else {
      err << "berth image: " << message << "\n";
    }
    return 1;
  };
  const std::string sub = f.positional.empty() ? "" : f.positional[0];
  if (f.switches.count("--help") || f.switches.count("-h") || sub.empty()) {
    out << kImageUsage;
    return sub.empty() && !f.switches.count("--help") && !f.switches.count("-h") ? 2 : 0;
  }
  std::string dir =
      f.values.count("--images") ? f.values["--images"] : ImagesDir(DefaultDataDir() + "/agent");
  auto catalog = runtime::ImageCatalog::Open(dir);
  if (!catalog.ok())
    return fail(Cat("cannot open the image catalog: ", catalog.status().message()));

  if (sub == "import") {
    if (f.positional.size() != 2) {
      err << "berth image: import needs exactly one NAME\n" << kImageUsage;
      return 2;
    }
    runtime::ImportOptions o;
    o.kernel = f.values["--kernel"];
    o.initrd = f.values["--initrd"];
    o.cmdline = f.values["--cmdline"];
    o.disk = f.values["--disk"];
    o.rootfs = f.values["--rootfs"];
    o.replace = f.switches.count("--replace") > 0;
    auto e = (*catalog)->Import(f.positional[1], o);
    if (!e.ok()) return fail(std::string(e.status().message()));
    if (json) {
      out << EntryJson(*e).dump() << "\n";
    } else {
      out << "image " << e->name << " imported (" << runtime::ImageKindName(e->kind) << ", "
          << Size(e->size_bytes) << ")\n";
    }
    return 0;
  }
  if (sub == "ls" || sub == "list") {
    std::vector<runtime::ImageEntry> list = (*catalog)->List();
    if (json) {
      Json items = Json::array();
      for (const auto& e : list) items.push_back(EntryJson(e));
      out << items.dump() << "\n";
      return 0;
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
    PrintTable(out, rows);
    return 0;
  }
  if (sub == "rm" || sub == "remove" || sub == "delete") {
    if (f.positional.size() != 2) {
      err << "berth image: rm needs exactly one NAME\n" << kImageUsage;
      return 2;
    }
    absl::Status s = (*catalog)->Remove(f.positional[1]);
    if (!s.ok()) return fail(std::string(s.message()));
    if (json) {
      out << Json{{"name", f.positional[1]}, {"removed", true}}.dump() << "\n";
    } else {
      out << "image " << f.positional[1] << " removed\n";
    }
    return 0;
  }
  err << "berth image: unknown command \"" << sub << "\"\n" << kImageUsage;
  return 2;
}

#else  // !BERTH_WITH_IMAGES

int RunImageCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  ImageFlags f;
  if (!Parse(args, &f) && (f.switches.count("--help") || f.switches.count("-h"))) {
    out << kImageUsage;
    return 0;
  }
  err << "berth image: this build has no image catalog (runtime/image was not built)\n";
  return 1;
}

#endif

}  // namespace berth::cli
