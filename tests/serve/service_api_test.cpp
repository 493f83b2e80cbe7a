// The service's other routes end to end on 127.0.0.1: one-shot classification against the
// library's classify_by_support, multipart uploads against the same JSON requests, per-call
// search parameters against the index's own settings, the OpenAPI document against the route
// table, the web page, and stop() draining the requests in flight.
#include <future>
#include <set>

#include "serve_util.h"
#include "siamese/eval/metrics.h"
#include "siamese/index/index.h"
#include "siamese/model/network.h"

using namespace siamese;
using namespace siamese::testing;

namespace {

httplib::MultipartFormData file_part(const std::string& name, const std::string& bytes) { return {name, bytes, name + ".png", "image/png"}; }

json example(const std::string& bytes, const std::string& label) { return {{"input", image(bytes)}, {"label", label}}; }

class ServeApi : public Serve {};  // a suite of its own: CTest runs each file's suites

}  // namespace

TEST_F(ServeApi, OneShotAnswersAsClassifyBySupport) {
  auto reference = small_model(dir_);
  const auto e = embed_inputs(reference, read_files(paths_, reference));
  const std::vector<std::string> classes = {"boot", "bag", "boot", "bag", "shirt"};
  Running s(small_model(dir_), "", ServiceOptions());
  expect_error(s.post("/v1/oneshot", {{"input", image(images_[5])}}), 409, "no_support", "PUT /v1/support first");
  json examples = json::array();
  for (size_t i = 0; i < classes.size(); ++i) examples.push_back(example(images_[i], classes[i]));
  const auto put = s.parse(s.client.Put("/v1/support", json{{"examples", examples}}.dump(), "application/json"));
  ASSERT_EQ(put.first, 200) << put.second.dump();
  EXPECT_EQ(put.second["classes"], json({"boot", "bag", "shirt"}));
  EXPECT_EQ(s.get("/v1/info").second["support"]["examples"], 5);

  const std::vector<int64_t> labels = {0, 1, 0, 1, 2};
  for (const std::string rule : {"mean", "nearest"}) {
    const auto expected = classify_by_support(e.narrow(0, 5, 1), e.narrow(0, 0, 5), labels, reference.network->options.distance(),
                                              parse_support_rule(rule), 0.8)[0];
    const auto [status, answer] = s.post("/v1/oneshot", {{"input", image(images_[5])}, {"rule", rule}});
    ASSERT_EQ(status, 200) << answer.dump();
    EXPECT_NEAR(answer["distance"].get<double>(), expected.distance, 1e-5) << rule;
    const std::vector<std::string> by_label = {"boot", "bag", "shirt"};
    EXPECT_EQ(answer["class"], expected.label < 0 ? json(nullptr) : json(by_label[static_cast<size_t>(expected.label)])) << rule;
    EXPECT_DOUBLE_EQ(answer["threshold"].get<double>(), 0.8) << "the model's threshold by default";
    // The same support set given in the request, and with the threshold at -1 (never "none").
    const auto inline_set = s.post("/v1/oneshot", {{"input", image(images_[5])}, {"rule", rule}, {"support", examples}, {"threshold", -1}});
    ASSERT_EQ(inline_set.first, 200) << inline_set.second.dump();
    EXPECT_NEAR(inline_set.second["distance"].get<double>(), expected.distance, 1e-5);
    EXPECT_FALSE(inline_set.second["class"].is_null());
  }
  const auto strict = s.post("/v1/oneshot", {{"input", image(images_[5])}, {"threshold", 0}});
  ASSERT_EQ(strict.first, 200);
  EXPECT_TRUE(strict.second["class"].is_null()) << "threshold 0: no class is that close; " << strict.second.dump();

  expect_error(s.parse(s.client.Put("/v1/support", json{{"examples", {example(images_[0], "a"), example(images_[1], "a")}}}.dump(), "application/json")),
               400, "invalid_argument", "at least 2 classes");
  expect_error(s.post("/v1/oneshot", {{"input", image(images_[0])}, {"support", {{{"embedding", {1, 2}}, {"label", "a"}}, example(images_[1], "b")}}}), 400,
               "invalid_argument", "support[0].embedding: 2 values; the model's embeddings have 16");
  expect_error(s.post("/v1/oneshot", {{"input", image(images_[0])}, {"rule", "best"}}), 400, "invalid_argument", "rule: must be");
}

