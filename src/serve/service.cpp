#include "siamese/serve/service.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <algorithm>
#include <map>
#include <shared_mutex>
#include <thread>

#include "detail/assets.h"
#include "detail/batcher.h"
#include "detail/item_store.h"
#include "detail/metrics.h"
#include "siamese/core/distance.h"
#include "siamese/core/error.h"
#include "siamese/eval/metrics.h"
#include "siamese/index/index.h"
#include "siamese/model/inputs.h"
#include "siamese/serve/request.h"

namespace siamese {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

/// An answer other than 2xx, thrown inside a handler.
struct HttpError {
  int status;
  std::string code;
  std::string message;
};

enum class Access { Open, Read, Write };

const std::string kItems = "/v1/items/";

bool is_route(const std::string& path);      ///< a path of the route table (any method)
std::string route_of(const std::string& path);  ///< its route-table path: the metrics' route label

/// When the current request on this thread started (set before routing, read by the logger).
thread_local Clock::time_point request_start;

int status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument:
    case ErrorCode::Corruption: return 400;
    case ErrorCode::NotFound: return 404;
    case ErrorCode::Unsupported: return 422;
    default: return 500;
  }
}

std::string code_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument: return "invalid_argument";
    case ErrorCode::Corruption: return "corrupt_input";
    case ErrorCode::NotFound: return "not_found";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::IOError: return "io_error";
    default: return "internal";
  }
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& code, const std::string& message) {
  send_json(res, status, json{{"error", {{"code", code}, {"message", message}}}});
}

bool is_loopback(const std::string& host) { return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0; }

/// Whether `given` equals one of `keys`, comparing every byte of every key whatever matches (no
/// early exit, so the time taken does not tell how much of a key was right).
bool key_matches(const std::string& given, const std::vector<std::string>& keys) {
  unsigned found = 0;
  for (const auto& key : keys) {
    unsigned diff = given.size() == key.size() ? 0 : 1;
    for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned char>(key[i]) ^ static_cast<unsigned char>(i < given.size() ? given[i] : 0);
    found |= diff == 0 ? 1u : 0u;
  }
  return found != 0;
}

/// The key a request carries: "Authorization: Bearer KEY" or "api-key: KEY"; "" for none.
std::string key_of(const httplib::Request& req) {
  const auto auth = req.get_header_value("Authorization");
  if (auth.rfind("Bearer ", 0) == 0) return auth.substr(7);
  return req.get_header_value("api-key");
}

json vector_json(const torch::Tensor& row) {
  auto c = row.to(torch::kFloat32).contiguous();
  const float* p = c.data_ptr<float>();
  return json(std::vector<float>(p, p + c.numel()));
}

}  // namespace

void read_api_keys(const std::string& path, ServiceOptions& options) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::NotFound, path, "cannot read the API key file");
  std::vector<std::string> read, write;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    auto& keys = line.rfind("rw ", 0) == 0 ? write : read;
    if (line.rfind("rw ", 0) == 0 || line.rfind("ro ", 0) == 0) line = line.substr(3);
    if (line.size() < 16 || line.find_first_of(" \t") != std::string::npos) {
      throw Error(ErrorCode::InvalidArgument, path + ":" + std::to_string(number),
                  "an API key must be at least 16 characters without spaces (\"KEY\", \"ro KEY\" or \"rw KEY\")");
    }
    keys.push_back(line);
  }
  if (read.empty() && write.empty()) throw Error(ErrorCode::InvalidArgument, path, "holds no API key");
  options.read_keys(read).read_write_keys(write);
}

struct Service::Impl {
  Impl(SavedModel m, std::string path, ServiceOptions o, Logger& l)
      : model(std::move(m)), index_path(std::move(path)), options(std::move(o)), logger(l) {
    limits.max_inputs = options.max_inputs();
    limits.max_text_bytes = options.max_text_bytes();
    limits.max_k = options.max_k();
  }

