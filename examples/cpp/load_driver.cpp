// Load driver for the gateway: M threads, one keep-alive HTTP connection each (cpp-httplib), send
// N requests in all (each thread posts one to /route, waits for the answer, posts the next), then
// print the throughput and
// the latency percentiles. With --expect it also checks every answer against the decisions the
// Rust API made for the same router, query and cost weight (expected.txt of the `fixture`
// example), to the bit.
//
//   load_driver --port N | --port-file FILE  --requests requests.jsonl
//               [--total N] [--threads M] [--cost-weight W] [--expect expected.txt]...
//               [--text-requests text_requests.jsonl --text-total K]
//
// With --text-requests, the first K of the N requests come from that file (requests with text,
// which the gateway embeds) and the rest from --requests (requests with an embedding); latency
// percentiles are printed for each kind. --expect may be given once per file of expectations.
//
// Exits non-zero when an answer is an error, is missing, or differs from the expectation.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

using nlohmann::json;

namespace {

struct Expected {
  unsigned model;
  double quality, cost, utility;
};

struct Options {
  int port = 0;
  std::string port_file;
  std::string requests;
  std::vector<std::string> expect;
  std::string text_requests;
  long text_total = 0;
  long total = 2000;
  int threads = 4;
  double cost_weight = 1000.0;
};

/// The decision expected for each row at the cost weight: the first entry of each `rank` line
/// (the gateway routes with the prompt tokens, as pm_router_rank does).
void read_expected(const std::string &path, double cost_weight, std::map<long, Expected> &out) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream s(line);
    std::string kind, w, q, c, u;
    long row = 0, index = 0;
    Expected e{};
    s >> kind >> w >> row;
    if (kind != "rank") continue;
    s >> index >> e.model >> q >> c >> u;
    if (index != 0 || std::strtod(w.c_str(), nullptr) != cost_weight) continue;
    e.quality = std::strtod(q.c_str(), nullptr);
    e.cost = std::strtod(c.c_str(), nullptr);
    e.utility = std::strtod(u.c_str(), nullptr);
    out[row] = e;
  }
}

int wait_for_port(const std::string &file) {
  for (int i = 0; i < 600; i++) {
    std::ifstream in(file);
    int port = 0;
    if (in >> port && port > 0) return port;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw std::runtime_error("no port in " + file + " after 60 s");
}

double percentile(const std::vector<double> &sorted, double p) {
  if (sorted.empty()) return 0.0;
  std::size_t k = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(k, sorted.size() - 1)];
}

