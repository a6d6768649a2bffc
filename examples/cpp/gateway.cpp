// A multi-threaded routing gateway over libpointsman: it loads an embedder and a saved router,
// accepts JSON-lines requests on a loopback TCP port (or stdin), embeds and routes each on a pool
// of worker threads sharing the one embedder and the one router, and answers each with the chosen
// model and the decision's figures.
//
//   gateway --router FILE [--embedder DIR|default] [--embed-threads N] [--port N | --stdin]
//           [--workers N] [--cost-weight W] [--port-file FILE] [--max-connections N]
//
// Request (one JSON object per line), with the query's text or its embedding:
//   {"id": 7, "text": "Prove that sqrt(2) is irrational.", "cost_weight": 500}
//   {"id": 8, "embedding": [0.01, ...], "cost_weight": 500, "prompt_tokens": 120,
//    "task": "code", "allowed": ["model-a", "model-b"], "top": 3}
// "text" needs --embedder (the model folder, or `default` for $POINTSMAN_MODEL_DIR or
// ~/.cache/pointsman/models/all-MiniLM-L6-v2); its prompt tokens are estimated from the text
// unless given. "cost_weight" defaults to --cost-weight; "top" > 1 adds the runner-up models.
// Each worker embeds on its own thread (--embed-threads 1, the default): the embedder's threads
// are the gateway's workers.
//
// Response (one line each, in completion order; "id" is echoed):
//   {"id":7,"model":"name","index":2,"quality":0.61,"cost":0.00012,"utility":0.55,
//    "alternatives":[{"model":..., "index":..., "quality":..., "cost":..., "utility":...}]}
//   {"id":7,"error":"dimension mismatch: expected 384, got 3","status":"SHAPE"}
//
// With --max-connections N the gateway exits once N connections have come and gone (for bounded
// tests); otherwise it serves until killed. It listens on 127.0.0.1 only.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <pointsman.hpp>

#include "json.hpp"
#include "net.hpp"

namespace {

/// Where answers go: a client connection, or stdout. Closed when the last reference is gone,
/// that is once its reader has stopped and every request it sent has been answered.
class Sink {
 public:
  explicit Sink(int fd, bool owned) : fd_(fd), owned_(owned) {}
  Sink(const Sink &) = delete;
  Sink &operator=(const Sink &) = delete;
  ~Sink() {
    if (owned_) ::close(fd_);
  }

  void write_line(std::string line) {
    line += '\n';
    std::lock_guard<std::mutex> lock(mu_);
    net::write_all(fd_, line);
  }

 private:
  int fd_;
  bool owned_;
  std::mutex mu_;
};

struct Job {
  std::shared_ptr<Sink> sink;
  std::string line;
};

/// A bounded multi-producer, multi-consumer queue: readers block when workers fall behind.
class Queue {
 public:
  explicit Queue(std::size_t capacity) : capacity_(capacity) {}

  void push(Job job) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return jobs_.size() < capacity_; });
    jobs_.push_back(std::move(job));
    not_empty_.notify_one();
  }

  /// The next job; false once closed and drained.
  bool pop(Job &job) {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return !jobs_.empty() || closed_; });
    if (jobs_.empty()) return false;
    job = std::move(jobs_.front());
    jobs_.pop_front();
    not_full_.notify_one();
    return true;
  }

  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
  }

 private:
  std::size_t capacity_;
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<Job> jobs_;
  bool closed_ = false;
};

struct Options {
  std::string router;
  std::string embedder;  // empty: none; "default": the default model folder
  std::size_t embed_threads = 1;
  int port = 0;
  bool use_stdin = false;
  unsigned workers = 0;
  double cost_weight = 0.0;
  std::string port_file;
  long max_connections = -1;
};

std::string error_line(const json::Value *id, const std::string &message, const char *status) {
  std::string out = "{\"id\":";
  json::write(out, id ? *id : json::Value{});
  out += ",\"error\":";
  json::write_string(out, message);
  out += ",\"status\":";
  json::write_string(out, status);
  out += '}';
  return out;
}