  SavedModel model;
  std::string index_path;
  ServiceOptions options;
  Logger& logger;
  RequestLimits limits;
  std::string fingerprint;
  std::unique_ptr<serve::Batcher> batcher;
  std::unique_ptr<serve::ItemStore> store;  ///< null without --index
  serve::Metrics metrics;
  httplib::Server http;
  std::thread listener;
  int port = 0;
  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stopped = false;

  /// The support set of /v1/oneshot (PUT /v1/support), replaced whole; held in memory only.
  struct SupportSet {
    torch::Tensor embeddings;  ///< [S, D]
    std::vector<int64_t> labels;
    std::vector<std::string> classes;  ///< by label
  };
  mutable std::mutex support_mutex;
  std::shared_ptr<const SupportSet> support;

  void check_access(const httplib::Request& req, Access needed) const {
    if (needed == Access::Open || (options.read_keys().empty() && options.read_write_keys().empty())) return;
    const auto key = key_of(req);
    if (key.empty()) throw HttpError{401, "unauthorized", "this service needs an API key (Authorization: Bearer KEY, or api-key: KEY)"};
    const bool writer = key_matches(key, options.read_write_keys());
    if (!writer && !key_matches(key, options.read_keys())) throw HttpError{401, "unauthorized", "unknown API key"};
    if (needed == Access::Write && !writer) throw HttpError{403, "forbidden", "this API key may only read"};
  }

  torch::Tensor item_of(const RequestInput& in, const std::string& name) const {
    if (in.kind == RequestInput::Kind::Image) return image_input(in.data, name, model, static_cast<uint64_t>(options.max_pixels()));
    try {
      return in.kind == RequestInput::Kind::Text ? text_input(in.data, model) : series_input(in.values, in.features, model);
    } catch (const Error& e) {
      throw Error(e.code(), name + ": " + e.what());
    }
  }

  /// Embeddings [N, D] of the inputs, through the batcher.
  torch::Tensor embed(const std::vector<RequestInput>& inputs, const std::vector<std::string>& names) {
    std::vector<torch::Tensor> items;
    for (size_t i = 0; i < inputs.size(); ++i) items.push_back(item_of(inputs[i], names[i]));
    auto future = batcher->submit(std::move(items));
    const auto wait = std::chrono::duration<double>(options.timeout_s());
    if (future.wait_for(wait) != std::future_status::ready) {
      throw HttpError{503, "timeout", "the embeddings were not ready within " + std::to_string(options.timeout_s()) + " s"};
    }
    return future.get();
  }

  /// A handler that checks access, runs `body`, turns every failure into a JSON error and counts
  /// the answer in the metrics (before it is sent, so that a client that got it sees it counted).
  httplib::Server::Handler handler(Access access, std::function<void(const httplib::Request&, httplib::Response&)> body) {
    return [this, access, body = std::move(body)](const httplib::Request& req, httplib::Response& res) {
      try {
        check_access(req, access);
        body(req, res);
      } catch (const HttpError& e) {
        send_error(res, e.status, e.code, e.message);
      } catch (const serve::QueueFull& e) {
        res.set_header("Retry-After", "1");
        send_error(res, 429, "overloaded", std::string("too many inputs waiting: ") + e.what());
      } catch (const Error& e) {
        send_error(res, status_of(e.code()), code_of(e.code()), e.what());
      } catch (const std::bad_alloc&) {
        send_error(res, 503, "out_of_memory", "out of memory");
      } catch (const std::exception& e) {
        send_error(res, 500, "internal", e.what());
      }
      record(req, res);
    };
  }

  void record(const httplib::Request& req, const httplib::Response& res) {
    const double seconds = request_start == Clock::time_point{} ? 0.0 : std::chrono::duration<double>(Clock::now() - request_start).count();
    request_start = Clock::time_point{};
    metrics.record(route_of(req.path), res.status, seconds);
  }

