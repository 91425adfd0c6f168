#include "control/object_store.h"

#include <atomic>

#include "absl/strings/str_format.h"
#include "core/host.h"
#include "core/status.h"
#include "core/strings.h"
#include "core/workload.h"

namespace berth::control {

using core::Cat;
using core::Json;

absl::StatusOr<std::optional<StoredObject>> ReadObject(state::Store* store,
                                                       const std::string& key) {
  BERTH_ASSIGN_OR_RETURN(state::GetResponse got, store->Get(key));
  if (!got.kv) return std::optional<StoredObject>();
  Json j = Json::parse(got.kv->value, nullptr, false);
  if (!j.is_object()) return absl::DataLossError(Cat(key, ": stored object is not JSON"));
  j["revision"] = got.kv->mod_revision;
  return std::optional<StoredObject>(StoredObject{key, std::move(j), got.kv->mod_revision});
}

absl::StatusOr<std::vector<StoredObject>> ListObjects(state::Store* store, std::string_view prefix,
                                                      int64_t* revision) {
  BERTH_ASSIGN_OR_RETURN(state::ListResponse list, store->List(prefix));
  std::vector<StoredObject> out;
  for (const auto& kv : list.kvs) {
    Json j = Json::parse(kv.value, nullptr, false);
    if (!j.is_object()) continue;
    j["revision"] = kv.mod_revision;
    out.push_back(StoredObject{kv.key, std::move(j), kv.mod_revision});
  }
  if (revision) *revision = list.revision;
  return out;
}

absl::StatusOr<int64_t> CommitObjects(state::Store* store, core::Clock* clock,
                                      const std::vector<ObjectWrite>& writes,
                                      const ObjectEvent& event) {
  // Event keys share the control plane's layout (time, then a sequence); this sequence starts
  // high so the two writers' keys never collide within one nanosecond.
  static std::atomic<int64_t> seq{50000000};
  state::TxnRequest txn;
  for (const auto& w : writes) {
    txn.compares.push_back(w.expected_revision == 0
                               ? state::Compare::Absent(w.key)
                               : state::Compare::ModRevision(w.key, w.expected_revision));
    if (w.body) {
      Json body = *w.body;
      body.erase("revision");
      txn.then_ops.push_back(state::Op::Put(w.key, body.dump()));
    } else {
      txn.then_ops.push_back(state::Op::Delete(w.key));
    }
  }
  core::Event e;
  e.time = clock->Now();
  e.kind = event.kind;
  e.object = event.object;
  e.type = event.type;
  e.message = event.message;
  std::string key = absl::StrFormat("/events/%020d-%08d", absl::ToUnixNanos(e.time),
                                    seq.fetch_add(1) % 100000000);
  txn.then_ops.push_back(state::Op::Put(key, core::EncodeEvent(e).dump()));
  BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store->Txn(txn));
  if (!resp.succeeded) {
    return absl::AbortedError(Cat(event.kind, " \"", event.object,
                                  "\": changed by another request at the same time; retry"));
  }
  return resp.revision;
}

void StampObject(Json* body, int64_t revision, core::Clock* clock, bool created) {
  Json now = core::EncodeTime(clock->Now());
  if (created || !body->contains("created_at")) (*body)["created_at"] = now;
  (*body)["updated_at"] = now;
  (*body)["revision"] = revision;
}

}  // namespace berth::control