void write_decision(std::string &out, const pointsman::Router &router, const pm_decision &d) {
  out += "\"model\":";
  json::write_string(out, router.model_name(d.model));
  out += ",\"index\":" + std::to_string(d.model);
  out += ",\"quality\":";
  json::write_number(out, d.quality);
  out += ",\"cost\":";
  json::write_number(out, d.cost);
  out += ",\"utility\":";
  json::write_number(out, d.utility);
}

/// Answers one request line. Everything a client can get wrong becomes an error line.
std::string handle(const pointsman::Router &router, const pointsman::Embedder *embedder,
                   const Options &opt, const std::string &line) {
  json::Value req;
  try {
    req = json::parse(line);
  } catch (const std::exception &e) {
    return error_line(nullptr, e.what(), "INVALID_ARGUMENT");
  }
  const json::Value *id = req.get("id");
  const json::Value *text = req.get("text");
  const json::Value *embedding = req.get("embedding");
  std::vector<float> features;
  if (text != nullptr) {
    if (text->type != json::Value::Type::String)
      return error_line(id, "text is not a string", "INVALID_ARGUMENT");
    if (embedding != nullptr)
      return error_line(id, "give text or embedding, not both", "INVALID_ARGUMENT");
    if (embedder == nullptr)
      return error_line(id, "this gateway has no embedder (start it with --embedder)",
                        "EMBEDDER_UNAVAILABLE");
  } else if (embedding == nullptr || embedding->type != json::Value::Type::Array) {
    return error_line(id, "expected {\"text\": \"...\"} or {\"embedding\": [numbers]}, ...",
                      "INVALID_ARGUMENT");
  } else {
    features.reserve(embedding->items.size());
    for (const auto &v : embedding->items) {
      if (!v.is_number()) return error_line(id, "embedding holds a non-number", "INVALID_ARGUMENT");
      features.push_back(v.number_f32());
    }
  }
  pointsman::RankOptions options;
  options.cost_weight = opt.cost_weight;
  options.top = 1;
  try {
    if (const json::Value *w = req.get("cost_weight")) {
      if (!w->is_number()) throw pointsman::Error(PM_STATUS_CONFIG, "cost_weight is not a number");
      options.cost_weight = w->number();
    }
    if (const json::Value *t = req.get("prompt_tokens")) {
      if (!t->is_number()) throw pointsman::Error(PM_STATUS_INVALID_ARGUMENT, "prompt_tokens is not a number");
      options.prompt_tokens = t->number();
    }
    if (const json::Value *t = req.get("task")) {
      if (t->type != json::Value::Type::String) throw pointsman::Error(PM_STATUS_INVALID_ARGUMENT, "task is not a string");
      options.task = t->text;
    }
    if (const json::Value *top = req.get("top")) {
      double k = top->is_number() ? top->number() : 0.0;
      if (!(k >= 1.0 && k <= 1e6)) throw pointsman::Error(PM_STATUS_INVALID_ARGUMENT, "top is not a positive count");
      options.top = static_cast<std::size_t>(k);
    }
    if (const json::Value *allowed = req.get("allowed")) {
      if (allowed->type != json::Value::Type::Array) throw pointsman::Error(PM_STATUS_INVALID_ARGUMENT, "allowed is not a list of model ids");
      options.allowed.assign(router.num_models(), 0);
      for (const auto &m : allowed->items) {
        if (m.type != json::Value::Type::String) throw pointsman::Error(PM_STATUS_INVALID_ARGUMENT, "allowed holds a non-string");
        options.allowed[router.model_index(m.text)] = 1;
      }
    }
    const std::vector<pm_decision> ranked = text != nullptr
                                                ? router.rank_text(*embedder, text->text, options)
                                                : router.rank(features, options);
    std::string out = "{\"id\":";
    json::write(out, id ? *id : json::Value{});
    out += ',';
    write_decision(out, router, ranked[0]);
    if (ranked.size() > 1) {
      out += ",\"alternatives\":[";
      for (std::size_t k = 1; k < ranked.size(); k++) {
        if (k > 1) out += ',';
        out += '{';
        write_decision(out, router, ranked[k]);
        out += '}';
      }
      out += ']';
    }
    out += '}';
    return out;
  } catch (const pointsman::Error &e) {
    return error_line(id, e.what(), e.status_name());
  }
}

