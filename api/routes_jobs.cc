#include "api/routes_jobs.h"

#include "api/body_parser.h"
#include "api/list_query.h"
#include "api/route_util.h"
#include "api/wire/wire.h"
#include "core/job.h"

namespace berth::api {

void AddJobRoutes(Router& router, control::JobController* jobs) {
  router.Handle("POST", "/v1/jobs", [jobs](const HttpRequest& req) {
    auto body = ParseBody(req.body, {"job", ""});
    if (!body.ok()) return Fail(body.status());
    auto spec = core::DecodeJobSpec(*body);
    if (!spec.ok()) return Fail(spec.status());
    auto job = jobs->Create(*spec);
    if (!job.ok()) return Fail(job.status());
    return JsonOk(201, core::EncodeJob(*job), job->revision);
  });
  router.Handle("GET", "/v1/jobs", [jobs](const HttpRequest& req) {
    int64_t rev = 0;
    auto list = jobs->List(&rev);
    if (!list.ok()) return Fail(list.status());
    return PagedJsonReply(req, "jobs", wire::EncodeJobList({*list, rev}));
  });
  router.Handle("GET", "/v1/jobs/{name}", [jobs](const HttpRequest& req) {
    auto job = jobs->Get(req.Param("name"));
    if (!job.ok()) return Fail(job.status());
    return JsonOk(200, core::EncodeJob(*job), job->revision);
  });
  router.Handle("DELETE", "/v1/jobs/{name}", [jobs](const HttpRequest& req) {
    auto d = jobs->Delete(req.Param("name"));
    if (!d.ok()) return Fail(d.status());
    return JsonOk(d->deleted ? 200 : 202,
                  wire::EncodeJobDeletion({.job = d->job, .deleted = d->deleted}));
  });
}

}  // namespace berth::api
