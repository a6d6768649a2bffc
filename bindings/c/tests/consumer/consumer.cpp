// A program built against an installed libpointsman, as a user would build it: through
// pkg-config or CMake's find_package(Pointsman). Prints what the router is and routes one query.
//
// Usage: consumer ROUTER_FILE
#include <cstdio>
#include <vector>

#include <pointsman.h>
#include <pointsman.hpp>

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s ROUTER_FILE\n", argv[0]);
    return 2;
  }
  if (pointsman::version() != PM_VERSION) {
    std::fprintf(stderr, "header %s does not match library %s\n", PM_VERSION, pm_version());
    return 1;
  }
  try {
    const pointsman::Router router = pointsman::Router::load(argv[1]);
    std::vector<float> query(router.dim(), 0.0f);
    query[0] = 1.0f;
    const pointsman::Decision d = router.route(query, 0.0);
    std::printf("consumer: libpointsman %s, %s router over %zu models, query -> %s (q=%.3f)\n",
                pm_version(), std::string(router.kind()).c_str(), router.num_models(),
                std::string(router.model_name(d.model)).c_str(), d.quality);
  } catch (const pointsman::Error &e) {
    std::fprintf(stderr, "consumer: %s: %s\n", e.status_name(), e.what());
    return 1;
  }
  return 0;
}
