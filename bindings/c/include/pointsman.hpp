/*
 * pointsman.hpp: header-only C++17 wrapper of the Pointsman C API (pointsman.h).
 *
 * Move-only RAII classes over the C objects; every failing call throws pointsman::Error, which
 * carries the C status and message. The wrapper adds no logic: it converts types and turns
 * statuses into exceptions. Thread safety is the C API's: a const Router and a const Embedder
 * may be used by any number of threads at once.
 *
 *     pointsman::Router router = pointsman::Router::load("router.safetensors");
 *     pointsman::Decision d = router.route(embedding, 500.0);
 *     std::cout << router.model_name(d.model) << " " << d.quality << "\n";
 *
 *     pointsman::Embedder embedder = pointsman::Embedder::load();   // the default model folder
 *     pointsman::Decision t = router.route_text(embedder, "Prove that sqrt(2) is irrational.", 500.0);
 *
 *     pointsman::CascadeSession s = cascade_router.start_cascade(embedding, {{}, {}, 0.01});
 *     for (auto step = s.next(); !step.finished;)
 *       step = s.observe(step.model, confidence_of(call_model(step.model)));
 *     std::uint32_t use = s.outcome().model;   // the model whose answer to use
 */
#ifndef POINTSMAN_HPP
#define POINTSMAN_HPP

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pointsman.h"

namespace pointsman {

/// A failed call: the C status and the library's message.
class Error : public std::runtime_error {
 public:
  Error(pm_status status, const std::string &message)
      : std::runtime_error(message), status_(status) {}

  /// The C status (never PM_STATUS_OK).
  pm_status status() const noexcept { return status_; }

  /// The status's name without its prefix, such as "SHAPE".
  const char *status_name() const noexcept { return pm_status_name(status_); }

 private:
  pm_status status_;
};

/// A policy's refusal (PM_STATUS_OUT_OF_DISTRIBUTION, PM_STATUS_BUDGET_EXHAUSTED,
/// PM_STATUS_NO_MODEL_FITS, ...) with the audit of the decision it refused (one line of JSON),
/// thrown by Policy::route when the policy wrote one. Catch it as an Error as well.
class PolicyRefusal : public Error {
 public:
  PolicyRefusal(const Error &error, std::string audit_json)
      : Error(error), audit_json_(std::move(audit_json)) {}

  /// The refused decision's audit.
  const std::string &audit_json() const noexcept { return audit_json_; }

 private:
  std::string audit_json_;
};

/// A routing decision: the chosen model's index and its expected quality, cost and utility.
using Decision = pm_decision;

namespace detail {

/// Owns the `pm_error` a call may produce and throws it as an Error.
class ErrorSlot {
 public:
  ErrorSlot() = default;
  ErrorSlot(const ErrorSlot &) = delete;
  ErrorSlot &operator=(const ErrorSlot &) = delete;
  ~ErrorSlot() { pm_error_free(err_); }

  pm_error **out() noexcept { return &err_; }

  /// Throws when `status` is not PM_STATUS_OK.
  void check(pm_status status) {
    if (status == PM_STATUS_OK) return;
    const char *message = err_ != nullptr ? pm_error_message(err_) : nullptr;
    throw Error(status, message != nullptr ? message : pm_status_name(status));
  }