  json info() const {
    const auto& net = model.network->options;
    json input;
    if (!model.network->takes_sequences()) {
      input = {{"kind", "image"}, {"channels", net.cnn().in_channels()}, {"height", net.cnn().height()}, {"width", net.cnn().width()}};
    } else {
      input = {{"kind", net.tokens().empty() ? "series" : "text"}};
    }
    json j = {{"model", {{"fingerprint", fingerprint}, {"embedding_dim", model.network->encoder->embedding_dim()},
                         {"distance", to_string(net.distance())}, {"threshold", model.threshold}, {"input", input}}},
              {"batching", {{"max_batch", options.max_batch()}, {"max_delay_ms", options.max_delay_ms()}}},
              {"index", nullptr}};
    if (store) {
      const auto o = store->options();
      j["index"] = {{"size", store->size()}, {"spec", o.spec()}, {"dim", o.dim()}};
    }
    std::lock_guard<std::mutex> lock(support_mutex);
    j["support"] = support ? json{{"classes", support->classes.size()}, {"examples", support->labels.size()}} : json(nullptr);
    return j;
  }

  void compare(const httplib::Request& req, httplib::Response& res) {
    const auto [a, b] = parse_compare_request(body_of(req, "/v1/compare"), limits);
    const auto e = embed({a, b}, {"a", "b"});
    const double d = paired_distance(e.narrow(0, 0, 1), e.narrow(0, 1, 1), model.network->options.distance()).item<double>();
    send_json(res, 200, {{"distance", d}, {"threshold", model.threshold}, {"same", d <= model.threshold}});
  }

  void search(const httplib::Request& req, httplib::Response& res) {
    const auto r = parse_search_request(body_of(req, "/v1/search"), limits);
    require_index();
    if (store->size() == 0) throw HttpError{409, "empty_index", "the index holds no items yet"};
    const int64_t dim = model.network->encoder->embedding_dim();
    if (!r.has_input && static_cast<int64_t>(r.embedding.size()) != dim) {
      throw HttpError{400, "invalid_argument", "embedding: " + std::to_string(r.embedding.size()) + " values; the model's embeddings have " + std::to_string(dim)};
    }
    const auto e = r.has_input ? embed({r.input}, {"input"}) : torch::tensor(r.embedding).reshape({1, dim});
    const auto hits = store->search(e, r.k, SearchParams{r.nprobe, r.ef_search});
    json out = json::array();
    for (const auto& h : hits) {
      out.push_back({{"key", h.item.key}, {"label", h.item.label}, {"class", h.item.class_name}, {"distance", h.distance}});
    }
    send_json(res, 200, {{"hits", out}});
  }

  void require_index() const {
    if (!store) throw HttpError{404, "no_index", "this service has no index (start it with --index)"};
  }

  /// The item key of /v1/items/KEY, from the request target as sent (percent-encoded).
  std::string item_key(const httplib::Request& req) const {
    const auto target = req.target.substr(0, req.target.find('?'));
    return parse_item_key(target.substr(std::min(target.size(), kItems.size())), limits);
  }

  json item_json(const IndexItem& item) const {
    return {{"key", item.key}, {"label", item.label}, {"class", item.class_name}, {"added", item.added}};
  }

  void put_item(const httplib::Request& req, httplib::Response& res) {
    require_index();
    const auto key = item_key(req);
    const auto r = parse_item_request(body_of(req, "/v1/items"), limits);
    const auto embedding = r.has_input ? embed({r.input}, {"input"})[0] : torch::tensor(r.embedding);
    const auto [item, created] = store->put(key, embedding, r.label);
    send_json(res, created ? 201 : 200, item_json(item));
  }

  void get_item(const httplib::Request& req, httplib::Response& res) {
    require_index();
    const auto key = item_key(req);
    const auto stored = store->get(key);
    if (!stored) throw HttpError{404, "unknown_key", "no item with key '" + key + "'"};
    auto j = item_json(stored->item);
    j["embedding"] = vector_json(stored->embedding);
    send_json(res, 200, j);
  }

