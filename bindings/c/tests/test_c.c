/*
 * The C API from C99: happy path against the decisions Rust made (expected.txt, written by the
 * `fixture` example from the same saved router), NULL arguments, wrong dimensions, corrupt router
 * files, invalid UTF-8 and 8 threads routing at once; then the embedder (texts.txt of the fixture:
 * embeddings equal to the Rust embedder's and within 1e-5 of the sentence-transformers reference,
 * text routed as Rust routes it, its NULL, UTF-8, length and empty-text cases, and 8 threads
 * embedding and routing text at once); cascade sessions (chain.safetensors, and
 * cascade.safetensors against the Rust sessions of cascade_expected.txt); a learner routed,
 * taught and saved by 8 threads at once, its observation count checked against the saved file;
 * a router repriced, one with a model onboarded, and a stack of kNN and the zero router loaded
 * and repriced (own_data_expected.txt).
 *
 * Usage: test_c FIXTURE_DIR      (built and run by `make -C bindings/c test`)
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pointsman.h"

static int passed = 0;
static int failed = 0;

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (cond) {                                                              \
      passed++;                                                              \
    } else {                                                                 \
      failed++;                                                              \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                        \
  } while (0)

/* Checks a status, printing the error's message when it is not the one expected. */
#define CHECK_STATUS(call, want)                                                         \
  do {                                                                                   \
    pm_error *err_ = NULL;                                                               \
    pm_status got_ = (call);                                                             \
    if (got_ == (want) && (got_ == PM_STATUS_OK) == (err_ == NULL) &&                    \
        (err_ == NULL || pm_error_status(err_) == got_)) {                               \
      passed++;                                                                          \
    } else {                                                                             \
      failed++;                                                                          \
      fprintf(stderr, "%s:%d: %s: status %s, expected %s (%s)\n", __FILE__, __LINE__,    \
              #call, pm_status_name(got_), pm_status_name(want),                         \
              err_ ? pm_error_message(err_) : "no error object");                        \
    }                                                                                    \
    pm_error_free(err_);                                                                 \
  } while (0)

/* The fixture. */
static size_t rows, dim;
static float *features;      /* rows × dim */
static double *tokens;       /* rows */
static pm_router *router;

typedef struct expectation {
  int rank;                  /* 0: a `route` line, 1: a `rank` line */
  double weight;
  size_t row, index;
  pm_decision d;
} expectation;
static expectation *expected;
static size_t n_expected;

static void die(const char *what, const char *path) {
  fprintf(stderr, "cannot read %s: %s\n", path, what);
  exit(2);
}

static void read_fixture(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/queries.txt", dir);
  FILE *f = fopen(path, "r");
  if (!f) die("missing", path);
  if (fscanf(f, "%zu %zu", &rows, &dim) != 2) die("bad header", path);
  features = malloc(rows * dim * sizeof *features);
  tokens = malloc(rows * sizeof *tokens);
  for (size_t r = 0; r < rows; r++) {
    if (fscanf(f, "%lf", &tokens[r]) != 1) die("bad tokens", path);
    for (size_t j = 0; j < dim; j++)
      if (fscanf(f, "%f", &features[r * dim + j]) != 1) die("bad value", path);
  }
  fclose(f);

  snprintf(path, sizeof path, "%s/expected.txt", dir);
  f = fopen(path, "r");
  if (!f) die("missing", path);
  size_t cap = 1024;
  expected = malloc(cap * sizeof *expected);
  char kind[16];
  while (fscanf(f, "%15s", kind) == 1) {
    expectation e;
    memset(&e, 0, sizeof e);
    e.rank = strcmp(kind, "rank") == 0;
    if (fscanf(f, "%lf %zu", &e.weight, &e.row) != 2) die("bad line", path);
    if (e.rank && fscanf(f, "%zu", &e.index) != 1) die("bad rank", path);
    if (fscanf(f, "%u %lf %lf %lf", &e.d.model, &e.d.quality, &e.d.cost, &e.d.utility) != 4)
      die("bad decision", path);
    if (n_expected == cap) expected = realloc(expected, (cap *= 2) * sizeof *expected);
    expected[n_expected++] = e;
  }
  fclose(f);
  if (n_expected == 0) die("no expectations", path);
}

static int same(const pm_decision *a, const pm_decision *b) {
  /* Bit-for-bit: the C API must return exactly what Rust computed. */
  return a->model == b->model && memcmp(&a->quality, &b->quality, sizeof(double)) == 0 &&
         memcmp(&a->cost, &b->cost, sizeof(double)) == 0 &&
         memcmp(&a->utility, &b->utility, sizeof(double)) == 0;
}

static void test_metadata(void) {
  CHECK(strcmp(pm_version(), PM_VERSION) == 0);
  CHECK(pm_router_dim(router) == dim);
  CHECK(pm_router_num_models(router) == 9);
  CHECK(strcmp(pm_router_kind(router), "knn") == 0);
  const char *emb = pm_router_embedding_model(router);
  CHECK(emb != NULL && strcmp(emb, "all-MiniLM-L6-v2") == 0);
  CHECK(!pm_router_is_learner(router));
  for (size_t m = 0; m < pm_router_num_models(router); m++) {
    const char *name = pm_router_model_name(router, m);
    size_t index = 99;
    CHECK(name != NULL);
    CHECK_STATUS(pm_router_model_index(router, name, &index, &err_), PM_STATUS_OK);
    CHECK(index == m);
  }
  CHECK(pm_router_model_name(router, 9) == NULL);
  size_t index = 42;
  CHECK_STATUS(pm_router_model_index(router, "no-such-model", &index, &err_),
               PM_STATUS_UNKNOWN_MODEL);
  CHECK(index == 42);
  CHECK(strcmp(pm_status_name(PM_STATUS_SHAPE), "SHAPE") == 0);
  CHECK(strcmp(pm_status_name(12345), "UNKNOWN") == 0);
}

/* Every decision equals the one Rust made for the same router, features and cost weight. */
static void test_decisions_equal_rust(void) {
  size_t routes = 0, ranks = 0;
  for (size_t i = 0; i < n_expected; i++) {
    const expectation *e = &expected[i];
    const float *x = features + e->row * dim;
    if (!e->rank) {
      pm_decision d;
      CHECK_STATUS(pm_router_route(router, x, dim, e->weight, &d, &err_), PM_STATUS_OK);
      CHECK(same(&d, &e->d));
      routes++;
    } else if (e->index == 0) {
      pm_decision ranked[3];
      size_t count = 0;
      CHECK_STATUS(pm_router_rank(router, x, dim, tokens[e->row], NULL, e->weight, NULL, 0,
                                  ranked, 3, &count, &err_),
                   PM_STATUS_OK);
      CHECK(count == 3);
      for (size_t k = 0; k < 3 && i + k < n_expected; k++) {
        CHECK(expected[i + k].rank && expected[i + k].index == k);
        CHECK(same(&ranked[k], &expected[i + k].d));
      }
      ranks++;
    }
  }
  CHECK(routes == rows * 4);
  CHECK(ranks == rows * 4);

  /* The batch form chooses what the single form chose, row by row. */
  uint32_t *models = malloc(rows * sizeof *models);
  for (size_t i = 0; i < n_expected; i++) {
    const expectation *e = &expected[i];
    if (e->rank || e->row != 0) continue;
    CHECK_STATUS(pm_router_route_batch(router, features, rows, dim, e->weight, models, rows,
                                       &err_),
                 PM_STATUS_OK);
    size_t mismatches = 0;
    for (size_t j = 0; j < n_expected; j++)
      if (!expected[j].rank && expected[j].weight == e->weight &&
          models[expected[j].row] != expected[j].d.model)
        mismatches++;
    CHECK(mismatches == 0);
  }
  free(models);
}