 private:
  pm_error *err_ = nullptr;
};

/// `s` as a C string. A NUL byte inside would cut it short there, so that an id, a path or a
/// text other than the one given would be used: that throws PM_STATUS_INVALID_ARGUMENT naming
/// `what`.
inline const char *c_str(const std::string &s, const char *what) {
  const std::size_t at = s.find('\0');
  if (at != std::string::npos) {
    throw Error(PM_STATUS_INVALID_ARGUMENT,
                std::string(what) + " holds a NUL byte at offset " + std::to_string(at));
  }
  return s.c_str();
}

/// As c_str; an empty string is NULL.
inline const char *c_str_or_null(const std::string &s, const char *what) {
  return s.empty() ? nullptr : c_str(s, what);
}

/// As c_str; no value is NULL.
inline const char *c_str_or_null(const std::optional<std::string> &s, const char *what) {
  return s ? c_str(*s, what) : nullptr;
}

}  // namespace detail

/// The version of the linked library (compare with PM_VERSION, the header's).
inline std::string version() { return pm_version(); }

/// Options of Router::rank.
struct RankOptions {
  /// Quality points given up per USD of expected cost.
  double cost_weight = 0.0;
  /// The prompt's token count for the cost model, when known.
  std::optional<double> prompt_tokens;
  /// A task tag some routers use, when known.
  std::optional<std::string> task;
  /// Empty: every model may be chosen; else one flag per model (non-zero: allowed).
  std::vector<std::uint8_t> allowed;
  /// How many entries to return at most (the decision first); 0: every allowed model.
  std::size_t top = 0;
};

/// Options of Embedder::load.
struct EmbedderOptions {
  /// Worker threads one embedding call may use: 1 runs on the calling thread (for servers that
  /// embed on their own worker threads), N > 1 a private pool of N threads, 0 one per core.
  std::size_t threads = 0;
  /// Truncation window in word pieces ([CLS] and [SEP] included); 0: the model's (256).
  std::size_t max_tokens = 0;
};

/// A text embedding model loaded in-process (all-MiniLM-L6-v2 by default). Move-only; a
/// moved-from Embedder is empty: the calls that can fail throw an Error with
/// PM_STATUS_NULL_ARGUMENT, and the noexcept accessors (dim, model_name, threads, max_tokens)
/// return 0 or empty.
///
/// Thread safety: every const method may be called from any number of threads at once.
class Embedder {
 public:
  /// Loads a sentence-transformers model folder; an empty `model_dir` means the default folder
  /// ($POINTSMAN_MODEL_DIR or ~/.cache/pointsman/models/all-MiniLM-L6-v2). Throws Error
  /// (PM_STATUS_MODEL_NOT_FOUND, PM_STATUS_FORMAT, PM_STATUS_EMBEDDER_UNAVAILABLE, ...).
  static Embedder load(const std::string &model_dir = std::string(),
                       const EmbedderOptions &options = EmbedderOptions()) {
    pm_embedder *raw = nullptr;
    detail::ErrorSlot err;
    err.check(pm_embedder_load_with_options(detail::c_str_or_null(model_dir, "model_dir"),
                                            options.threads, options.max_tokens, &raw,
                                            err.out()));
    return Embedder(raw);
  }

  /// Takes ownership of an embedder from the C API.
  explicit Embedder(pm_embedder *raw) noexcept : ptr_(raw) {}

  Embedder(const Embedder &) = delete;
  Embedder &operator=(const Embedder &) = delete;
  Embedder(Embedder &&) noexcept = default;
  Embedder &operator=(Embedder &&) noexcept = default;
  ~Embedder() = default;

  /// Whether this object holds an embedder (false once moved from).
  explicit operator bool() const noexcept { return ptr_ != nullptr; }

  /// The underlying C object, still owned by this Embedder.
  const pm_embedder *capi() const noexcept { return ptr_.get(); }

  /// The embedding dimension (384 for all-MiniLM-L6-v2).
  std::size_t dim() const noexcept { return pm_embedder_dim(ptr_.get()); }

  /// The model's name ("all-MiniLM-L6-v2"); empty for an empty Embedder.
  std::string_view model_name() const noexcept {
    const char *n = pm_embedder_model_name(ptr_.get());
    return n != nullptr ? std::string_view(n) : std::string_view();
  }

  /// The worker threads one call may use.
  std::size_t threads() const noexcept { return pm_embedder_threads(ptr_.get()); }

  /// The truncation window in word pieces.
  std::size_t max_tokens() const noexcept { return pm_embedder_max_tokens(ptr_.get()); }

  /// Embeds `text` into `out`, which holds `out_len == dim()` floats. Any text is embedded,
  /// the empty one included.
  void embed(const std::string &text, float *out, std::size_t out_len) const {
    detail::ErrorSlot err;
    err.check(pm_embedder_embed(ptr_.get(), detail::c_str(text, "text"), out, out_len, err.out()));
  }

  /// The unit-length embedding of `text`.
  std::vector<float> embed(const std::string &text) const {
    std::vector<float> out(dim());
    embed(text, out.data(), out.size());
    return out;
  }

  /// The embeddings of `texts` as one batch, row-major (`texts.size() × dim()` floats).
  std::vector<float> embed_batch(const std::vector<std::string> &texts) const {
    std::vector<const char *> ptrs;
    ptrs.reserve(texts.size());
    for (const auto &t : texts) ptrs.push_back(detail::c_str(t, "a text"));
    std::vector<float> out(texts.size() * dim());
    detail::ErrorSlot err;
    err.check(pm_embedder_embed_batch(ptr_.get(), ptrs.data(), ptrs.size(), out.data(),
                                      out.size(), err.out()));
    return out;
  }