  void delete_item(const httplib::Request& req, httplib::Response& res) {
    require_index();
    const auto key = item_key(req);
    if (!store->remove(key)) throw HttpError{404, "unknown_key", "no item with key '" + key + "'"};
    send_json(res, 200, {{"key", key}, {"deleted", true}});
  }

  void embed_route(const httplib::Request& req, httplib::Response& res) {
    const auto inputs = parse_embed_request(body_of(req, "/v1/embed"), limits);
    std::vector<std::string> names;
    for (size_t i = 0; i < inputs.size(); ++i) names.push_back("inputs[" + std::to_string(i) + "]");
    const auto e = embed(inputs, names);
    json rows = json::array();
    for (int64_t i = 0; i < e.size(0); ++i) rows.push_back(vector_json(e[i]));
    send_json(res, 200, {{"embeddings", rows}});
  }

  /// The request's JSON body; a multipart/form-data body (curl -F) as its JSON equivalent.
  static std::string body_of(const httplib::Request& req, const std::string& route) {
    if (!req.is_multipart_form_data()) return req.body;
    std::vector<FormPart> parts;
    for (const auto& [name, part] : req.files) parts.push_back({name, part.content, !part.filename.empty()});
    return form_as_json(parts, route);
  }

  /// Embeds the examples given as inputs; `name` names the list in errors.
  std::shared_ptr<const SupportSet> support_of(const std::vector<ItemRequest>& examples, const std::string& name) {
    const int64_t dim = model.network->encoder->embedding_dim();
    std::vector<RequestInput> inputs;
    std::vector<std::string> names;
    for (size_t i = 0; i < examples.size(); ++i) {
      const auto at = name + "[" + std::to_string(i) + "]";
      if (examples[i].has_input) {
        inputs.push_back(examples[i].input);
        names.push_back(at + ".input");
      } else if (static_cast<int64_t>(examples[i].embedding.size()) != dim) {
        throw HttpError{400, "invalid_argument", at + ".embedding: " + std::to_string(examples[i].embedding.size()) +
                                                     " values; the model's embeddings have " + std::to_string(dim)};
      }
    }
    const auto embedded = inputs.empty() ? torch::Tensor() : embed(inputs, names);
    auto set = std::make_shared<SupportSet>();
    std::vector<torch::Tensor> rows;
    std::map<std::string, int64_t> label_of;
    int64_t next_input = 0;
    for (const auto& e : examples) {
      rows.push_back(e.has_input ? embedded[next_input++] : torch::tensor(e.embedding));
      const auto [it, added] = label_of.emplace(e.label, static_cast<int64_t>(set->classes.size()));
      if (added) set->classes.push_back(e.label);
      set->labels.push_back(it->second);
    }
    set->embeddings = torch::stack(rows).to(torch::kFloat32);
    return set;
  }

  void put_support(const httplib::Request& req, httplib::Response& res) {
    auto set = support_of(parse_support_request(body_of(req, "/v1/support"), limits), "examples");
    const json answer = {{"classes", set->classes}, {"examples", set->labels.size()}};
    {
      std::lock_guard<std::mutex> lock(support_mutex);
      support = std::move(set);
    }
    send_json(res, 200, answer);
  }

  void oneshot(const httplib::Request& req, httplib::Response& res) {
    const auto r = parse_oneshot_request(body_of(req, "/v1/oneshot"), limits);
    std::shared_ptr<const SupportSet> set;
    if (!r.support.empty()) {
      set = support_of(r.support, "support");
    } else {
      std::lock_guard<std::mutex> lock(support_mutex);
      set = support;
    }
    if (!set) throw HttpError{409, "no_support", "no support set: PUT /v1/support first, or give \"support\" in the request"};
    const double threshold = r.threshold < -1.5 ? model.threshold : r.threshold;
    const auto match = classify_by_support(embed({r.input}, {"input"}), set->embeddings, set->labels, model.network->options.distance(),
                                           parse_support_rule(r.rule), threshold)
                           .at(0);
    const json cls = match.label < 0 ? json(nullptr) : json(set->classes[static_cast<size_t>(match.label)]);
    send_json(res, 200, {{"class", cls}, {"distance", match.distance}, {"threshold", threshold}});
  }

