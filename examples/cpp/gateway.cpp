// A routing gateway over libpointsman, as a C++ server would embed it: an HTTP server
// (cpp-httplib) whose worker threads share one loaded router and one embedder, JSON through
// nlohmann::json. POST /route takes a query's text or embedding and answers with the chosen
// model and the decision's figures; GET /healthz says what is loaded.
//
//   gateway --router FILE [--embedder DIR|default] [--embed-threads N] [--port N | --stdin]
//           [--workers N] [--cost-weight W] [--port-file FILE] [--max-requests N]
//
// Request body (or, with --stdin, one JSON object per line):
//   {"id": 7, "text": "Prove that sqrt(2) is irrational.", "cost_weight": 500}
//   {"id": 8, "embedding": [0.01, ...], "cost_weight": 500, "prompt_tokens": 120,
//    "task": "code", "allowed": ["model-a", "model-b"], "top": 3}
// "text" needs --embedder (the model folder, or `default`); "cost_weight" defaults to
// --cost-weight; "top" > 1 adds the runner-up models. Answer (200), "id" echoed:
//   {"id":7,"model":"name","index":2,"quality":0.61,"cost":0.00012,"utility":0.55,
//    "alternatives":[{"model":..., "index":..., "quality":..., "cost":..., "utility":...}]}
// or (400) {"id":7,"error":"dimension mismatch: expected 384, got 3","status":"SHAPE"}.
//
// --workers is the number of connections served at once (cpp-httplib gives each a pool thread).
// It listens on 127.0.0.1 only; with --max-requests N it stops after answering N requests.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <pointsman.hpp>

using nlohmann::json;

namespace {

struct Options {
  std::string router, embedder, port_file;
  std::size_t embed_threads = 1;
  int port = 0;
  bool use_stdin = false;
  unsigned workers = 0;
  double cost_weight = 0.0;
  long max_requests = -1;
};

json decision_json(const pointsman::Router &router, const pm_decision &d) {
  return {{"model", router.model_name(d.model)}, {"index", d.model}, {"quality", d.quality},
          {"cost", d.cost}, {"utility", d.utility}};
}

/// Routes one request; every mistake a client can make is a 400 with the library's status.
std::pair<int, json> handle(const pointsman::Router &router, const pointsman::Embedder *embedder,
                            const Options &opt, const std::string &body) {
  json req = json::parse(body, nullptr, /*allow_exceptions=*/false);
  json id = req.is_object() && req.contains("id") ? req["id"] : json();
  auto error = [&](const std::string &message, const char *status) {
    return std::pair<int, json>{400, {{"id", id}, {"error", message}, {"status", status}}};
  };
  if (!req.is_object()) return error("the body is not a JSON object", "INVALID_ARGUMENT");
  try {
    pointsman::RankOptions options;
    options.cost_weight = req.value("cost_weight", opt.cost_weight);
    options.top = req.value("top", std::size_t{1});
    if (req.contains("prompt_tokens")) options.prompt_tokens = req["prompt_tokens"].get<double>();
    if (req.contains("task")) options.task = req["task"].get<std::string>();
    if (req.contains("allowed")) {
      options.allowed.assign(router.num_models(), 0);
      for (const auto &m : req["allowed"]) options.allowed[router.model_index(m.get<std::string>())] = 1;
    }
    std::vector<pm_decision> ranked;
    if (req.contains("text") && !req.contains("embedding")) {
      if (embedder == nullptr) return error("start the gateway with --embedder", "EMBEDDER_UNAVAILABLE");
      ranked = router.rank_text(*embedder, req["text"].get<std::string>(), options);
    } else if (req.contains("embedding") && !req.contains("text")) {
      ranked = router.rank(req["embedding"].get<std::vector<float>>(), options);
    } else {
      return error("give \"text\" or \"embedding\"", "INVALID_ARGUMENT");
    }
    json out = decision_json(router, ranked[0]);
    out["id"] = id;
    if (ranked.size() > 1) {
      out["alternatives"] = json::array();
      for (std::size_t k = 1; k < ranked.size(); k++) out["alternatives"].push_back(decision_json(router, ranked[k]));
    }
    return {200, out};
  } catch (const json::exception &e) {
    return error(e.what(), "INVALID_ARGUMENT");
  } catch (const pointsman::Error &e) {
    return error(e.what(), e.status_name());
  }
}

bool parse_args(int argc, char **argv, Options &opt) {
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--router") opt.router = value();
    else if (a == "--embedder") opt.embedder = value();
    else if (a == "--embed-threads") opt.embed_threads = std::stoul(value());
    else if (a == "--port") opt.port = std::stoi(value());
    else if (a == "--stdin") opt.use_stdin = true;
    else if (a == "--workers") opt.workers = static_cast<unsigned>(std::stoul(value()));
    else if (a == "--cost-weight") opt.cost_weight = std::stod(value());
    else if (a == "--port-file") opt.port_file = value();
    else if (a == "--max-requests") opt.max_requests = std::stol(value());
    else throw std::runtime_error("unknown argument " + a);
  }
  return !opt.router.empty();
}

}  // namespace