static void test_null_arguments(void) {
  pm_decision d = {77, 0.0, 0.0, 0.0};
  uint32_t models[2] = {7, 7};
  pm_router *r = NULL;
  CHECK_STATUS(pm_router_load(NULL, &r, &err_), PM_STATUS_NULL_ARGUMENT);
  CHECK(r == NULL);
  CHECK_STATUS(pm_router_route(NULL, features, dim, 0.0, &d, &err_), PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_router_route(router, NULL, dim, 0.0, &d, &err_), PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_router_route(router, features, dim, 0.0, NULL, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_router_route_batch(router, NULL, 2, dim, 0.0, models, 2, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_router_route_batch(router, features, 2, dim, 0.0, NULL, 2, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_router_rank(router, features, dim, -1.0, NULL, 0.0, NULL, 0, NULL, 3, NULL,
                              &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_router_observe(NULL, features, dim, 0, 1.0, 0.0, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK(d.model == 77 && models[0] == 7 && models[1] == 7);

  /* The message names the argument; a NULL err is allowed. */
  pm_error *err = NULL;
  pm_router_route(router, features, dim, 0.0, NULL, &err);
  CHECK(err != NULL && strcmp(pm_error_message(err), "out is NULL") == 0);
  pm_error_free(err);
  CHECK(pm_router_route(router, NULL, dim, 0.0, &d, NULL) == PM_STATUS_NULL_ARGUMENT);

  CHECK(pm_router_num_models(NULL) == 0);
  CHECK(pm_router_dim(NULL) == 0);
  CHECK(pm_router_model_name(NULL, 0) == NULL);
  CHECK(pm_router_kind(NULL) == NULL);
  CHECK(pm_error_message(NULL) == NULL);
  CHECK(pm_error_status(NULL) == PM_STATUS_NULL_ARGUMENT);
  pm_router_free(NULL);
  pm_error_free(NULL);
}

static void test_wrong_dims_and_values(void) {
  pm_decision d = {77, 0.0, 0.0, 0.0};
  pm_error *err = NULL;
  CHECK(pm_router_route(router, features, dim - 1, 0.0, &d, &err) == PM_STATUS_SHAPE);
  CHECK(err != NULL && strcmp(pm_error_message(err), "dimension mismatch: expected 384, got 383") == 0);
  pm_error_free(err);
  CHECK_STATUS(pm_router_route(router, features, 0, 0.0, &d, &err_), PM_STATUS_SHAPE);
  CHECK_STATUS(pm_router_route(router, features, dim, -5.0, &d, &err_), PM_STATUS_CONFIG);
  CHECK_STATUS(pm_router_route(router, features, dim, NAN, &d, &err_), PM_STATUS_CONFIG);
  float *bad = malloc(dim * sizeof *bad);
  memcpy(bad, features, dim * sizeof *bad);
  bad[5] = NAN;
  CHECK_STATUS(pm_router_route(router, bad, dim, 0.0, &d, &err_), PM_STATUS_INVALID_FEATURES);
  memset(bad, 0, dim * sizeof *bad);
  CHECK_STATUS(pm_router_route(router, bad, dim, 0.0, &d, &err_), PM_STATUS_INVALID_FEATURES);
  free(bad);
  CHECK(d.model == 77);

  uint32_t models[4] = {7, 7, 7, 7};
  CHECK_STATUS(pm_router_route_batch(router, features, 4, dim, 0.0, models, 3, &err_),
               PM_STATUS_SHAPE);
  CHECK_STATUS(pm_router_route_batch(router, features, 4, dim + 1, 0.0, models, 4, &err_),
               PM_STATUS_SHAPE);
  CHECK(models[0] == 7 && models[3] == 7);
  CHECK_STATUS(pm_router_route_batch(router, NULL, 0, dim, 0.0, NULL, 0, &err_), PM_STATUS_OK);

  uint8_t allowed[9] = {0};
  pm_decision ranked[2];
  CHECK_STATUS(pm_router_rank(router, features, dim, -1.0, NULL, 0.0, allowed, 9, ranked, 2,
                              NULL, &err_),
               PM_STATUS_CONFIG);
  CHECK_STATUS(pm_router_rank(router, features, dim, -1.0, NULL, 0.0, allowed, 8, ranked, 2,
                              NULL, &err_),
               PM_STATUS_SHAPE);
  CHECK_STATUS(pm_router_rank(router, features, dim, -1.0, NULL, 0.0, NULL, 0, ranked, 0, NULL,
                              &err_),
               PM_STATUS_SHAPE);
  /* NULL with length 0 is allowed as an array, so it is the same shape error, not a NULL one. */
  CHECK_STATUS(pm_router_rank(router, features, dim, -1.0, NULL, 0.0, NULL, 0, NULL, 0, NULL,
                              &err_),
               PM_STATUS_SHAPE);
  /* Only model 4 allowed: it is the decision, and the only entry. */
  allowed[4] = 1;
  size_t count = 0;
  CHECK_STATUS(pm_router_rank(router, features, dim, 100.0, NULL, 0.0, allowed, 9, ranked, 2,
                              &count, &err_),
               PM_STATUS_OK);
  CHECK(count == 1 && ranked[0].model == 4);

  CHECK_STATUS(pm_router_observe(router, features, dim, 0, 0.5, 1e-4, &err_),
               PM_STATUS_UNSUPPORTED);
}

static void write_file(const char *path, const void *bytes, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) die("cannot write", path);
  fwrite(bytes, 1, len, f);
  fclose(f);
}

/* Milliseconds of the monotonic clock. */
static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The crafted files of issue 23 (fuzz/regressions/router_file/, written by fuzz/make_seeds.py):
 * each is a typed status in well under 100 ms, never an abort; and so are /dev/zero and a FIFO
 * with no writer (which must not block). */
static void test_crafted_files(const char *dir) {
  static const char *crafted[] = {
      "linucb_dim_100000", "linucb_dim_100000000000", "linucb_dim_30000", "thompson_dim_30000",
      "thompson_tampered_inverse", "knn_price_1e308", "zero_format_version_01",
      "zero_format_version_+1", "header_longer_than_file", "mf_truncated_100",
  };
  char path[4096];
  for (size_t i = 0; i < sizeof crafted / sizeof crafted[0]; i++) {
    pm_router *r = NULL;
    snprintf(path, sizeof path, "%s/%s.safetensors", REGRESSIONS_DIR, crafted[i]);
    double t0 = now_ms();
    CHECK_STATUS(pm_router_load(path, &r, &err_), PM_STATUS_FORMAT);
    double ms = now_ms() - t0;
    if (ms >= 100.0) fprintf(stderr, "%s: %.1f ms\n", crafted[i], ms);
    CHECK(ms < 100.0);
    CHECK(r == NULL);
  }
  pm_router *r = NULL;
  /* A well-formed file of a format version this build does not read. */
  snprintf(path, sizeof path, "%s/zero_format_version_3.safetensors", REGRESSIONS_DIR);
  CHECK_STATUS(pm_router_load(path, &r, &err_), PM_STATUS_UNSUPPORTED_VERSION);
  CHECK_STATUS(pm_router_load("/dev/zero", &r, &err_), PM_STATUS_IO);
  snprintf(path, sizeof path, "%s/fifo.safetensors", dir);
  unlink(path);
  if (mkfifo(path, 0600) != 0) die("cannot make a FIFO", path);
  double t0 = now_ms();
  CHECK_STATUS(pm_router_load(path, &r, &err_), PM_STATUS_IO);
  CHECK(now_ms() - t0 < 100.0);
  unlink(path);
  CHECK(r == NULL);
}

static void test_corrupt_files(const char *dir) {
  char path[4096];
  pm_router *r = NULL;

  snprintf(path, sizeof path, "%s/does-not-exist.safetensors", dir);
  CHECK_STATUS(pm_router_load(path, &r, &err_), PM_STATUS_IO);

  snprintf(path, sizeof path, "%s/garbage.safetensors", dir);
  write_file(path, "\x10\x00\x00\x00\x00\x00\x00\x00{not json at all", 24);
  CHECK_STATUS(pm_router_load(path, &r, &err_), PM_STATUS_FORMAT);

  /* The real router, cut in half. */
  char src[4096];
  snprintf(src, sizeof src, "%s/router.safetensors", dir);
  FILE *f = fopen(src, "rb");
  if (!f) die("missing", src);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *bytes = malloc((size_t)size);
  if (fread(bytes, 1, (size_t)size, f) != (size_t)size) die("short read", src);
  fclose(f);
  snprintf(path, sizeof path, "%s/truncated.safetensors", dir);
  write_file(path, bytes, (size_t)size / 2);
  CHECK_STATUS(pm_router_load(path, &r, &err_), PM_STATUS_FORMAT);
  /* A flipped byte inside the JSON header. */
  bytes[20] = (char)0xff;
  snprintf(path, sizeof path, "%s/flipped.safetensors", dir);
  write_file(path, bytes, (size_t)size);
  CHECK_STATUS(pm_router_load(path, &r, &err_), PM_STATUS_FORMAT);
  free(bytes);
  CHECK(r == NULL);
}

static void test_invalid_utf8(void) {
  pm_router *r = NULL;
  pm_error *err = NULL;
  CHECK(pm_router_load("/tmp/caf\xe9.safetensors", &r, &err) == PM_STATUS_INVALID_UTF8);
  CHECK(err != NULL &&
        strcmp(pm_error_message(err), "path is not valid UTF-8 (invalid byte at offset 8)") == 0);
  pm_error_free(err);
  pm_decision ranked[1];
  CHECK_STATUS(pm_router_rank(router, features, dim, -1.0, "\xc3\x28", 0.0, NULL, 0, ranked, 1,
                              NULL, &err_),
               PM_STATUS_INVALID_UTF8);
  size_t index;
  CHECK_STATUS(pm_router_model_index(router, "gpt\xff", &index, &err_), PM_STATUS_INVALID_UTF8);
  CHECK(r == NULL);
}

/* 8 threads route every expectation at once, sharing one router; odd threads also route the
 * whole batch. */
typedef struct worker {
  int id;
  size_t mismatches;
  size_t observed; /* feedback calls that succeeded */
  size_t saves;    /* saves that succeeded */
} worker;

static void *route_all(void *arg) {
  worker *w = arg;
  uint32_t *models = malloc(rows * sizeof *models);
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < n_expected; i++) {
      const expectation *e = &expected[(i + (size_t)w->id * 97) % n_expected];
      if (e->rank) continue;
      pm_decision d;
      if (pm_router_route(router, features + e->row * dim, dim, e->weight, &d, NULL) !=
              PM_STATUS_OK ||
          !same(&d, &e->d))
        w->mismatches++;
    }
    if (w->id % 2 == 1) {
      const expectation *e = &expected[0];
      if (pm_router_route_batch(router, features, rows, dim, e->weight, models, rows, NULL) !=
          PM_STATUS_OK)
        w->mismatches++;
      for (size_t i = 0; i < n_expected; i++)
        if (!expected[i].rank && expected[i].weight == e->weight &&
            models[expected[i].row] != expected[i].d.model)
          w->mismatches++;
    }
  }
  free(models);
  return NULL;
}

static void test_threads(void) {
  enum { THREADS = 8 };
  pthread_t threads[THREADS];
  worker workers[THREADS];
  for (int t = 0; t < THREADS; t++) {
    workers[t].id = t;
    workers[t].mismatches = 0;
    CHECK(pthread_create(&threads[t], NULL, route_all, &workers[t]) == 0);
  }
  for (int t = 0; t < THREADS; t++) {
    CHECK(pthread_join(threads[t], NULL) == 0);
    CHECK(workers[t].mismatches == 0);
  }
}

/* ---- a learner: 8 threads, half observing feedback while the others route ---- */

static pm_router *bandit;
static char stress_path[4096];

static double seconds_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Odd threads observe feedback, even ones route; thread 0 also saves the learner now and then.
   Bounded in time (1.5 s) and in count. */
static void *observe_or_route(void *arg) {
  worker *w = arg;
  const double until = seconds_now() + 1.5;
  for (size_t n = 0; n < rows * 20 && seconds_now() < until; n++) {
    const float *x = features + ((n + (size_t)w->id * 13) % rows) * dim;
    pm_decision d;
    if (pm_router_route(bandit, x, dim, 300.0, &d, NULL) != PM_STATUS_OK) w->mismatches++;
    if (w->id % 2 == 1) {
      if (pm_router_observe(bandit, x, dim, d.model, n % 3 == 0 ? 1.0 : 0.25, 1e-4, NULL) ==
          PM_STATUS_OK)
        w->observed++;
      else
        w->mismatches++;
    }
    if (w->id == 0 && n % 64 == 0) {
      if (pm_router_save(bandit, stress_path, NULL) == PM_STATUS_OK)
        w->saves++;
      else
        w->mismatches++;
    }
  }
  return NULL;
}

static void test_learner(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/bandit.safetensors", dir);
  CHECK_STATUS(pm_router_load(path, &bandit, &err_), PM_STATUS_OK);
  if (bandit == NULL) return;
  CHECK(pm_router_is_learner(bandit));
  CHECK(pm_router_dim(bandit) == dim && pm_router_num_models(bandit) == 9);
  /* Bad feedback is refused with a status, and changes nothing. */
  CHECK_STATUS(pm_router_observe(bandit, features, dim, 9, 0.5, 1e-4, &err_),
               PM_STATUS_UNKNOWN_MODEL);
  CHECK_STATUS(pm_router_observe(bandit, features, dim, 0, 1.5, 1e-4, &err_),
               PM_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(pm_router_observe(bandit, features, dim - 1, 0, 0.5, 1e-4, &err_),
               PM_STATUS_SHAPE);
  CHECK_STATUS(pm_router_observe(bandit, NULL, dim, 0, 0.5, 1e-4, &err_),
               PM_STATUS_NULL_ARGUMENT);
  uint64_t before = 0, after = 0, saved_count = 0;
  CHECK_STATUS(pm_router_observations(bandit, &before, &err_), PM_STATUS_OK);
  CHECK_STATUS(pm_router_observations(bandit, NULL, &err_), PM_STATUS_NULL_ARGUMENT);
  /* The stress: 8 threads route, observe and save at once; no observation is lost, and the
     file saved last holds exactly the learned state. */
  snprintf(stress_path, sizeof stress_path, "%s/stress.safetensors", dir);
  enum { THREADS = 8 };
  pthread_t threads[THREADS];
  worker workers[THREADS];
  for (int t = 0; t < THREADS; t++) {
    workers[t].id = t;
    workers[t].mismatches = 0;
    workers[t].observed = 0;
    workers[t].saves = 0;
    CHECK(pthread_create(&threads[t], NULL, observe_or_route, &workers[t]) == 0);
  }
  size_t observed = 0;
  for (int t = 0; t < THREADS; t++) {
    CHECK(pthread_join(threads[t], NULL) == 0);
    CHECK(workers[t].mismatches == 0);
    observed += workers[t].observed;
  }
  CHECK(workers[0].saves > 0 && observed > 0);
  CHECK_STATUS(pm_router_observations(bandit, &after, &err_), PM_STATUS_OK);
  CHECK(after == before + observed);
  CHECK_STATUS(pm_router_save(bandit, stress_path, &err_), PM_STATUS_OK);
  pm_router *back = NULL;
  CHECK_STATUS(pm_router_load(stress_path, &back, &err_), PM_STATUS_OK);
  if (back != NULL) {
    CHECK_STATUS(pm_router_observations(back, &saved_count, &err_), PM_STATUS_OK);
    CHECK(saved_count == after);
    for (size_t r = 0; r < rows; r += 37) {
      pm_decision a, b;
      CHECK_STATUS(pm_router_route(bandit, features + r * dim, dim, 300.0, &a, &err_),
                   PM_STATUS_OK);
      CHECK_STATUS(pm_router_route(back, features + r * dim, dim, 300.0, &b, &err_),
                   PM_STATUS_OK);
      CHECK(a.model == b.model && a.quality == b.quality && a.utility == b.utility);
    }
    pm_router_free(back);
  }
  CHECK_STATUS(pm_router_save(bandit, "/nonexistent/dir/x.safetensors", &err_), PM_STATUS_IO);
  remove(stress_path);
  pm_decision d;
  CHECK_STATUS(pm_router_route(bandit, features, dim, 300.0, &d, &err_), PM_STATUS_OK);
  pm_router_free(bandit);
}

/* ---- the embedder ---- */

typedef struct text_case {
  char *text;
  float *embedding; /* the Rust embedder's, dim */
  float *reference; /* sentence-transformers', dim */
  size_t n_routes;
  double weights[8];
  pm_decision routes[8];
} text_case;
static text_case *texts;
static size_t n_texts;
static pm_embedder *embedder;

static char *read_line(FILE *f) {
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  int c;
  while ((c = fgetc(f)) != EOF && c != '\n') {
    if (len + 1 == cap) buf = realloc(buf, cap *= 2);
    buf[len++] = (char)c;
  }
  if (c == EOF && len == 0) {
    free(buf);
    return NULL;
  }
  buf[len] = 0;
  return buf;
}

static float *parse_floats(const char *s, const char *path) {
  float *v = malloc(dim * sizeof *v);
  char *end;
  for (size_t j = 0; j < dim; j++) {
    v[j] = strtof(s, &end);
    if (end == s) die("bad float", path);
    s = end;
  }
  return v;
}

/* Returns 0 when the fixture has no texts (no embedding model installed). */
static int read_texts(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/texts.txt", dir);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t cap = 16;
  texts = calloc(cap, sizeof *texts);
  char *line;
  while ((line = read_line(f)) != NULL) {
    if (strncmp(line, "text ", 5) == 0) {
      if (n_texts == cap) {
        texts = realloc(texts, (cap *= 2) * sizeof *texts);
        memset(texts + n_texts, 0, (cap - n_texts) * sizeof *texts);
      }
      texts[n_texts++].text = strcpy(malloc(strlen(line + 5) + 1), line + 5);
    } else if (n_texts == 0) {
      die("a line before the first text", path);
    } else if (strncmp(line, "embedding ", 10) == 0) {
      texts[n_texts - 1].embedding = parse_floats(line + 10, path);
    } else if (strncmp(line, "reference ", 10) == 0) {
      texts[n_texts - 1].reference = parse_floats(line + 10, path);
    } else if (strncmp(line, "route ", 6) == 0) {
      text_case *t = &texts[n_texts - 1];
      if (t->n_routes == 8) die("too many routes", path);
      pm_decision *d = &t->routes[t->n_routes];
      if (sscanf(line + 6, "%lf %u %lf %lf %lf", &t->weights[t->n_routes], &d->model,
                 &d->quality, &d->cost, &d->utility) != 5)
        die("bad route", path);
      t->n_routes++;
    } else {
      die("unknown line", path);
    }
    free(line);
  }
  fclose(f);
  for (size_t i = 0; i < n_texts; i++)
    if (!texts[i].embedding || !texts[i].reference) die("a text without embeddings", path);
  return n_texts > 0;
}

static void free_texts(void) {
  for (size_t i = 0; i < n_texts; i++) {
    free(texts[i].text);
    free(texts[i].embedding);
    free(texts[i].reference);
  }
  free(texts);
}

static void test_embedder_happy_path(void) {
  CHECK(pm_embedder_dim(embedder) == dim);
  CHECK(strcmp(pm_embedder_model_name(embedder), "all-MiniLM-L6-v2") == 0);
  CHECK(strcmp(pm_embedder_model_name(embedder), pm_router_embedding_model(router)) == 0);
  CHECK(pm_embedder_threads(embedder) == 1);
  CHECK(pm_embedder_max_tokens(embedder) == 256);
  float *v = malloc(dim * sizeof *v);
  size_t routes = 0, empty = 0;
  for (size_t i = 0; i < n_texts; i++) {
    const text_case *t = &texts[i];
    CHECK_STATUS(pm_embedder_embed(embedder, t->text, v, dim, &err_), PM_STATUS_OK);
    /* Equal to the Rust embedder's to the bit, and to the reference within 1e-5. */
    CHECK(memcmp(v, t->embedding, dim * sizeof *v) == 0);
    double worst = 0.0;
    for (size_t j = 0; j < dim; j++) worst = fmax(worst, fabs((double)v[j] - t->reference[j]));
    CHECK(worst < 1e-5);
    for (size_t k = 0; k < t->n_routes; k++) {
      pm_decision d;
      CHECK_STATUS(pm_router_route_text(router, embedder, t->text, t->weights[k], &d, &err_),
                   PM_STATUS_OK);
      CHECK(same(&d, &t->routes[k]));
      /* The ranking's first entry is the same decision (prompt tokens estimated alike). */
      pm_decision ranked[3];
      size_t count = 0;
      CHECK_STATUS(pm_router_rank_text(router, embedder, t->text, -1.0, NULL, t->weights[k],
                                       NULL, 0, ranked, 3, &count, &err_),
                   PM_STATUS_OK);
      CHECK(count == 3 && same(&ranked[0], &t->routes[k]));
      routes++;
    }
    if (t->n_routes == 0) empty++;
  }
  CHECK(routes >= 8 * 4 && empty == 1);

  /* A batch embeds each text as alone (to float rounding: the batch packs them together). */
  const char *batch[3] = {texts[0].text, texts[1].text, texts[2].text};
  float *rows3 = malloc(3 * dim * sizeof *rows3);
  CHECK_STATUS(pm_embedder_embed_batch(embedder, batch, 3, rows3, 3 * dim, &err_), PM_STATUS_OK);
  double worst = 0.0;
  for (size_t r = 0; r < 3; r++)
    for (size_t j = 0; j < dim; j++)
      worst = fmax(worst, fabs((double)rows3[r * dim + j] - texts[r].embedding[j]));
  CHECK(worst < 1e-6);
  CHECK_STATUS(pm_embedder_embed_batch(embedder, NULL, 0, rows3, 0, &err_), PM_STATUS_OK);
  free(rows3);
  free(v);
}

static void test_embedder_errors(void) {
  float *v = malloc((dim + 1) * sizeof *v);
  for (size_t j = 0; j <= dim; j++) v[j] = 7.0f;
  pm_decision d = {77, 0.0, 0.0, 0.0};
  pm_embedder *e = NULL;

  /* NULL arguments. */
  CHECK_STATUS(pm_embedder_load(NULL, NULL, &err_), PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_embedder_embed(NULL, "hello", v, dim, &err_), PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_embedder_embed(embedder, NULL, v, dim, &err_), PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_embedder_embed(embedder, "hello", NULL, dim, &err_), PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_embedder_embed(embedder, "hello", NULL, 0, &err_), PM_STATUS_SHAPE);
  const char *with_null[2] = {"hello", NULL};
  pm_error *err = NULL;
  CHECK(pm_embedder_embed_batch(embedder, with_null, 2, v, 2 * dim, &err) ==
        PM_STATUS_NULL_ARGUMENT);
  CHECK(err != NULL && strcmp(pm_error_message(err), "texts[1] is NULL") == 0);
  pm_error_free(err);
  CHECK_STATUS(pm_router_route_text(NULL, embedder, "hello", 0.0, &d, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_router_route_text(router, NULL, "hello", 0.0, &d, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_router_route_text(router, embedder, NULL, 0.0, &d, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_router_route_text(router, embedder, "hello", 0.0, NULL, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK(pm_embedder_dim(NULL) == 0 && pm_embedder_model_name(NULL) == NULL);
  CHECK(pm_embedder_threads(NULL) == 0 && pm_embedder_max_tokens(NULL) == 0);
  pm_embedder_free(NULL);

  /* Wrong lengths. */
  CHECK_STATUS(pm_embedder_embed(embedder, "hello", v, dim + 1, &err_), PM_STATUS_SHAPE);
  CHECK_STATUS(pm_embedder_embed(embedder, "hello", v, dim - 1, &err_), PM_STATUS_SHAPE);
  CHECK_STATUS(pm_embedder_embed_batch(embedder, with_null, 1, v, dim + 1, &err_),
               PM_STATUS_SHAPE);

  /* Invalid UTF-8, in the text and in the folder. */
  CHECK_STATUS(pm_embedder_embed(embedder, "caf\xe9", v, dim, &err_), PM_STATUS_INVALID_UTF8);
  CHECK_STATUS(pm_router_route_text(router, embedder, "\xc3\x28 what", 0.0, &d, &err_),
               PM_STATUS_INVALID_UTF8);
  CHECK_STATUS(pm_embedder_load("/tmp/mod\xff" "el", &e, &err_), PM_STATUS_INVALID_UTF8);

  /* Empty text: embedded (as sentence-transformers does), never routed. */
  CHECK_STATUS(pm_router_route_text(router, embedder, "", 0.0, &d, &err_),
               PM_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(pm_router_route_text(router, embedder, " \t\n ", 0.0, &d, &err_),
               PM_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(pm_router_route_text(router, embedder, "hello", -1.0, &d, &err_),
               PM_STATUS_CONFIG);
  pm_decision ranked[2];
  CHECK_STATUS(pm_router_rank_text(router, embedder, "hello", NAN, NULL, 0.0, NULL, 0, ranked, 2,
                                   NULL, &err_),
               PM_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(pm_router_rank_text(router, embedder, "hello", -1.0, NULL, 0.0, NULL, 0, ranked,
                                   0, NULL, &err_),
               PM_STATUS_SHAPE);
  CHECK(d.model == 77);
  for (size_t j = 0; j <= dim; j++) CHECK(v[j] == 7.0f);

  /* Bad folders and options. */
  CHECK_STATUS(pm_embedder_load("/nonexistent/model", &e, &err_), PM_STATUS_MODEL_NOT_FOUND);
  CHECK_STATUS(pm_embedder_load_with_options(NULL, 1, 2, &e, &err_), PM_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(pm_embedder_load_with_options(NULL, 1, 100000, &e, &err_),
               PM_STATUS_INVALID_ARGUMENT);
  CHECK(e == NULL);
  free(v);
}

/* 8 threads embed and route text with one embedder and one router at once, while routing
 * embeddings too. */
static void *embed_all(void *arg) {
  worker *w = arg;
  float *v = malloc(dim * sizeof *v);
  for (size_t n = 0; n < n_texts; n++) {
    const text_case *t = &texts[(n + (size_t)w->id) % n_texts];
    if (pm_embedder_embed(embedder, t->text, v, dim, NULL) != PM_STATUS_OK ||
        memcmp(v, t->embedding, dim * sizeof *v) != 0)
      w->mismatches++;
    for (size_t k = 0; k < t->n_routes; k++) {
      pm_decision d;
      if (pm_router_route_text(router, embedder, t->text, t->weights[k], &d, NULL) !=
              PM_STATUS_OK ||
          !same(&d, &t->routes[k]))
        w->mismatches++;
      const expectation *e = &expected[(n * 7 + k) % n_expected];
      if (!e->rank && (pm_router_route(router, features + e->row * dim, dim, e->weight, &d,
                                       NULL) != PM_STATUS_OK ||
                       !same(&d, &e->d)))
        w->mismatches++;
    }
  }
  free(v);
  return NULL;
}

static void test_embedder_threads(void) {
  enum { THREADS = 8 };
  pthread_t threads[THREADS];
  worker workers[THREADS];
  for (int t = 0; t < THREADS; t++) {
    workers[t].id = t;
    workers[t].mismatches = 0;
    CHECK(pthread_create(&threads[t], NULL, embed_all, &workers[t]) == 0);
  }
  for (int t = 0; t < THREADS; t++) {
    CHECK(pthread_join(threads[t], NULL) == 0);
    CHECK(workers[t].mismatches == 0);
  }
}

/* An embedder with its own pool of 2 threads embeds as the one-thread embedder does. */
static void test_embedder_pool(void) {
  pm_embedder *e = NULL;
  CHECK_STATUS(pm_embedder_load_with_options(NULL, 2, 128, &e, &err_), PM_STATUS_OK);
  if (e == NULL) return;
  CHECK(pm_embedder_threads(e) == 2 && pm_embedder_max_tokens(e) == 128);
  float *v = malloc(dim * sizeof *v);
  CHECK_STATUS(pm_embedder_embed(e, texts[0].text, v, dim, &err_), PM_STATUS_OK);
  double worst = 0.0;
  for (size_t j = 0; j < dim; j++) worst = fmax(worst, fabs((double)v[j] - texts[0].embedding[j]));
  CHECK(worst < 1e-6);
  free(v);
  pm_embedder_free(e);
}

static void test_embedder(const char *dir) {
  if (!read_texts(dir)) {
    const char *ci = getenv("CI");
    fprintf(stderr, "test_c: no %s/texts.txt (the embedding model is not installed: run "
                    "scripts/fetch-model.sh): embedder tests %s\n",
            dir, ci && strcmp(ci, "true") == 0 ? "FAILED" : "SKIPPED");
    if (ci && strcmp(ci, "true") == 0) failed++;
    return;
  }
  pm_error *err = NULL;
  if (pm_embedder_load_with_options(NULL, 1, 0, &embedder, &err) != PM_STATUS_OK) {
    fprintf(stderr, "cannot load the embedder: %s\n", pm_error_message(err));
    pm_error_free(err);
    failed++;
    free_texts();
    return;
  }
  test_embedder_happy_path();
  test_embedder_errors();
  test_embedder_threads();
  test_embedder_pool();
  pm_embedder_free(embedder);
  free_texts();
}

/* Cascade sessions: chain.safetensors (steps decided by the confidences alone: accepted when the
 * posterior 0.1 + 0.8·c reaches 0.8) and cascade.safetensors against the Rust sessions of
 * cascade_expected.txt, to the bit. */
static pm_router *load_fixture_router(const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  pm_router *r = NULL;
  pm_error *err = NULL;
  if (pm_router_load(path, &r, &err) != PM_STATUS_OK) {
    fprintf(stderr, "cannot load %s: %s\n", path, pm_error_message(err));
    pm_error_free(err);
    failed++;
    return NULL;
  }
  return r;
}

static void test_cascade_chain(pm_router *chain) {
  CHECK(pm_router_is_cascade(chain));
  CHECK(!pm_router_is_cascade(router));
  CHECK(!pm_router_is_cascade(NULL));
  CHECK(strcmp(pm_router_kind(chain), "cascade") == 0);

  /* Accepted at the first step. */
  pm_cascade_session *s = NULL;
  pm_cascade_step first = {true, 77, 0.0, 0.0}, step;
  CHECK_STATUS(pm_cascade_start(chain, features, dim, -1.0, -1.0, -1.0, 0, &s, &first, &err_),
               PM_STATUS_OK);
  CHECK(s != NULL && !first.finished && first.expected_cost > 0.0);
  pm_cascade_outcome o;
  CHECK_STATUS(pm_cascade_result(s, &o, NULL, 0, NULL, &err_), PM_STATUS_SESSION_RUNNING);
  CHECK_STATUS(pm_cascade_observe(s, first.model, 1.0, -1.0, &step, &err_), PM_STATUS_OK);
  CHECK(step.finished && step.model == first.model);
  pm_cascade_call calls[4];
  size_t count = 99;
  CHECK_STATUS(pm_cascade_result(s, &o, calls, 4, &count, &err_), PM_STATUS_OK);
  CHECK(o.model == first.model && o.steps == 1 && count == 1 && !o.budget_exhausted);
  CHECK(o.stop == PM_CASCADE_STOP_ACCEPTED && o.total_cost == first.expected_cost);
  CHECK(fabs(o.posterior - 0.9) < 1e-12 && calls[0].model == first.model);
  CHECK(calls[0].confidence == 1.0 && calls[0].cost == first.expected_cost);
  /* Observing after the end. */
  step.model = 77;
  CHECK_STATUS(pm_cascade_observe(s, first.model, 1.0, -1.0, &step, &err_),
               PM_STATUS_SESSION_FINISHED);
  CHECK(step.model == 77);
  CHECK_STATUS(pm_cascade_stop(s, &err_), PM_STATUS_OK);
  pm_cascade_session_free(s);

  /* Escalating, then accepting the second answer, with an observed cost. */
  s = NULL;
  CHECK_STATUS(pm_cascade_start(chain, features, dim, -1.0, -1.0, INFINITY, 0, &s, NULL, &err_),
               PM_STATUS_OK);
  CHECK_STATUS(pm_cascade_observe(s, first.model, 0.1, -1.0, &step, &err_), PM_STATUS_OK);
  CHECK(!step.finished && step.model != first.model);
  pm_cascade_step next;
  CHECK_STATUS(pm_cascade_next(s, &next, &err_), PM_STATUS_OK);
  CHECK(memcmp(&next, &step, sizeof next) == 0);
  uint32_t second = step.model;
  double second_cost = step.expected_cost;
  /* Out of order, unknown model, bad confidences and costs: refused, session unchanged. */
  CHECK_STATUS(pm_cascade_observe(s, first.model, 0.9, -1.0, &step, &err_),
               PM_STATUS_SESSION_OUT_OF_ORDER);
  CHECK_STATUS(pm_cascade_observe(s, 9, 0.9, -1.0, &step, &err_), PM_STATUS_UNKNOWN_MODEL);
  CHECK_STATUS(pm_cascade_observe(s, second, NAN, -1.0, &step, &err_),
               PM_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(pm_cascade_observe(s, second, 1.5, -1.0, &step, &err_),
               PM_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(pm_cascade_observe(s, second, -0.1, -1.0, &step, &err_),
               PM_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(pm_cascade_observe(s, second, 0.9, NAN, &step, &err_),
               PM_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(pm_cascade_observe(s, second, 0.9, INFINITY, &step, &err_),
               PM_STATUS_INVALID_ARGUMENT);
  CHECK(step.model == second && !step.finished);
  CHECK_STATUS(pm_cascade_observe(s, second, 0.9, 0.5, &step, &err_), PM_STATUS_OK);
  CHECK(step.finished && step.model == second);
  count = 0;
  CHECK_STATUS(pm_cascade_result(s, &o, calls, 1, &count, &err_), PM_STATUS_OK);
  CHECK(o.steps == 2 && count == 1 && calls[0].model == first.model && o.model == second);
  CHECK(o.total_cost == first.expected_cost + 0.5 && o.stop == PM_CASCADE_STOP_ACCEPTED);
  pm_cascade_session_free(s);

  /* Budget exhausted: room for the first call, not the second. */
  s = NULL;
  double budget = first.expected_cost + second_cost / 2.0;
  CHECK_STATUS(pm_cascade_start(chain, features, dim, -1.0, -1.0, budget, 0, &s, NULL, &err_),
               PM_STATUS_OK);
  CHECK_STATUS(pm_cascade_observe(s, first.model, 0.1, -1.0, &step, &err_), PM_STATUS_OK);
  CHECK(step.finished && step.model == first.model);
  CHECK_STATUS(pm_cascade_result(s, &o, NULL, 0, NULL, &err_), PM_STATUS_OK);
  CHECK(o.budget_exhausted && o.stop == PM_CASCADE_STOP_BUDGET_EXHAUSTED && o.steps == 1);
  pm_cascade_session_free(s);

  /* Budget too small, bad arguments, a router that is not a cascade: nothing written. */
  s = NULL;
  first.model = 77;
  CHECK_STATUS(pm_cascade_start(chain, features, dim, -1.0, -1.0, first.expected_cost / 2.0, 0,
                                &s, &first, &err_),
               PM_STATUS_BUDGET_TOO_SMALL);
  CHECK_STATUS(pm_cascade_start(chain, features, dim, -1.0, -1.0, NAN, 0, &s, &first, &err_),
               PM_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(pm_cascade_start(chain, features, dim, NAN, -1.0, -1.0, 0, &s, &first, &err_),
               PM_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(pm_cascade_start(chain, features, dim, -1.0, NAN, -1.0, 0, &s, &first, &err_),
               PM_STATUS_CONFIG);
  CHECK_STATUS(pm_cascade_start(chain, features, dim - 1, -1.0, -1.0, -1.0, 0, &s, &first,
                                &err_),
               PM_STATUS_SHAPE);
  CHECK_STATUS(pm_cascade_start(router, features, dim, -1.0, -1.0, -1.0, 0, &s, &first, &err_),
               PM_STATUS_UNSUPPORTED);
  CHECK_STATUS(pm_cascade_start(NULL, features, dim, -1.0, -1.0, -1.0, 0, &s, &first, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_cascade_start(chain, NULL, dim, -1.0, -1.0, -1.0, 0, &s, &first, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_cascade_start(chain, features, dim, -1.0, -1.0, -1.0, 0, NULL, &first, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK(s == NULL && first.model == 77);
  CHECK_STATUS(pm_cascade_observe(NULL, 0, 0.5, -1.0, &step, &err_), PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_cascade_next(NULL, &step, &err_), PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_cascade_result(NULL, &o, NULL, 0, NULL, &err_), PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_cascade_stop(NULL, &err_), PM_STATUS_NULL_ARGUMENT);
  pm_cascade_session_free(NULL);

  /* One step, then stopped by the caller; max_steps 1 stops by itself. */
  CHECK_STATUS(pm_cascade_start(chain, features, dim, -1.0, -1.0, -1.0, 0, &s, &first, &err_),
               PM_STATUS_OK);
  CHECK_STATUS(pm_cascade_observe(s, first.model, 0.1, -1.0, NULL, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_cascade_result(s, NULL, NULL, 0, NULL, &err_), PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_cascade_stop(s, &err_), PM_STATUS_SESSION_RUNNING);
  CHECK_STATUS(pm_cascade_observe(s, first.model, 0.1, -1.0, &step, &err_), PM_STATUS_OK);
  CHECK_STATUS(pm_cascade_stop(s, &err_), PM_STATUS_OK);
  CHECK_STATUS(pm_cascade_next(s, &step, &err_), PM_STATUS_OK);
  CHECK(step.finished && step.model == first.model);
  CHECK_STATUS(pm_cascade_result(s, &o, NULL, 0, NULL, &err_), PM_STATUS_OK);
  CHECK(o.stop == PM_CASCADE_STOP_STOPPED && o.steps == 1);
  CHECK_STATUS(pm_cascade_observe(s, second, 0.5, -1.0, &step, &err_),
               PM_STATUS_SESSION_FINISHED);
  pm_cascade_session_free(s);
  s = NULL;
  CHECK_STATUS(pm_cascade_start(chain, features, dim, -1.0, -1.0, -1.0, 1, &s, &first, &err_),
               PM_STATUS_OK);
  CHECK_STATUS(pm_cascade_observe(s, first.model, 0.1, -1.0, &step, &err_), PM_STATUS_OK);
  CHECK(step.finished);
  CHECK_STATUS(pm_cascade_result(s, &o, NULL, 0, NULL, &err_), PM_STATUS_OK);
  CHECK(o.stop == PM_CASCADE_STOP_MAX_STEPS);
  pm_cascade_session_free(s);
  CHECK(strcmp(pm_status_name(PM_STATUS_BUDGET_TOO_SMALL), "BUDGET_TOO_SMALL") == 0);
}

/* Every session of cascade_expected.txt replayed through C: the same calls and outcome. */
static void test_cascade_equals_rust(const char *dir, pm_router *cascade) {
  char path[4096];
  snprintf(path, sizeof path, "%s/cascade_expected.txt", dir);
  FILE *f = fopen(path, "r");
  if (!f) die("missing", path);
  char kind[16];
  size_t sessions = 0, exhausted = 0;
  while (fscanf(f, "%15s", kind) == 1) {
    size_t row, k;
    double budget;
    unsigned max_steps;
    if (strcmp(kind, "session") != 0 ||
        fscanf(f, "%zu %lf %u %zu", &row, &budget, &max_steps, &k) != 4 || row >= rows)
      die("bad session line", path);
    pm_cascade_session *s = NULL;
    pm_cascade_step step;
    CHECK_STATUS(pm_cascade_start(cascade, features + row * dim, dim, -1.0, -1.0, budget,
                                  max_steps, &s, &step, &err_),
                 PM_STATUS_OK);
    if (s == NULL) die("a session failed to start", path);
    for (size_t i = 0; i < k; i++) {
      unsigned model;
      double c;
      if (fscanf(f, "%u %lf", &model, &c) != 2) die("bad call", path);
      CHECK(!step.finished && step.model == model);
      CHECK_STATUS(pm_cascade_observe(s, model, c, -1.0, &step, &err_), PM_STATUS_OK);
    }
    CHECK(step.finished);
    unsigned accepted, exhausted_flag, stop;
    double posterior, total;
    if (fscanf(f, "%u %lf %lf %u %u", &accepted, &posterior, &total, &exhausted_flag, &stop) !=
        5)
      die("bad outcome", path);
    pm_cascade_outcome o;
    CHECK_STATUS(pm_cascade_result(s, &o, NULL, 0, NULL, &err_), PM_STATUS_OK);
    CHECK(o.model == accepted && o.steps == k && (unsigned)o.stop == stop);
    CHECK(memcmp(&o.posterior, &posterior, sizeof posterior) == 0);
    CHECK(memcmp(&o.total_cost, &total, sizeof total) == 0);
    CHECK(o.budget_exhausted == (exhausted_flag != 0));
    exhausted += o.budget_exhausted;
    sessions++;
    pm_cascade_session_free(s);
  }
  fclose(f);
  CHECK(sessions > 0 && exhausted > 0);
}

static void test_cascade(const char *dir) {
  pm_router *chain = load_fixture_router(dir, "chain.safetensors");
  pm_router *cascade = load_fixture_router(dir, "cascade.safetensors");
  if (chain) test_cascade_chain(chain);
  if (cascade) test_cascade_equals_rust(dir, cascade);
  pm_router_free(chain);
  pm_router_free(cascade);
}

/* Decision-time policies: a rule with its audit, a budget charged by record and its hard stop,
 * caps that leave no model, an episode, bad policies, NULL arguments. */
static void test_policy(void) {
  const char *first = pm_router_model_name(router, 0);
  char json[1024];
  snprintf(json, sizeof json,
           "{\"rules\": [{\"name\": \"free-tier\", \"when\": {\"tenant\": [\"free\"]},"
           " \"then\": {\"allow\": [\"%s\"]}}],"
           " \"budgets\": [{\"key\": \"tenant\", \"limit_usd\": 1e-3,"
           " \"window\": {\"kind\": \"total\"}, \"pace\": false}]}",
           first);
  pm_policy *policy = NULL;
  CHECK_STATUS(pm_policy_from_json(router, json, &policy, &err_), PM_STATUS_OK);
  pm_decision d;
  pm_policy_audit *audit = NULL;
  CHECK_STATUS(pm_policy_route(policy, features, dim, tokens[0], NULL, "hello", "free", NULL,
                               NULL, NULL, -1.0, &d, &audit, &err_),
               PM_STATUS_OK);
  CHECK(d.model == 0);
  CHECK(audit != NULL && strstr(pm_policy_audit_json(audit), "\"rules\":[\"free-tier\"]") != NULL);
  CHECK(audit != NULL && strstr(pm_policy_audit_json(audit), "\"key\":\"tenant:free\"") != NULL);
  pm_policy_audit_free(audit);
  /* Another tenant: the rule does not fire; spend all of acme's budget, then it stops. */
  audit = NULL;
  CHECK_STATUS(pm_policy_route(policy, features, dim, tokens[0], NULL, NULL, "acme", NULL, NULL,
                               NULL, -1.0, &d, NULL, &err_),
               PM_STATUS_OK);
  CHECK_STATUS(pm_policy_record(policy, pm_router_model_name(router, d.model), 1e-3, "acme", NULL,
                                NULL, NULL, &err_),
               PM_STATUS_OK);
  CHECK_STATUS(pm_policy_route(policy, features, dim, tokens[0], NULL, NULL, "acme", NULL, NULL,
                               NULL, -1.0, &d, &audit, &err_),
               PM_STATUS_BUDGET_EXHAUSTED);
  CHECK(audit != NULL &&
        strstr(pm_policy_audit_json(audit), "\"refused\":\"budget_exhausted\"") != NULL);
  pm_policy_audit_free(audit);
  CHECK_STATUS(pm_policy_record(policy, "no-such-model", 0.0, "acme", NULL, NULL, NULL, &err_),
               PM_STATUS_UNKNOWN_MODEL);
  CHECK_STATUS(pm_policy_record(policy, NULL, -1.0, "acme", NULL, NULL, NULL, &err_),
               PM_STATUS_INVALID_ARGUMENT);
  pm_policy_free(policy);

  /* A cap no model meets: a typed refusal, never a silent pick. */
  policy = NULL;
  CHECK_STATUS(pm_policy_from_json(router, "{\"caps\": {\"max_cost\": 0}}", &policy, &err_),
               PM_STATUS_OK);
  CHECK_STATUS(pm_policy_route(policy, features, dim, tokens[0], NULL, NULL, NULL, NULL, NULL,
                               NULL, -1.0, &d, NULL, &err_),
               PM_STATUS_NO_MODEL_FITS);
  pm_policy_free(policy);

  /* An episode: its budget keys the step. */
  policy = NULL;
  CHECK_STATUS(pm_policy_from_json(router, "{}", &policy, &err_), PM_STATUS_OK);
  pm_episode *episode = NULL;
  CHECK_STATUS(pm_episode_new("run-1", 1.0, 3, 1.0, &episode, &err_), PM_STATUS_OK);
  audit = NULL;
  CHECK_STATUS(pm_policy_route(policy, features, dim, tokens[0], NULL, NULL, NULL, NULL, NULL,
                               episode, 100.0, &d, &audit, &err_),
               PM_STATUS_OK);
  CHECK(audit != NULL && strstr(pm_policy_audit_json(audit), "\"key\":\"episode:run-1\"") != NULL);
  pm_policy_audit_free(audit);
  CHECK_STATUS(pm_policy_record(policy, NULL, d.cost, NULL, NULL, NULL, episode, &err_),
               PM_STATUS_OK);
  pm_episode_free(episode);
  pm_episode *bad = NULL;
  CHECK_STATUS(pm_episode_new("", 1.0, 3, 1.0, &bad, &err_), PM_STATUS_CONFIG);
  CHECK(bad == NULL);
  pm_policy_free(policy);

  /* Bad policies and arguments. */
  policy = NULL;
  CHECK_STATUS(pm_policy_from_json(router, "{\"rulez\": []}", &policy, &err_), PM_STATUS_FORMAT);
  CHECK_STATUS(pm_policy_from_json(router,
                                   "{\"rules\": [{\"name\": \"x\", \"then\": {\"force\": \"nope\"}}]}",
                                   &policy, &err_),
               PM_STATUS_CONFIG);
  CHECK_STATUS(pm_policy_load(router, "/nonexistent/policy.toml", &policy, &err_), PM_STATUS_IO);
  CHECK(policy == NULL);
  CHECK_STATUS(pm_policy_route(NULL, features, dim, 0.0, NULL, NULL, NULL, NULL, NULL, NULL, -1.0,
                               &d, NULL, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK(pm_policy_audit_json(NULL) == NULL);
  pm_policy_free(NULL);
  pm_episode_free(NULL);
  pm_policy_audit_free(NULL);
  CHECK(strcmp(pm_status_name(PM_STATUS_BUDGET_EXHAUSTED), "BUDGET_EXHAUSTED") == 0);
}

/* The same router opened memory-mapped (pm_router_open_mmap) decides exactly as the loaded one
 * (every expectation of the fixture, single and batch); a missing file and NULL arguments are
 * typed statuses. */
static void test_mmap(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/router.safetensors", dir);
  pm_router *mapped = NULL;
  CHECK_STATUS(pm_router_open_mmap(path, &mapped, &err_), PM_STATUS_OK);
  if (mapped == NULL) return;
  pm_router *loaded = router;
  router = mapped;
  test_decisions_equal_rust();
  router = loaded;
  pm_router_free(mapped);
  snprintf(path, sizeof path, "%s/no-such-router.safetensors", dir);
  pm_router *r = NULL;
  CHECK_STATUS(pm_router_open_mmap(path, &r, &err_), PM_STATUS_IO);
  CHECK(r == NULL);
  CHECK_STATUS(pm_router_open_mmap(NULL, &r, &err_), PM_STATUS_NULL_ARGUMENT);
}

/* Repricing and onboarding: the new routers decide as Rust's did (own_data_expected.txt), the
 * routers they came from are unchanged, and bad arguments give their statuses. */
static void test_own_data(const char *dir) {
  char path[4096], held[256], data[3072], models_json[4096];
  snprintf(path, sizeof path, "%s/own_data.txt", dir);
  FILE *f = fopen(path, "r");
  if (!f) die("missing", path);
  if (fscanf(f, "%255s %3071s", held, data) != 2) die("bad line", path);
  fclose(f);
  snprintf(models_json, sizeof models_json, "%s/models.json", data);

  pm_router *repriced = NULL, *eight = NULL, *onboarded = NULL, *from_card = NULL;
  pm_router *stack = NULL, *stack_repriced = NULL;
  snprintf(path, sizeof path, "%s/prices.json", dir);
  CHECK_STATUS(pm_router_reprice(router, path, &repriced, &err_), PM_STATUS_OK);
  snprintf(path, sizeof path, "%s/stack.safetensors", dir);
  CHECK_STATUS(pm_router_load(path, &stack, &err_), PM_STATUS_OK);
  snprintf(path, sizeof path, "%s/prices.json", dir);
  if (stack) CHECK_STATUS(pm_router_reprice(stack, path, &stack_repriced, &err_), PM_STATUS_OK);
  snprintf(path, sizeof path, "%s/eight.safetensors", dir);
  CHECK_STATUS(pm_router_load(path, &eight, &err_), PM_STATUS_OK);
  CHECK_STATUS(pm_router_add_model(eight, held, NULL, data, &onboarded, &err_), PM_STATUS_OK);
  CHECK_STATUS(pm_router_add_model(eight, held, models_json, NULL, &from_card, &err_),
               PM_STATUS_OK);
  if (!repriced || !eight || !onboarded || !from_card || !stack || !stack_repriced) {
    failed++;
    fprintf(stderr, "test_own_data: a router is missing; skipping its decisions\n");
  } else {
    CHECK(pm_router_num_models(eight) + 1 == pm_router_num_models(onboarded));
    CHECK(pm_router_num_models(from_card) == pm_router_num_models(onboarded));
    CHECK(strcmp(pm_router_model_name(onboarded, pm_router_num_models(eight)), held) == 0);
    CHECK(pm_router_num_models(repriced) == pm_router_num_models(router));

    snprintf(path, sizeof path, "%s/own_data_expected.txt", dir);
    f = fopen(path, "r");
    if (!f) die("missing", path);
    char kind[16];
    size_t lines = 0, moved = 0, stacked = 0;
    pm_decision want;
    double w;
    size_t r;
    while (fscanf(f, "%15s %lf %zu %u %lf %lf %lf", kind, &w, &r, &want.model, &want.quality,
                  &want.cost, &want.utility) == 7) {
      const pm_router *which = strcmp(kind, "reprice") == 0         ? repriced
                               : strcmp(kind, "onboard") == 0       ? onboarded
                               : strcmp(kind, "stack") == 0         ? stack
                               : strcmp(kind, "stack-reprice") == 0 ? stack_repriced
                                                                    : from_card;
      stacked += which == stack || which == stack_repriced;
      pm_decision got, before;
      CHECK_STATUS(pm_router_route(which, features + r * dim, dim, w, &got, &err_), PM_STATUS_OK);
      CHECK(same(&got, &want));
      if (which == repriced) {
        /* The router it came from keeps its prices. */
        CHECK_STATUS(pm_router_route(router, features + r * dim, dim, w, &before, &err_),
                     PM_STATUS_OK);
        moved += before.model != got.model;
      }
      lines++;
    }
    fclose(f);
    CHECK(lines > 0);
    CHECK(moved > 0);
    CHECK(stacked > 0);
  }

  /* Bad arguments. */
  pm_router *none = NULL;
  CHECK_STATUS(pm_router_add_model(eight, held, NULL, NULL, &none, &err_), PM_STATUS_CONFIG);
  CHECK_STATUS(pm_router_add_model(onboarded, held, NULL, data, &none, &err_), PM_STATUS_CONFIG);
  CHECK_STATUS(pm_router_add_model(eight, "no-such-model", NULL, data, &none, &err_),
               PM_STATUS_UNKNOWN_MODEL);
  CHECK_STATUS(pm_router_add_model(NULL, held, NULL, data, &none, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_router_add_model(eight, NULL, NULL, data, &none, &err_),
               PM_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(pm_router_add_model(eight, held, NULL, data, NULL, &err_),
               PM_STATUS_NULL_ARGUMENT);
  snprintf(path, sizeof path, "%s/no-such-dir", dir);
  CHECK_STATUS(pm_router_add_model(eight, held, NULL, path, &none, &err_), PM_STATUS_IO);
  snprintf(path, sizeof path, "%s/no-such-prices.json", dir);
  CHECK_STATUS(pm_router_reprice(router, path, &none, &err_), PM_STATUS_IO);
  snprintf(path, sizeof path, "%s/queries.txt", dir);
  CHECK_STATUS(pm_router_reprice(router, path, &none, &err_), PM_STATUS_FORMAT);
  /* A price list for a model the router does not have: the dataset's models.json, into the
   * eight-model router. */
  CHECK_STATUS(pm_router_reprice(eight, models_json, &none, &err_), PM_STATUS_UNKNOWN_MODEL);
  CHECK_STATUS(pm_router_reprice(router, NULL, &none, &err_), PM_STATUS_NULL_ARGUMENT);
  CHECK(none == NULL);
  /* A cascade cannot be repriced or onboarded into. */
  snprintf(path, sizeof path, "%s/cascade.safetensors", dir);
  pm_router *cascade = NULL;
  CHECK_STATUS(pm_router_load(path, &cascade, &err_), PM_STATUS_OK);
  CHECK_STATUS(pm_router_add_model(cascade, held, models_json, NULL, &none, &err_),
               PM_STATUS_UNSUPPORTED);
  snprintf(path, sizeof path, "%s/prices.json", dir);
  CHECK_STATUS(pm_router_reprice(cascade, path, &none, &err_), PM_STATUS_UNSUPPORTED);
  CHECK(none == NULL);
  pm_router_free(cascade);
  pm_router_free(repriced);
  pm_router_free(stack);
  pm_router_free(stack_repriced);
  pm_router_free(onboarded);
  pm_router_free(from_card);
  pm_router_free(eight);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
    return 2;
  }
  read_fixture(argv[1]);
  char path[4096];
  snprintf(path, sizeof path, "%s/router.safetensors", argv[1]);
  pm_error *err = NULL;
  if (pm_router_load(path, &router, &err) != PM_STATUS_OK) {
    fprintf(stderr, "cannot load %s: %s\n", path, pm_error_message(err));
    pm_error_free(err);
    return 1;
  }
  test_metadata();
  test_decisions_equal_rust();
  test_mmap(argv[1]);
  test_null_arguments();
  test_wrong_dims_and_values();
  test_corrupt_files(argv[1]);
  test_crafted_files(argv[1]);
  test_invalid_utf8();
  test_threads();
  test_learner(argv[1]);
  test_cascade(argv[1]);
  test_embedder(argv[1]);
  test_policy();
  test_own_data(argv[1]);
  pm_router_free(router);
  free(features);
  free(tokens);
  free(expected);
  printf("test_c: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