  void page(const httplib::Request&, httplib::Response& res) { res.set_content(std::string(serve::kIndexHtml), "text/html; charset=utf-8"); }
  void openapi(const httplib::Request&, httplib::Response& res) { res.set_content(std::string(serve::kOpenApiJson), "application/json"); }
  void livez(const httplib::Request&, httplib::Response& res) { send_json(res, 200, {{"status", "ok"}}); }
  void readyz(const httplib::Request&, httplib::Response& res) { send_json(res, 200, {{"model", true}, {"index", store != nullptr}}); }
  void metrics_route(const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.text(batcher->stats(), batcher->queued(), store ? store->size() : 0), "text/plain; version=0.0.4");
  }
  void info_route(const httplib::Request&, httplib::Response& res) { send_json(res, 200, info()); }

  void add_routes();

  void configure_http() {
    http.new_task_queue = [this] { return new httplib::ThreadPool(static_cast<size_t>(std::max(1, options.threads()))); };
    http.set_payload_max_length(static_cast<size_t>(options.max_body_bytes()));
    // Headers and body leave in separate writes: with Nagle's algorithm the body waits for the
    // client's delayed ACK, 40 ms per request on Linux.
    http.set_tcp_nodelay(true);
    const auto timeout = static_cast<time_t>(std::max(1.0, options.timeout_s()));
    http.set_read_timeout(timeout);
    http.set_write_timeout(timeout);
    http.set_pre_routing_handler([](const auto&, auto&) {
      request_start = Clock::now();
      return httplib::Server::HandlerResponse::Unhandled;
    });
    // Answers httplib makes itself (unknown route, body too large, bad request line) in our form.
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours, counted already
      if (res.status == 404 && is_route(req.path)) {
        send_error(res, 405, "method_not_allowed", req.method + " is not allowed on " + req.path);
      } else if (res.status == 404) {
        send_error(res, 404, "unknown_route", "no route " + req.method + " " + req.path);
      } else if (res.status == 413) {
        send_error(res, 413, "body_too_large", "the request body is larger than this service takes");
      } else {
        send_error(res, res.status, "bad_request", "the request could not be read (HTTP status " + std::to_string(res.status) + ")");
      }
      record(req, res);
      return httplib::Server::HandlerResponse::Handled;
    }));
    add_routes();
  }
};

namespace {

struct RouteInfo {
  const char* method;
  const char* path;  ///< as OpenAPI writes it
  Access access;
  void (Service::Impl::*serve)(const httplib::Request&, httplib::Response&);
};

const RouteInfo kRouteTable[] = {
    {"GET", "/", Access::Open, &Service::Impl::page},
    {"GET", "/openapi.json", Access::Open, &Service::Impl::openapi},
    {"GET", "/livez", Access::Open, &Service::Impl::livez},
    {"GET", "/readyz", Access::Open, &Service::Impl::readyz},
    {"GET", "/metrics", Access::Read, &Service::Impl::metrics_route},
    {"GET", "/v1/info", Access::Read, &Service::Impl::info_route},
    {"POST", "/v1/embed", Access::Read, &Service::Impl::embed_route},
    {"POST", "/v1/compare", Access::Read, &Service::Impl::compare},
    {"POST", "/v1/search", Access::Read, &Service::Impl::search},
    {"POST", "/v1/oneshot", Access::Read, &Service::Impl::oneshot},
    {"PUT", "/v1/support", Access::Write, &Service::Impl::put_support},
    {"PUT", "/v1/items/{key}", Access::Write, &Service::Impl::put_item},
    {"GET", "/v1/items/{key}", Access::Read, &Service::Impl::get_item},
    {"DELETE", "/v1/items/{key}", Access::Write, &Service::Impl::delete_item},
};

bool is_items(const std::string& path) { return path.rfind(kItems, 0) == 0 && path.size() > kItems.size(); }

bool is_route(const std::string& path) {
  return is_items(path) || std::any_of(std::begin(kRouteTable), std::end(kRouteTable), [&](const auto& r) { return path == r.path; });
}

std::string route_of(const std::string& path) {
  if (is_items(path)) return kItems + "{key}";
  return is_route(path) ? path : "other";
}

}  // namespace