/// Reads request lines from `fd` into the queue until the input ends.
void read_requests(int fd, std::shared_ptr<Sink> sink, Queue &queue) {
  net::LineReader reader(fd);
  std::string line;
  while (reader.next(line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    queue.push(Job{sink, std::move(line)});
    line.clear();
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
    else if (a == "--max-connections") opt.max_connections = std::stol(value());
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
                   "               [--port-file FILE] [--max-connections N]\n";
      return 2;
    }
  } catch (const std::exception &e) {
    std::cerr << "gateway: " << e.what() << "\n";
    return 2;
  }
  // A client that disconnects early makes a write fail, not the process die.
  std::signal(SIGPIPE, SIG_IGN);
  if (opt.workers == 0) opt.workers = std::max(1u, std::thread::hardware_concurrency());

  try {
    const pointsman::Router router = pointsman::Router::load(opt.router);
    std::unique_ptr<pointsman::Embedder> embedder;
    if (!opt.embedder.empty()) {
      pointsman::EmbedderOptions eo;
      eo.threads = opt.embed_threads;
      embedder = std::make_unique<pointsman::Embedder>(
          pointsman::Embedder::load(opt.embedder == "default" ? "" : opt.embedder, eo));
    }
    std::cerr << "gateway: libpointsman " << pointsman::version() << ", " << router.kind()
              << " router, " << router.num_models() << " models, dim " << router.dim() << ", "
              << opt.workers << " workers";
    if (embedder)
      std::cerr << ", embedder " << embedder->model_name() << " (" << embedder->threads()
                << " thread" << (embedder->threads() == 1 ? "" : "s") << " per call)";
    std::cerr << "\n";

    Queue queue(4096);
    std::atomic<long> served{0}, errors{0};
    std::vector<std::thread> workers;
    for (unsigned w = 0; w < opt.workers; w++) {
      workers.emplace_back([&] {
        Job job;
        while (queue.pop(job)) {
          std::string answer = handle(router, embedder.get(), opt, job.line);
          if (answer.find("\"error\":") != std::string::npos) errors++;
          served++;
          job.sink->write_line(std::move(answer));
          job = Job{};  // release the connection before waiting for the next job
        }
      });
    }

    if (opt.use_stdin) {
      read_requests(STDIN_FILENO, std::make_shared<Sink>(STDOUT_FILENO, false), queue);
    } else {
      int port = opt.port;
      int listener = net::listen_loopback(port);
      std::cerr << "gateway: listening on 127.0.0.1:" << port << "\n";
      if (!opt.port_file.empty()) {
        // Written whole, then renamed, so a reader never sees half a number.
        std::string tmp = opt.port_file + ".tmp";
        std::ofstream(tmp) << port << "\n";
        std::rename(tmp.c_str(), opt.port_file.c_str());
      }
      std::vector<std::thread> readers;
      for (long accepted = 0; opt.max_connections < 0 || accepted < opt.max_connections;
           accepted++) {
        int fd = ::accept(listener, nullptr, nullptr);
        if (fd < 0) {
          if (errno == EINTR) { accepted--; continue; }
          throw net::os_error("accept");
        }
        auto sink = std::make_shared<Sink>(fd, true);
        readers.emplace_back([fd, sink, &queue]() mutable { read_requests(fd, std::move(sink), queue); });
      }
      ::close(listener);
      for (auto &r : readers) r.join();
    }
    queue.close();
    for (auto &w : workers) w.join();
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