 private:
  struct Deleter {
    void operator()(pm_embedder *p) const noexcept { pm_embedder_free(p); }
  };

  std::unique_ptr<pm_embedder, Deleter> ptr_;
};

/// A step of a cascade session: the model to call next, or (finished) the answer to use.
using CascadeStep = pm_cascade_step;
/// The end of a cascade session.
using CascadeOutcome = pm_cascade_outcome;
/// One model call of a cascade session.
using CascadeCall = pm_cascade_call;

/// Options of Router::start_cascade.
struct CascadeOptions {
  /// The prompt's token count for the cost model, when known.
  std::optional<double> prompt_tokens;
  /// Quality points given up per USD; none: the router's own (calibrated) cost weight.
  std::optional<double> cost_weight;
  /// The most total expected cost in USD the session may spend; none: no budget.
  std::optional<double> budget;
  /// The most models called; 0: the router's default.
  std::uint32_t max_steps = 0;
};

/// One query's run through a cascade router (Router::start_cascade): call next().model,
/// observe() its answer's confidence, until the step is finished; outcome() then names the
/// answer to use. Move-only; a moved-from session is empty, and calls on it throw an Error with
/// PM_STATUS_NULL_ARGUMENT. The session owns its state and may outlive its Router.
///
/// Thread safety: one thread at a time (it may move between threads between calls).
class CascadeSession {
 public:
  /// Takes ownership of a session from the C API.
  explicit CascadeSession(pm_cascade_session *raw) noexcept : ptr_(raw) {}

  CascadeSession(const CascadeSession &) = delete;
  CascadeSession &operator=(const CascadeSession &) = delete;
  CascadeSession(CascadeSession &&) noexcept = default;
  CascadeSession &operator=(CascadeSession &&) noexcept = default;
  ~CascadeSession() = default;

  /// Whether this object holds a session (false once moved from).
  explicit operator bool() const noexcept { return ptr_ != nullptr; }

  /// The underlying C object, still owned by this session.
  pm_cascade_session *capi() const noexcept { return ptr_.get(); }

  /// The step the session is at.
  CascadeStep next() const {
    CascadeStep step{};
    detail::ErrorSlot err;
    err.check(pm_cascade_next(ptr_.get(), &step, err.out()));
    return step;
  }

  /// Whether the session has reached its decision.
  bool finished() const { return next().finished; }

  /// Reports the confidence in [0, 1] of the answer of `model` (the model next() names), with
  /// its observed cost in USD when known, and returns the next step. Throws Error
  /// (PM_STATUS_SESSION_OUT_OF_ORDER, PM_STATUS_SESSION_FINISHED, PM_STATUS_INVALID_ARGUMENT,
  /// ...); a failed call leaves the session as it was.
  CascadeStep observe(std::uint32_t model, double confidence,
                      std::optional<double> cost = std::nullopt) {
    CascadeStep step{};
    detail::ErrorSlot err;
    err.check(pm_cascade_observe(ptr_.get(), model, confidence, cost ? *cost : -1.0, &step,
                                 err.out()));
    return step;
  }

  /// Ends the session early: the best answer so far is used. Throws Error
  /// (PM_STATUS_SESSION_RUNNING) when no answer has been observed yet.
  void stop() {
    detail::ErrorSlot err;
    err.check(pm_cascade_stop(ptr_.get(), err.out()));
  }

  /// The answer to use and what it took; throws Error (PM_STATUS_SESSION_RUNNING) before the
  /// session has finished.
  CascadeOutcome outcome() const {
    CascadeOutcome o{};
    detail::ErrorSlot err;
    err.check(pm_cascade_result(ptr_.get(), &o, nullptr, 0, nullptr, err.out()));
    return o;
  }

  /// The models called, in order; throws as outcome().
  std::vector<CascadeCall> calls() const {
    std::vector<CascadeCall> calls(outcome().steps);
    std::size_t count = 0;
    CascadeOutcome o{};
    detail::ErrorSlot err;
    err.check(pm_cascade_result(ptr_.get(), &o, calls.data(), calls.size(), &count,
                                err.out()));
    calls.resize(count);
    return calls;
  }