int main(int argc, char **argv) {
  Options opt;
  try {
    if (!parse_args(argc, argv, opt)) {
      std::cerr << "usage: gateway --router FILE [--embedder DIR|default] [--embed-threads N]\n"
                   "               [--port N | --stdin] [--workers N] [--cost-weight W]\n"
                   "               [--port-file FILE] [--max-requests N]\n";
      return 2;
    }
    if (opt.workers == 0) opt.workers = std::max(1u, std::thread::hardware_concurrency());
    const pointsman::Router router = pointsman::Router::load(opt.router);
    std::unique_ptr<pointsman::Embedder> embedder;
    if (!opt.embedder.empty()) {
      pointsman::EmbedderOptions eo;
      eo.threads = opt.embed_threads;  // 1: each worker embeds on its own thread
      embedder = std::make_unique<pointsman::Embedder>(
          pointsman::Embedder::load(opt.embedder == "default" ? "" : opt.embedder, eo));
    }
    std::cerr << "gateway: libpointsman " << pointsman::version() << ", " << router.kind()
              << " router, " << router.num_models() << " models, dim " << router.dim() << ", "
              << opt.workers << " workers";
    if (embedder) std::cerr << ", embedder " << embedder->model_name();
    std::cerr << "\n";

    if (opt.use_stdin) {
      for (std::string line; std::getline(std::cin, line);) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        std::cout << handle(router, embedder.get(), opt, line).second.dump() << "\n";
      }
      return 0;
    }

    httplib::Server server;
    // cpp-httplib serves each connection on one pool thread: the workers are the connections
    // served at once, and each embeds and routes its own requests.
    server.new_task_queue = [&] { return new httplib::ThreadPool(opt.workers); };
    server.set_tcp_nodelay(true);
    std::atomic<long> served{0}, errors{0};
    server.Post("/route", [&](const httplib::Request &req, httplib::Response &res) {
      auto [status, body] = handle(router, embedder.get(), opt, req.body);
      res.status = status;
      res.set_content(body.dump(), "application/json");
      errors += status != 200;
      if (++served == opt.max_requests) server.stop();
    });
    server.Get("/healthz", [&](const httplib::Request &, httplib::Response &res) {
      json h = {{"kind", router.kind()}, {"models", router.num_models()}, {"dim", router.dim()},
                {"served", served.load()}};
      res.set_content(h.dump(), "application/json");
    });
    int port = opt.port > 0 ? (server.bind_to_port("127.0.0.1", opt.port) ? opt.port : -1)
                            : server.bind_to_any_port("127.0.0.1");
    if (port <= 0) throw std::runtime_error("cannot listen on 127.0.0.1");
    std::cerr << "gateway: listening on http://127.0.0.1:" << port << "\n";
    if (!opt.port_file.empty()) {
      // Written whole, then renamed, so a reader never sees half a number.
      std::ofstream(opt.port_file + ".tmp") << port << "\n";
      std::rename((opt.port_file + ".tmp").c_str(), opt.port_file.c_str());
    }
    server.listen_after_bind();
    std::cerr << "gateway: served " << served << " requests (" << errors << " errors)\n";
  } catch (const pointsman::Error &e) {
    std::cerr << "gateway: " << e.status_name() << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception &e) {
    std::cerr << "gateway: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