TEST_F(ServeApi, MultipartUploadsEqualTheJsonRequests) {
  Running s(small_model(dir_), "", ServiceOptions());
  const auto json_compare = s.post("/v1/compare", {{"a", image(images_[0])}, {"b", image(images_[1])}});
  ASSERT_EQ(json_compare.first, 200);
  const auto form_compare = s.parse(s.client.Post("/v1/compare", httplib::MultipartFormDataItems{file_part("a", images_[0]), file_part("b", images_[1])}));
  ASSERT_EQ(form_compare.first, 200) << form_compare.second.dump();
  EXPECT_EQ(form_compare.second, json_compare.second);

  const auto json_embed = s.post("/v1/embed", {{"inputs", {image(images_[2]), image(images_[3])}}});
  const auto form_embed = s.parse(s.client.Post("/v1/embed", httplib::MultipartFormDataItems{file_part("image", images_[2]), file_part("image", images_[3])}));
  ASSERT_EQ(form_embed.first, 200) << form_embed.second.dump();
  EXPECT_EQ(form_embed.second, json_embed.second) << "parts of one name keep their order";

  expect_error(s.parse(s.client.Post("/v1/compare", httplib::MultipartFormDataItems{file_part("a", images_[0]), file_part("c", images_[1])})), 400, "invalid_argument",
               "form part 'c': not a part of /v1/compare");
  expect_error(s.parse(s.client.Post("/v1/search", httplib::MultipartFormDataItems{file_part("image", images_[0]), {"k", "ten", "", ""}})), 400, "invalid_argument",
               "k: 'ten' is not an integer");
}

TEST_F(ServeApi, SearchTakesItsOwnParameters) {
  auto model = small_model(dir_);
  const auto fingerprint = model_fingerprint(model.network);
  const auto query = embed_inputs(model, read_files({paths_[0]}, model));
  torch::manual_seed(4);
  const auto x = torch::randn({1500, 16}) * query.abs().mean();
  const auto index_path = (dir_ / "hnsw.faiss").string();
  {
    EmbeddingIndex index(IndexOptions(16).spec("HNSW8").fingerprint(fingerprint));
    std::vector<std::string> keys;
    for (int i = 0; i < 1500; ++i) keys.push_back("v" + std::to_string(i));
    index.add(x, keys, std::vector<int64_t>(1500, -1), fingerprint);
    index.save(index_path);
  }
  auto loaded = EmbeddingIndex::load(index_path);
  Running s(std::move(model), index_path, ServiceOptions());
  for (const int64_t ef : {1, 500}) {
    loaded.set_search_parameters(16, ef);
    const auto expected = loaded.search(query, 20).at(0);
    const auto [status, answer] = s.post("/v1/search", {{"input", image(images_[0])}, {"k", 20}, {"ef_search", ef}});
    ASSERT_EQ(status, 200) << answer.dump();
    ASSERT_EQ(answer["hits"].size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(answer["hits"][i]["key"], expected[i].item.key) << "ef_search " << ef << " rank " << i;
  }
  const auto row = query[0].contiguous();
  const std::vector<float> vector(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
  const auto by_vector = s.post("/v1/search", {{"embedding", vector}, {"k", 20}, {"ef_search", 500}});
  const auto by_input = s.post("/v1/search", {{"input", image(images_[0])}, {"k", 20}, {"ef_search", 500}});
  ASSERT_EQ(by_vector.first, 200) << by_vector.second.dump();
  EXPECT_EQ(by_vector.second["hits"].size(), 20u);
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(by_vector.second["hits"][i]["key"], by_input.second["hits"][i]["key"]) << "rank " << i;
  expect_error(s.post("/v1/search", {{"embedding", {1.0, 2.0}}}), 400, "invalid_argument", "embedding: 2 values; the model's embeddings have 16");
  expect_error(s.post("/v1/search", {{"input", image(images_[0])}, {"nprobe", 4}}), 400, "invalid_argument", "nprobe applies to IVF indexes");
  expect_error(s.post("/v1/search", {{"input", image(images_[0])}, {"ef_search", 0}}), 400, "invalid_argument", "ef_search: must be an integer in [1, 65536]");
}

TEST_F(ServeApi, TheOpenApiDocumentListsEveryRouteAndItsAnswers) {
  Running s(small_model(dir_), "", ServiceOptions());
  const auto answer = s.get("/openapi.json");
  ASSERT_EQ(answer.first, 200);
  const json& doc = answer.second;  // not a structured binding: the lambda below captures it
  ASSERT_EQ(doc.value("openapi", ""), "3.0.3");
  std::set<std::pair<std::string, std::string>> documented, served;
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, operation] : item.items()) {
      if (method == "parameters") continue;
      std::string upper = method;
      for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      documented.insert({upper, path});
      // The server answers the route (no 404 unknown_route, no 405), with a status documented for it.
      std::string target = path;
      if (const auto at = target.find("{key}"); at != std::string::npos) target.replace(at, 5, "some-key");
      const auto r = s.client.send([&] {
        httplib::Request req;
        req.method = upper;
        req.path = target;
        return req;
      }());
      ASSERT_TRUE(r) << upper << " " << path;
      EXPECT_TRUE(operation["responses"].contains(std::to_string(r->status))) << upper << " " << path << " answered " << r->status << ": " << r->body;
    }
  }
  for (const auto& route : Service::routes()) served.insert(route);
  EXPECT_EQ(documented, served) << "/openapi.json and the route table differ";
  // Every $ref names a schema the document defines.
  std::function<void(const json&)> refs = [&](const json& j) {
    if (j.is_object()) {
      for (const auto& [name, value] : j.items()) {
        if (name == "$ref") {
          const std::string ref = value.get<std::string>();
          ASSERT_EQ(ref.rfind("#/components/schemas/", 0), 0u) << ref;
          EXPECT_TRUE(doc["components"]["schemas"].contains(ref.substr(21))) << ref;
        }
        refs(value);
      }
    } else if (j.is_array()) {
      for (const auto& v : j) refs(v);
    }
  };
  refs(doc);
}