 private:
  struct Deleter {
    void operator()(pm_cascade_session *p) const noexcept { pm_cascade_session_free(p); }
  };

  std::unique_ptr<pm_cascade_session, Deleter> ptr_;
};

/// A router loaded from a saved file. Move-only; a moved-from Router is empty: the calls that
/// can fail throw an Error with PM_STATUS_NULL_ARGUMENT, and the noexcept accessors
/// (num_models, dim, kind, embedding_model, is_learner, is_cascade) return 0, empty, nullopt or
/// false.
///
/// Thread safety: every const method may be called from any number of threads at once.
class Router {
 public:
  /// Loads a router saved by `pointsman train`; throws Error (PM_STATUS_IO, PM_STATUS_FORMAT,
  /// PM_STATUS_INVALID_UTF8, ...).
  static Router load(const std::string &path) {
    pm_router *raw = nullptr;
    detail::ErrorSlot err;
    err.check(pm_router_load(detail::c_str(path, "path"), &raw, err.out()));
    return Router(raw);
  }

  /// Takes ownership of a router from the C API.
  explicit Router(pm_router *raw) noexcept : ptr_(raw) {}

  Router(const Router &) = delete;
  Router &operator=(const Router &) = delete;
  Router(Router &&) noexcept = default;
  Router &operator=(Router &&) noexcept = default;
  ~Router() = default;

  /// Whether this object holds a router (false once moved from).
  explicit operator bool() const noexcept { return ptr_ != nullptr; }

  /// The underlying C object, still owned by this Router.
  const pm_router *capi() const noexcept { return ptr_.get(); }

  /// Number of candidate models.
  std::size_t num_models() const noexcept { return pm_router_num_models(ptr_.get()); }

  /// The embedding dimension the router expects.
  std::size_t dim() const noexcept { return pm_router_dim(ptr_.get()); }

  /// The router's kind ("knn", "mf", ...); empty for an empty Router.
  std::string_view kind() const noexcept { return view(pm_router_kind(ptr_.get())); }

  /// The embedding model the router was trained on, when known.
  std::optional<std::string_view> embedding_model() const noexcept {
    const char *m = pm_router_embedding_model(ptr_.get());
    if (m == nullptr) return std::nullopt;
    return std::string_view(m);
  }

  /// Whether observe() learns (false: it throws PM_STATUS_UNSUPPORTED).
  bool is_learner() const noexcept { return pm_router_is_learner(ptr_.get()); }

  /// The id of model `index`, valid while the router lives; throws Error
  /// (PM_STATUS_UNKNOWN_MODEL) when out of range, (PM_STATUS_NULL_ARGUMENT) on an empty Router.
  std::string_view model_name(std::size_t index) const {
    if (!ptr_) throw Error(PM_STATUS_NULL_ARGUMENT, "router is NULL (an empty Router)");
    const char *name = pm_router_model_name(ptr_.get(), index);
    if (name == nullptr) {
      throw Error(PM_STATUS_UNKNOWN_MODEL, "unknown model #" + std::to_string(index) +
                                               " (the pool has " +
                                               std::to_string(num_models()) + " models)");
    }
    return name;
  }

  /// The index of the model `id`; throws Error (PM_STATUS_UNKNOWN_MODEL).
  std::size_t model_index(const std::string &id) const {
    std::size_t index = 0;
    detail::ErrorSlot err;
    err.check(pm_router_model_index(ptr_.get(), detail::c_str(id, "model id"), &index, err.out()));
    return index;
  }

  /// Routes one query (`dim` embedding values) at `cost_weight`.
  Decision route(const float *features, std::size_t dim, double cost_weight) const {
    Decision d{};
    detail::ErrorSlot err;
    err.check(pm_router_route(ptr_.get(), features, dim, cost_weight, &d, err.out()));
    return d;
  }

  /// Routes one query at `cost_weight`.
  Decision route(const std::vector<float> &features, double cost_weight) const {
    return route(features.data(), features.size(), cost_weight);
  }

  /// Routes one query with prompt tokens, task and allowed models, and ranks the models: the
  /// decision first, then the other allowed models by utility.
  std::vector<Decision> rank(const float *features, std::size_t dim,
                             const RankOptions &options) const {
    std::vector<Decision> ranked(rank_room(options.top));
    std::size_t count = 0;
    detail::ErrorSlot err;
    err.check(pm_router_rank(ptr_.get(), features, dim,
                             options.prompt_tokens ? *options.prompt_tokens : -1.0,
                             detail::c_str_or_null(options.task, "task"),
                             options.cost_weight, options.allowed.data(),
                             options.allowed.size(), ranked.data(), ranked.size(), &count,
                             err.out()));
    ranked.resize(count);
    return ranked;
  }

