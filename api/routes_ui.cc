// The dashboard's static files under /ui/ (embedded in the binary: web/assets.h), and `/`, which
// sends a browser there. They need no token (authentication in api_server.cc lets GETs of these
// paths through): the page holds no data and asks for a token before it calls the API.
#include "api/api_server.h"
#include "api/route_util.h"
#include "core/strings.h"
#include "web/assets.h"

namespace berth::api {

namespace {

HttpResponse Redirect(std::string_view to) {
  HttpResponse r = HttpResponse::Text(302, core::Cat("see ", to, "\n"));
  r.headers.Set("Location", std::string(to));
  return r;
}

HttpResponse Serve(const web::Asset& a) {
  HttpResponse r = HttpResponse::Text(200, std::string(a.body));
  r.headers.Set("Content-Type", std::string(a.content_type));
  // The page reads a token into the browser's session storage: no other origin may frame it,
  // and it runs only its own scripts.
  r.headers.Set("X-Frame-Options", "DENY");
  r.headers.Set("X-Content-Type-Options", "nosniff");
  r.headers.Set("Referrer-Policy", "no-referrer");
  r.headers.Set("Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                "frame-ancestors 'none'");
  r.headers.Set("Cache-Control", "no-cache");
  return r;
}

}  // namespace

void ApiServer::UiRoutes() {
  router_.Handle("GET", "/", [](const HttpRequest&) { return Redirect("/ui/"); });
  // "/ui" and "/ui/" route alike; the page's relative links need the slash.
  router_.Handle("GET", "/ui", [](const HttpRequest& req) {
    if (req.path != "/ui/") return Redirect("/ui/");
    const web::Asset* index = web::FindAsset("index.html");
    return index ? Serve(*index) : HttpResponse::Error(404, "not_found", "dashboard: not built");
  });
  router_.Handle("GET", "/ui/{file}", [](const HttpRequest& req) {
    std::string file = req.Param("file");
    const web::Asset* a = web::FindAsset(file);
    if (a == nullptr) {
      return HttpResponse::Error(404, "not_found",
                                 core::Cat("dashboard: no file \"", file.substr(0, 64), "\""));
    }
    return Serve(*a);
  });
}

}  // namespace berth::api