TEST_F(ServeApi, TheWebPageIsServedWithEverythingInIt) {
  Running s(small_model(dir_), "", ServiceOptions());
  const auto page = s.client.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  for (const char* part : {"id=\"compare\"", "id=\"search\"", "/v1/compare", "<script>"}) EXPECT_NE(page->body.find(part), std::string::npos) << part;
  EXPECT_EQ(page->body.find("http"), std::string::npos) << "no external address: the page works offline";
}

TEST_F(ServeApi, StopLetsTheRequestsInFlightFinish) {
  // Each batch waits 800 ms for company: stop() comes while the request is in the batcher.
  auto s = std::make_unique<Running>(small_model(dir_), "", ServiceOptions().max_delay_ms(800));
  const int port = s->port;
  auto answer = std::async(std::launch::async, [&] {
    httplib::Client c("127.0.0.1", port);
    auto r = c.Post("/v1/embed", json{{"inputs", {image(images_[0])}}}.dump(), "application/json");
    return r ? r->status : 0;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  const auto stopping = std::chrono::steady_clock::now();
  s->service.stop();
  EXPECT_EQ(answer.get(), 200) << "the request in flight was dropped";
  EXPECT_GT(std::chrono::steady_clock::now() - stopping, std::chrono::milliseconds(300)) << "stop() did not wait for it";
  httplib::Client late("127.0.0.1", port);
  EXPECT_FALSE(late.Get("/livez")) << "a request after stop() was answered";
}

TEST_F(ServeApi, SeriesEmbedAsTheCsvReaderReadsThem) {
  torch::manual_seed(12);
  SiameseNetwork network(SiameseNetworkOptions().encoder(EncoderKind::Lstm).rnn(RnnEncoderOptions().features(1).hidden(8).embedding_dim(6)));
  const auto path = (dir_ / "series.pt").string();
  save_model(path, network, 0.5);
  const auto csv = dir_ / "series.csv";
  std::ofstream(csv) << "a,0.5,1.5,-2,3\nb,1,2\n";
  auto reference = load_model(path);
  const auto expected = embed_inputs(reference, read_inputs(csv.string(), reference));
  Running s(load_model(path), "", ServiceOptions());
  const auto [status, answer] = s.post("/v1/embed", {{"inputs", {{{"series", {0.5, 1.5, -2, 3}}}, {{"series", {{1}, {2}}}}}}});
  ASSERT_EQ(status, 200) << answer.dump();
  for (int64_t i = 0; i < 2; ++i) {
    const auto row = torch::tensor(answer["embeddings"][static_cast<size_t>(i)].get<std::vector<float>>());
    EXPECT_TRUE(torch::allclose(row, expected[i], 1e-5, 1e-6)) << "series " << i;
  }
  EXPECT_EQ(s.get("/v1/info").second["model"]["input"]["kind"], "series");
  expect_error(s.post("/v1/embed", {{"inputs", {{{"series", {{1, 2}}}}}}}), 400, "invalid_argument", "inputs[0]: 2 feature(s) per step; the model reads 1");
  expect_error(s.post("/v1/embed", {{"inputs", {{{"text", "abc"}}}}}), 400, "invalid_argument", "inputs[0]: a text, but this model does not read texts");
  expect_error(s.post("/v1/embed", {{"inputs", {image(images_[0])}}}), 400, "invalid_argument", "inputs[0]");
}