  /// As above.
  std::vector<Decision> rank(const std::vector<float> &features,
                             const RankOptions &options) const {
    return rank(features.data(), features.size(), options);
  }

  /// Embeds `text` with `embedder` and routes it at `cost_weight` (prompt tokens estimated from
  /// the text). Throws Error (PM_STATUS_INVALID_ARGUMENT for empty or invisible text,
  /// PM_STATUS_EMBEDDING_MISMATCH when the router reads another model's embeddings, ...).
  Decision route_text(const Embedder &embedder, const std::string &text,
                      double cost_weight) const {
    Decision d{};
    detail::ErrorSlot err;
    err.check(pm_router_route_text(ptr_.get(), embedder.capi(), detail::c_str(text, "text"), cost_weight, &d,
                                   err.out()));
    return d;
  }

  /// Embeds `text` and ranks the models for it, as rank() (prompt tokens, when not given, are
  /// estimated from the text).
  std::vector<Decision> rank_text(const Embedder &embedder, const std::string &text,
                                  const RankOptions &options) const {
    std::vector<Decision> ranked(rank_room(options.top));
    std::size_t count = 0;
    detail::ErrorSlot err;
    err.check(pm_router_rank_text(ptr_.get(), embedder.capi(), detail::c_str(text, "text"),
                                  options.prompt_tokens ? *options.prompt_tokens : -1.0,
                                  detail::c_str_or_null(options.task, "task"),
                                  options.cost_weight, options.allowed.data(),
                                  options.allowed.size(), ranked.data(), ranked.size(), &count,
                                  err.out()));
    ranked.resize(count);
    return ranked;
  }

  /// Routes `rows` queries (row-major `rows × dim` floats) in parallel into `models_out`,
  /// which holds `models_len == rows` entries.
  void route_batch(const float *features, std::size_t rows, std::size_t dim,
                   double cost_weight, std::uint32_t *models_out,
                   std::size_t models_len) const {
    detail::ErrorSlot err;
    err.check(pm_router_route_batch(ptr_.get(), features, rows, dim, cost_weight, models_out,
                                    models_len, err.out()));
  }

  /// Routes `rows` queries (row-major `rows × dim` floats) and returns the chosen models.
  std::vector<std::uint32_t> route_batch(const float *features, std::size_t rows,
                                         std::size_t dim, double cost_weight) const {
    std::vector<std::uint32_t> models(rows);
    route_batch(features, rows, dim, cost_weight, models.data(), models.size());
    return models;
  }

  /// Routes the queries of `features` (row-major, `dim` floats per row) and returns the chosen
  /// models; throws Error (PM_STATUS_SHAPE) when its size is not a whole number of rows.
  std::vector<std::uint32_t> route_batch(const std::vector<float> &features, std::size_t dim,
                                         double cost_weight) const {
    if (dim == 0 || features.size() % dim != 0) {
      throw Error(PM_STATUS_SHAPE, std::to_string(features.size()) +
                                       " feature values are not whole rows of dim " +
                                       std::to_string(dim));
    }
    return route_batch(features.data(), features.size() / dim, dim, cost_weight);
  }

  /// Whether the router is a cascade (start_cascade works).
  bool is_cascade() const noexcept { return pm_router_is_cascade(ptr_.get()); }

  /// Starts a cascade session for one query (`dim` embedding values); throws Error
  /// (PM_STATUS_UNSUPPORTED for a router that is not a cascade, PM_STATUS_BUDGET_TOO_SMALL,
  /// PM_STATUS_SHAPE, ...). The session's first step is its next().
  CascadeSession start_cascade(const float *features, std::size_t dim,
                               const CascadeOptions &options = CascadeOptions()) const {
    pm_cascade_session *raw = nullptr;
    detail::ErrorSlot err;
    err.check(pm_cascade_start(ptr_.get(), features, dim,
                               options.prompt_tokens ? *options.prompt_tokens : -1.0,
                               options.cost_weight ? *options.cost_weight : -1.0,
                               options.budget ? *options.budget : -1.0, options.max_steps,
                               &raw, nullptr, err.out()));
    return CascadeSession(raw);
  }