bool parse_args(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--port") o.port = std::stoi(value());
    else if (a == "--port-file") o.port_file = value();
    else if (a == "--requests") o.requests = value();
    else if (a == "--expect") o.expect.push_back(value());
    else if (a == "--text-requests") o.text_requests = value();
    else if (a == "--text-total") o.text_total = std::stol(value());
    else if (a == "--total") o.total = std::stol(value());
    else if (a == "--threads") o.threads = std::stoi(value());
    else if (a == "--cost-weight") o.cost_weight = std::stod(value());
    else throw std::runtime_error("unknown argument " + a);
  }
  return !o.requests.empty() && (o.port > 0 || !o.port_file.empty()) && o.total > 0 &&
         o.threads > 0 && o.text_total >= 0 && (o.text_total == 0 || !o.text_requests.empty());
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  try {
    if (!parse_args(argc, argv, o)) {
      std::cerr << "usage: load_driver --port N | --port-file FILE --requests FILE [--total N]\n"
                   "                   [--threads M] [--cost-weight W] [--expect FILE]\n";
      return 2;
    }
    auto read_requests = [&](const std::string &path) {
      std::vector<std::string> out;
      std::ifstream in(path);
      std::string line;
      char weight[48];
      std::snprintf(weight, sizeof weight, "{\"cost_weight\":%.17g,", o.cost_weight);
      while (std::getline(in, line)) {
        if (line.size() < 2 || line[0] != '{') continue;
        out.push_back(weight + line.substr(1));
      }
      if (out.empty()) throw std::runtime_error("no requests in " + path);
      return out;
    };
    const std::vector<std::string> requests = read_requests(o.requests);
    const std::vector<std::string> text_requests =
        o.text_total > 0 ? read_requests(o.text_requests) : std::vector<std::string>();
    std::map<long, Expected> expected;
    for (const auto &path : o.expect) read_expected(path, o.cost_weight, expected);
    if (!o.expect.empty() && expected.empty())
      throw std::runtime_error("no expectations at this cost weight");
    const int port = o.port > 0 ? o.port : wait_for_port(o.port_file);

    std::atomic<long> next{0}, errors{0}, mismatches{0}, checked{0};
    // Per thread: latencies of requests with an embedding, and of requests with text.
    std::vector<std::vector<double>> latencies(static_cast<std::size_t>(o.threads));
    std::vector<std::vector<double>> text_latencies(static_cast<std::size_t>(o.threads));
    std::map<std::string, long> chosen;
    std::mutex chosen_mu;
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < o.threads; t++) {
      threads.emplace_back([&, t] {
        std::vector<double> &lat_embedding = latencies[static_cast<std::size_t>(t)];
        std::vector<double> &lat_text = text_latencies[static_cast<std::size_t>(t)];
        std::map<std::string, long> mine;
        httplib::Client client("127.0.0.1", port);
        client.set_keep_alive(true);
        client.set_tcp_nodelay(true);
        client.set_read_timeout(60, 0);
        for (long i = next++; i < o.total; i = next++) {
          const bool is_text = i < o.text_total;
          const std::string &req =
              is_text ? text_requests[static_cast<std::size_t>(i) % text_requests.size()]
                      : requests[static_cast<std::size_t>(i - o.text_total) % requests.size()];
          std::vector<double> &lat = is_text ? lat_text : lat_embedding;
          auto t0 = std::chrono::steady_clock::now();
          auto res = client.Post("/route", req, "application/json");
          if (!res) {
            if (errors++ < 5) std::cerr << "load_driver: " << httplib::to_string(res.error()) << "\n";
            break;
          }
          auto t1 = std::chrono::steady_clock::now();
          lat.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
          json v = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
          if (res->status != 200 || !v.is_object() || !v.contains("model")) {
            if (errors++ < 5) std::cerr << "load_driver: error answer: " << res->body << "\n";
            continue;
          }
          mine[v["model"].get<std::string>()]++;
          if (!expected.empty() && v.contains("id") && v["id"].is_number()) {
            auto it = expected.find(v["id"].get<long>());
            bool ok = it != expected.end() && v["index"].get<unsigned>() == it->second.model &&
                      v["quality"].get<double>() == it->second.quality &&
                      v["cost"].get<double>() == it->second.cost &&
                      v["utility"].get<double>() == it->second.utility;
            checked++;
            if (!ok && mismatches++ < 5)
              std::cerr << "load_driver: answer differs from the Rust decision: " << res->body << "\n";
          }
        }
        std::lock_guard<std::mutex> lock(chosen_mu);
        for (const auto &kv : mine) chosen[kv.first] += kv.second;
      });
    }
    for (auto &th : threads) th.join();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    auto gather = [](const std::vector<std::vector<double>> &per_thread) {
      std::vector<double> out;
      for (const auto &l : per_thread) out.insert(out.end(), l.begin(), l.end());
      std::sort(out.begin(), out.end());
      return out;
    };
    const std::vector<double> emb = gather(latencies), txt = gather(text_latencies);
    std::vector<double> all = emb;
    all.insert(all.end(), txt.begin(), txt.end());
    std::sort(all.begin(), all.end());
    std::printf("load_driver: %zu requests (%zu with text, %zu with an embedding) from %d threads "
                "in %.3f s: %.0f requests/s\n",
                all.size(), txt.size(), emb.size(), o.threads, seconds,
                static_cast<double>(all.size()) / seconds);
    auto print_latency = [](const char *what, const std::vector<double> &sorted) {
      if (sorted.empty()) return;
      std::printf("load_driver: latency us %-10s p50 %.0f  p90 %.0f  p99 %.0f  max %.0f\n", what,
                  percentile(sorted, 50), percentile(sorted, 90), percentile(sorted, 99),
                  sorted.back());
    };
    print_latency("all", all);
    if (!txt.empty()) {
      print_latency("text", txt);
      print_latency("embedding", emb);
    }
    std::printf("load_driver: chosen models:");
    for (const auto &kv : chosen) std::printf(" %s=%ld", kv.first.c_str(), kv.second);
    std::printf("\n");
    if (!expected.empty())
      std::printf("load_driver: %ld answers checked against the Rust decisions, %ld differ\n",
                  checked.load(), mismatches.load());
    const long missing = o.total - static_cast<long>(all.size());
    if (errors > 0 || mismatches > 0 || missing > 0 || (!expected.empty() && checked == 0)) {
      std::printf("load_driver: FAILED: %ld errors, %ld mismatches, %ld missing answers\n",
                  errors.load(), mismatches.load(), missing);
      return 1;
    }
  } catch (const std::exception &e) {
    std::cerr << "load_driver: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