void Service::Impl::add_routes() {
  for (const auto& r : kRouteTable) {
    const std::string path = r.path;
    // An item key is any text (newlines included, refused by parse_item_key).
    const std::string pattern = path == kItems + "{key}" ? kItems + R"(([\s\S]+))" : path;
    auto h = handler(r.access, [this, serve = r.serve](const httplib::Request& req, httplib::Response& res) { (this->*serve)(req, res); });
    const std::string method = r.method;
    if (method == "GET") http.Get(pattern, std::move(h));
    if (method == "POST") http.Post(pattern, std::move(h));
    if (method == "PUT") http.Put(pattern, std::move(h));
    if (method == "DELETE") http.Delete(pattern, std::move(h));
  }
}

std::vector<std::pair<std::string, std::string>> Service::routes() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& r : kRouteTable) out.emplace_back(r.method, r.path);
  return out;
}

Service::Service(SavedModel model, std::string index_path, ServiceOptions options, Logger& logger)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(index_path), std::move(options), logger)) {}

Service::~Service() { stop(); }

int Service::start() {
  auto& s = *impl_;
  const auto& o = s.options;
  if (o.read_keys().empty() && o.read_write_keys().empty() && !is_loopback(o.host())) {
    throw Error(ErrorCode::InvalidArgument, "serve: --host " + o.host() + " without API keys; give --api-key-file, or bind 127.0.0.1");
  }
  s.model.network->eval();
  s.fingerprint = model_fingerprint(s.model.network);
  if (!s.index_path.empty()) {
    s.store = std::make_unique<serve::ItemStore>(s.index_path, s.model.network->encoder->embedding_dim(), s.model.network->options.distance(),
                                                 s.fingerprint, o.snapshot_every(), s.logger);
  }
  s.batcher = std::make_unique<serve::Batcher>(s.model, o.max_batch(), o.max_delay_ms(), o.max_queue());
  s.configure_http();
  s.port = o.port() == 0 ? s.http.bind_to_any_port(o.host()) : (s.http.bind_to_port(o.host(), o.port()) ? o.port() : -1);
  if (s.port <= 0) {
    s.port = 0;
    throw Error(ErrorCode::IOError, "serve: cannot listen on " + o.host() + ":" + std::to_string(o.port()) + " (in use, or not an address of this machine)");
  }
  s.listener = std::thread([&s] { s.http.listen_after_bind(); });
  if (o.read_keys().empty() && o.read_write_keys().empty()) {
    s.logger.warning("serve: no API key configured: anyone on this machine may call the service (loopback only)");
  }
  return s.port;
}

void Service::stop() {
  auto& s = *impl_;
  s.http.stop();
  if (s.listener.joinable()) s.listener.join();
  if (s.batcher) s.batcher->stop();
  if (s.store) {
    try {
      s.store->snapshot();
    } catch (const Error& e) {  // the log still holds every change: nothing is lost
      s.logger.warning(std::string("serve: the snapshot at exit failed: ") + e.what());
    }
  }
  {
    std::lock_guard<std::mutex> lock(s.stop_mutex);
    s.stopped = true;
  }
  s.stop_cv.notify_all();
}

void Service::wait() {
  std::unique_lock<std::mutex> lock(impl_->stop_mutex);
  impl_->stop_cv.wait(lock, [&] { return impl_->stopped; });
}

int Service::port() const { return impl_->port; }

}  // namespace siamese