  /// As above.
  CascadeSession start_cascade(const std::vector<float> &features,
                               const CascadeOptions &options = CascadeOptions()) const {
    return start_cascade(features.data(), features.size(), options);
  }

  /// Teaches a learning router the observed quality and cost of `model` on a query; throws
  /// Error (PM_STATUS_UNSUPPORTED) for routers that do not learn.
  void observe(const float *features, std::size_t dim, std::uint32_t model, double quality,
               double cost) const {
    detail::ErrorSlot err;
    err.check(
        pm_router_observe(ptr_.get(), features, dim, model, quality, cost, err.out()));
  }

  /// Saves the router to `path`, atomically (a learner with its current state); throws Error
  /// (PM_STATUS_IO, PM_STATUS_NUMERIC when the learned state went wrong: the file is left as
  /// it was).
  void save(const std::string &path) const {
    detail::ErrorSlot err;
    err.check(pm_router_save(ptr_.get(), detail::c_str(path, "path"), err.out()));
  }

  /// A new router with the prices of the `models.json` at `models_json` (some or all of this
  /// router's models), without refitting; this router is unchanged. Throws Error
  /// (PM_STATUS_IO, PM_STATUS_FORMAT, PM_STATUS_UNKNOWN_MODEL, PM_STATUS_UNSUPPORTED, ...).
  Router reprice(const std::string &models_json) const {
    pm_router *raw = nullptr;
    detail::ErrorSlot err;
    err.check(pm_router_reprice(ptr_.get(), detail::c_str(models_json, "models_json"), &raw, err.out()));
    return Router(raw);
  }

  /// A new router with `model` added without refitting the others: its card from the
  /// `models.json` at `models_json` (or, when empty, from the dataset at `labelled_dir`), its
  /// labelled queries from the train split of the dataset folder `labelled_dir` (empty: the
  /// card alone). This router is unchanged. Throws Error (PM_STATUS_CONFIG when neither is
  /// given or the router has the model, PM_STATUS_UNKNOWN_MODEL, PM_STATUS_IO, ...).
  Router add_model(const std::string &model, const std::string &models_json,
                   const std::string &labelled_dir) const {
    pm_router *raw = nullptr;
    detail::ErrorSlot err;
    err.check(pm_router_add_model(ptr_.get(), detail::c_str(model, "model"),
                                  detail::c_str_or_null(models_json, "models_json"),
                                  detail::c_str_or_null(labelled_dir, "labelled_dir"), &raw,
                                  err.out()));
    return Router(raw);
  }

  /// The observations a learning router has learned; throws Error (PM_STATUS_UNSUPPORTED) for
  /// routers that do not learn.
  std::uint64_t observations() const {
    std::uint64_t n = 0;
    detail::ErrorSlot err;
    err.check(pm_router_observations(ptr_.get(), &n, err.out()));
    return n;
  }

 private:
  /// Room for `top` ranked decisions (0: every model), never more than the models: `top` may
  /// come from a request (the gateway example); at least 1.
  std::size_t rank_room(std::size_t top) const noexcept {
    const std::size_t models = num_models();
    const std::size_t room = top != 0 && top < models ? top : models;
    return room == 0 ? 1 : room;
  }

  struct Deleter {
    void operator()(pm_router *p) const noexcept { pm_router_free(p); }
  };

  static std::string_view view(const char *s) noexcept {
    return s != nullptr ? std::string_view(s) : std::string_view();
  }

  std::unique_ptr<pm_router, Deleter> ptr_;
};

/// The keys and facts of one request routed under a Policy (docs/policies.md).
struct PolicyRequest {
  /// The prompt's token count; negative: unknown.
  double prompt_tokens = -1.0;
  /// The task tag, if any.
  std::optional<std::string> task;
  /// The prompt text, for the policy's text rules.
  std::optional<std::string> text;
  /// Budget and stickiness keys.
  std::optional<std::string> tenant, user, session;
  /// Replaces the policy's cost weight when set.
  std::optional<double> cost_weight;
};

/// An agent episode: one budget for all its steps.
class Episode {
 public:
  /// Throws Error (PM_STATUS_CONFIG) for an empty id, a budget not positive, no steps or a margin
  /// below 1.
  Episode(const std::string &id, double budget_usd, std::uint64_t steps, double stop_margin = 1.0) {
    pm_episode *raw = nullptr;
    detail::ErrorSlot err;
    err.check(pm_episode_new(detail::c_str(id, "episode id"), budget_usd, steps, stop_margin, &raw, err.out()));
    ptr_.reset(raw);
  }

  /// The underlying C object, still owned by this Episode.
  const pm_episode *capi() const noexcept { return ptr_.get(); }

 private:
  struct Deleter {
    void operator()(pm_episode *p) const noexcept { pm_episode_free(p); }
  };
  std::unique_ptr<pm_episode, Deleter> ptr_;
};

/// A routing decision under a policy, with the policy's audit (one line of JSON).
struct PolicyDecision {
  Decision decision;
  std::string audit_json;
};

/// A decision-time policy bound to a router (docs/policies.md). Thread-safe.
class Policy {
 public:
  /// Reads a policy file (JSON, or TOML for .toml) for `router`; throws Error
  /// (PM_STATUS_IO, PM_STATUS_CONFIG, ...).
  static Policy load(const Router &router, const std::string &path) {
    pm_policy *raw = nullptr;
    detail::ErrorSlot err;
    err.check(pm_policy_load(router.capi(), detail::c_str(path, "path"), &raw, err.out()));
    return Policy(raw);
  }

  /// A policy from its JSON text, for `router`; throws Error (PM_STATUS_CONFIG, ...).
  static Policy from_json(const Router &router, const std::string &json) {
    pm_policy *raw = nullptr;
    detail::ErrorSlot err;
    err.check(pm_policy_from_json(router.capi(), detail::c_str(json, "json"), &raw, err.out()));
    return Policy(raw);
  }

  /// Takes ownership of a policy from the C API.
  explicit Policy(pm_policy *raw) noexcept : ptr_(raw) {}

  /// Routes one query; throws Error, and for the refusals PM_STATUS_OUT_OF_DISTRIBUTION,
  /// PM_STATUS_BUDGET_EXHAUSTED and PM_STATUS_NO_MODEL_FITS a PolicyRefusal carrying the audit.
  /// A moved-from `episode` throws PM_STATUS_NULL_ARGUMENT (it is not "no episode").
  PolicyDecision route(const std::vector<float> &features, const PolicyRequest &req = {},
                       const Episode *episode = nullptr) const {
    check_episode(episode);
    PolicyDecision out{};
    pm_policy_audit *audit = nullptr;
    detail::ErrorSlot err;
    pm_status status = pm_policy_route(
        ptr_.get(), features.data(), features.size(), req.prompt_tokens,
        detail::c_str_or_null(req.task, "task"), detail::c_str_or_null(req.text, "text"),
        detail::c_str_or_null(req.tenant, "tenant"),
        detail::c_str_or_null(req.user, "user"), detail::c_str_or_null(req.session, "session"),
        episode != nullptr ? episode->capi() : nullptr, req.cost_weight.value_or(-1.0),
        &out.decision, &audit, err.out());
    if (audit != nullptr) {
      out.audit_json = pm_policy_audit_json(audit);
      pm_policy_audit_free(audit);
    }
    try {
      err.check(status);
    } catch (const Error &e) {
      if (out.audit_json.empty()) throw;
      throw PolicyRefusal(e, out.audit_json);
    }
    return out;
  }

  /// Charges `cost_usd` (the call's actual cost) to the request's budgets and records `model`
  /// as its session's model; an empty `model` records the cost alone (C's NULL).
  void record(const std::string &model, double cost_usd, const PolicyRequest &req = {},
              const Episode *episode = nullptr) const {
    check_episode(episode);
    detail::ErrorSlot err;
    err.check(pm_policy_record(ptr_.get(), detail::c_str_or_null(model, "model"), cost_usd,
                               detail::c_str_or_null(req.tenant, "tenant"),
                               detail::c_str_or_null(req.user, "user"),
                               detail::c_str_or_null(req.session, "session"),
                               episode != nullptr ? episode->capi() : nullptr, err.out()));
  }

 private:
  static void check_episode(const Episode *episode) {
    if (episode != nullptr && episode->capi() == nullptr) {
      throw Error(PM_STATUS_NULL_ARGUMENT, "episode: a moved-from Episode");
    }
  }
  struct Deleter {
    void operator()(pm_policy *p) const noexcept { pm_policy_free(p); }
  };
  std::unique_ptr<pm_policy, Deleter> ptr_;
};

}  // namespace pointsman

#endif  // POINTSMAN_HPP
