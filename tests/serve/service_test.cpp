// The HTTP service end to end on 127.0.0.1: answers compared with the library's own embeddings,
// distances and searches; batching seen in /metrics; every bad request class and its status.
#include <sys/wait.h>

#include <atomic>
#include <future>
#include <map>
#include <random>

#include "serve_util.h"
#include "siamese/core/distance.h"
#include "siamese/index/index.h"

using namespace siamese;
using namespace siamese::testing;

TEST_F(Serve, EmbedAndCompareEqualTheLibrary) {
  auto reference = small_model(dir_);
  const auto expected = embed_inputs(reference, read_files(paths_, reference));
  Running s(small_model(dir_), "", ServiceOptions());
  json inputs = json::array();
  for (const auto& b : images_) inputs.push_back(image(b));
  const auto [status, answer] = s.post("/v1/embed", {{"inputs", inputs}});
  ASSERT_EQ(status, 200) << answer.dump();
  ASSERT_EQ(answer["embeddings"].size(), images_.size());
  for (size_t i = 0; i < images_.size(); ++i) {
    const auto row = torch::tensor(answer["embeddings"][i].get<std::vector<float>>());
    EXPECT_TRUE(torch::allclose(row, expected[static_cast<int64_t>(i)], 1e-5, 1e-6)) << "input " << i;
  }
  const auto [cs, compared] = s.post("/v1/compare", {{"a", image(images_[0])}, {"b", image(images_[1])}});
  ASSERT_EQ(cs, 200) << compared.dump();
  torch::NoGradGuard no_grad;
  const double d = reference.network->forward(read_image(paths_[0], 1, 28, 28), read_image(paths_[1], 1, 28, 28)).item<double>();
  EXPECT_NEAR(compared["distance"].get<double>(), d, 1e-5);
  EXPECT_DOUBLE_EQ(compared["threshold"].get<double>(), 0.8);
  EXPECT_EQ(compared["same"].get<bool>(), d <= 0.8);
  const auto [is, info] = s.get("/v1/info");
  ASSERT_EQ(is, 200);
  EXPECT_EQ(info["model"]["embedding_dim"], 16);
  EXPECT_EQ(info["model"]["input"]["height"], 28);
  EXPECT_EQ(info["model"]["fingerprint"], model_fingerprint(reference.network));
  EXPECT_TRUE(info["index"].is_null());
  EXPECT_EQ(s.get("/livez").first, 200);
}

TEST_F(Serve, SearchAnswersAsTheIndexDoes) {
  auto model = small_model(dir_);
  const auto embeddings = embed_inputs(model, read_files(paths_, model));
  const auto index_path = (dir_ / "gallery.faiss").string();
  {
    EmbeddingIndex index(IndexOptions(16).fingerprint(model_fingerprint(model.network)));
    index.add(embeddings.narrow(0, 1, 5), {"b", "c", "d", "e", "f"}, {1, 2, 1, 2, 1}, model_fingerprint(model.network));
    index.save(index_path);
  }
  const auto direct = EmbeddingIndex::load(index_path).search(embeddings.narrow(0, 0, 1), 3).at(0);
  Running s(small_model(dir_), index_path, ServiceOptions());
  const auto [status, answer] = s.post("/v1/search", {{"input", image(images_[0])}, {"k", 3}});
  ASSERT_EQ(status, 200) << answer.dump();
  ASSERT_EQ(answer["hits"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(answer["hits"][i]["key"], direct[i].item.key);
    EXPECT_EQ(answer["hits"][i]["label"], direct[i].item.label);
    EXPECT_NEAR(answer["hits"][i]["distance"].get<double>(), direct[i].distance, 1e-4);
  }
  EXPECT_EQ(s.get("/v1/info").second["index"]["size"], 5);
  const auto big_k = s.post("/v1/search", {{"input", image(images_[0])}, {"k", 100}});
  EXPECT_EQ(big_k.second["hits"].size(), 5u) << "k past the index size gives every item";
}

TEST_F(Serve, RequestsThatArriveTogetherShareAForwardPass) {
  for (int64_t max_batch : {64, 1}) {
    Running s(small_model(dir_), "", ServiceOptions().max_batch(max_batch).max_delay_ms(300).threads(16));
    std::vector<std::future<int>> answers;
    for (int i = 0; i < 12; ++i) {
      answers.push_back(std::async(std::launch::async, [&, i] {
        httplib::Client c("127.0.0.1", s.port);
        auto r = c.Post("/v1/embed", json{{"inputs", {image(images_[static_cast<size_t>(i) % images_.size()])}}}.dump(), "application/json");
        return r ? r->status : 0;
      }));
    }
    for (auto& a : answers) EXPECT_EQ(a.get(), 200);
    const auto metrics = s.client.Get("/metrics");
    ASSERT_TRUE(metrics);
    const auto& text = metrics->body;
    const auto at = text.find("\nsiamese_batch_size_count ");
    ASSERT_NE(at, std::string::npos) << text;
    const int64_t batches = std::stoll(text.substr(at + 26));
    if (max_batch == 1) {
      EXPECT_EQ(batches, 12) << "batching off: one pass per input";
    } else {
      EXPECT_LT(batches, 12) << "12 requests sent at once within a 300 ms window all ran alone";
    }
    EXPECT_NE(text.find("siamese_requests_total{route=\"/v1/embed\",status=\"200\"} 12"), std::string::npos) << text;
  }
}

TEST_F(Serve, BadRequestsGetTheirStatusAndAJsonError) {
  Running s(small_model(dir_), "", ServiceOptions().max_body_bytes(8192).max_pixels(1000000).max_inputs(3));
  expect_error(s.parse(s.client.Post("/v1/embed", "{not json", "application/json")), 400, "invalid_argument", "not JSON");
  expect_error(s.post("/v1/embed", {{"inputs", {{{"image", 7}}}}}), 400, "invalid_argument", "inputs[0].image: must be a string");
  expect_error(s.post("/v1/embed", {{"inputs", {image("this is no image")}}}), 400, "corrupt_input", "inputs[0]: cannot decode the image");
  expect_error(s.post("/v1/compare", {{"a", image(png(28, 28, 1))}, {"b", image(png(20, 28, 1))}}), 400, "invalid_argument",
               "b: image is 1x20x28");
  expect_error(s.post("/v1/embed", {{"inputs", {image(blank_png(1200, 1000))}}}), 400, "invalid_argument",
               "image of 1200000 pixels; at most 1000000");
  expect_error(s.post("/v1/embed", {{"inputs", {{{"text", "a shoe"}}}}}), 400, "invalid_argument", "this model does not read texts");
  expect_error(s.post("/v1/embed", {{"inputs", json::array({image(images_[0]), image(images_[0]), image(images_[0]), image(images_[0])})}}),
               400, "invalid_argument", "4 inputs; at most 3");
  expect_error(s.parse(s.client.Post("/v1/embed", std::string(9000, ' '), "application/json")), 413, "body_too_large", "larger");
  expect_error(s.get("/v1/nothing"), 404, "unknown_route", "no route GET /v1/nothing");
  expect_error(s.get("/v1/embed"), 405, "method_not_allowed", "GET is not allowed on /v1/embed");
  expect_error(s.post("/v1/search", {{"input", image(images_[0])}}), 404, "no_index", "no index");
}

TEST_F(Serve, SearchOnAnEmptyIndexIsAConflict) {
  auto model = small_model(dir_);
  const auto index_path = (dir_ / "empty.faiss").string();
  EmbeddingIndex(IndexOptions(16).fingerprint(model_fingerprint(model.network))).save(index_path);
  Running s(std::move(model), index_path, ServiceOptions());
  expect_error(s.post("/v1/search", {{"input", image(images_[0])}}), 409, "empty_index", "holds no items");
}

TEST_F(Serve, ApiKeysAreAskedForAndChecked) {
  const auto keys = dir_ / "keys";
  std::ofstream(keys) << "# readers and writers\nro reader-key-0123456789\nrw writer-key-0123456789\n";
  ServiceOptions options;
  read_api_keys(keys.string(), options);
  EXPECT_EQ(options.read_keys(), std::vector<std::string>{"reader-key-0123456789"});
  EXPECT_EQ(options.read_write_keys(), std::vector<std::string>{"writer-key-0123456789"});
  Running s(small_model(dir_), "", options);
  const json body = {{"inputs", {image(images_[0])}}};
  expect_error(s.post("/v1/embed", body), 401, "unauthorized", "needs an API key");
  expect_error(s.post("/v1/embed", body, {{"Authorization", "Bearer reader-key-012345678X"}}), 401, "unauthorized", "unknown API key");
  expect_error(s.get("/metrics"), 401, "unauthorized", "needs an API key");
  EXPECT_EQ(s.post("/v1/embed", body, {{"Authorization", "Bearer reader-key-0123456789"}}).first, 200);
  EXPECT_EQ(s.post("/v1/embed", body, {{"api-key", "writer-key-0123456789"}}).first, 200);
  EXPECT_EQ(s.get("/livez").first, 200) << "health needs no key";

  std::ofstream(keys) << "ro short\n";
  expect_error_code([&] { read_api_keys(keys.string(), options); }, ErrorCode::InvalidArgument, "at least 16 characters");
}

TEST_F(Serve, NoKeyMeansLoopbackOnly) {
  Service service(small_model(dir_), "", ServiceOptions().host("0.0.0.0").port(0), silent_logger());
  expect_error_code([&] { service.start(); }, ErrorCode::InvalidArgument, "without API keys");
}

TEST_F(Serve, AFullQueueAnswers429WithRetryAfter) {
  Running s(small_model(dir_), "", ServiceOptions().max_queue(1).max_delay_ms(1500).max_batch(8).threads(4));
  const json body = {{"inputs", {image(images_[0])}}};
  auto first = std::async(std::launch::async, [&] {
    httplib::Client c("127.0.0.1", s.port);
    auto r = c.Post("/v1/embed", body.dump(), "application/json");
    return r ? r->status : 0;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the first waits 1.5 s for company
  auto second = s.client.Post("/v1/embed", body.dump(), "application/json");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 429) << second->body;
  EXPECT_EQ(second->get_header_value("Retry-After"), "1");
  EXPECT_NE(second->body.find("\"overloaded\""), std::string::npos) << second->body;
  EXPECT_EQ(first.get(), 200);
}

TEST_F(Serve, ItemsArePutGotAndDeleted) {
  auto model = small_model(dir_);
  const auto expected = embed_inputs(model, read_files({paths_[0]}, model))[0];
  const auto index_path = (dir_ / "items.faiss").string();
  const auto keys = dir_ / "keys";
  std::ofstream(keys) << "ro reader-key-0123456789\nrw writer-key-0123456789\n";
  ServiceOptions options;
  read_api_keys(keys.string(), options);
  Running s(std::move(model), index_path, options);
  const httplib::Headers writer = {{"api-key", "writer-key-0123456789"}}, reader = {{"api-key", "reader-key-0123456789"}};
  const auto put = [&](const std::string& key, const json& body, const httplib::Headers& h) {
    return s.parse(s.client.Put(("/v1/items/" + key).c_str(), h, body.dump(), "application/json"));
  };
  const auto created = put("shoe%2F1", {{"input", image(images_[0])}, {"label", "shoe"}}, writer);
  ASSERT_EQ(created.first, 201) << created.second.dump();
  EXPECT_EQ(created.second["key"], "shoe/1");
  EXPECT_EQ(created.second["class"], "shoe");
  EXPECT_EQ(put("shoe%2F1", {{"input", image(images_[0])}, {"label", "shoe"}}, writer).first, 200) << "a second PUT replaces";
  expect_error(put("x", {{"input", image(images_[0])}}, reader), 403, "forbidden", "may only read");
  expect_error(put("x", {{"embedding", {1.0, 2.0}}}, writer), 400, "invalid_argument", "embedding: 2 values; the index holds 16");
  expect_error(put("x", {{"embedding", {1.0}}, {"input", image(images_[0])}}, writer), 400, "invalid_argument", "exactly one of");

  const auto got = s.get("/v1/items/shoe%2F1", reader);
  ASSERT_EQ(got.first, 200) << got.second.dump();
  const auto stored = torch::tensor(got.second["embedding"].get<std::vector<float>>());
  EXPECT_TRUE(torch::allclose(stored, expected, 1e-5, 1e-6)) << "the stored vector is the library's embedding";
  const auto found = s.post("/v1/search", {{"input", image(images_[0])}, {"k", 1}}, reader);
  ASSERT_EQ(found.first, 200) << found.second.dump();
  EXPECT_EQ(found.second["hits"][0]["key"], "shoe/1");
  EXPECT_NEAR(found.second["hits"][0]["distance"].get<double>(), 0.0, 1e-3);
  EXPECT_EQ(s.get("/v1/info", reader).second["index"]["size"], 1);

  EXPECT_EQ(s.parse(s.client.Delete("/v1/items/shoe%2F1", writer)).first, 200);
  expect_error(s.get("/v1/items/shoe%2F1", reader), 404, "unknown_key", "no item with key 'shoe/1'");
  expect_error(s.parse(s.client.Delete("/v1/items/shoe%2F1", writer)), 404, "unknown_key", "shoe/1");
  expect_error(s.get("/v1/items/a%0Ab", reader), 400, "invalid_argument", "control character");
}

TEST_F(Serve, AcknowledgedItemsSurviveKill9) {
  const auto model_path = (dir_ / "model.pt").string();
  small_model(dir_);
  const auto index_path = (dir_ / "crash.faiss").string();
  const auto log = dir_ / "serve.log";
  // The server in a process of its own; its port read from what it prints.
  const auto start = [&]() -> std::pair<pid_t, int> {
    std::filesystem::remove(log);
    const std::string cmd = std::string(SIAMESE_CLI) + " serve --model " + model_path + " --index " + index_path +
                            " --port 0 --snapshot-every 37 2> " + log.string() + " & echo $!";
    FILE* p = ::popen(cmd.c_str(), "r");
    long pid = 0;
    EXPECT_EQ(std::fscanf(p, "%ld", &pid), 1);
    ::pclose(p);
    for (int i = 0; i < 300; ++i) {
      const auto text = siamese::testing::read_file(log);
      const auto at = text.find("http://127.0.0.1:");
      if (at != std::string::npos) return {static_cast<pid_t>(pid), std::stoi(text.substr(at + 17))};
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "the server did not start: " << siamese::testing::read_file(log);
    return {static_cast<pid_t>(pid), 0};
  };
  // The server is the shell's child, not ours: wait until it is gone (reaped by init).
  const auto running = [](pid_t pid) {  // not gone, and not a zombie that no init reaps
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    return ::kill(pid, 0) == 0 && !(close != std::string::npos && close + 2 < text.size() && text[close + 2] == 'Z');
  };
  const auto wait_gone = [&](pid_t pid) {
    for (int i = 0; i < 1500 && running(pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_FALSE(running(pid)) << "server " << pid << " did not exit";
  };
  std::map<std::string, std::vector<float>> acknowledged;
  std::mt19937 rng(5);
  int next = 0;
  for (int round = 0; round < 4; ++round) {
    const auto [pid, port] = start();
    ASSERT_GT(port, 0);
    // A writer thread puts items until the server dies under it; each 2xx is an acknowledged item.
    std::atomic<bool> dead{false};
    std::thread writer([&, port = port, seed = rng()] {
      httplib::Client c("127.0.0.1", port);
      std::mt19937 values(seed);
      std::normal_distribution<float> normal;
      while (!dead) {
        std::vector<float> v(16);
        for (auto& x : v) x = normal(values);
        const std::string key = "item-" + std::to_string(next++);
        auto r = c.Put(("/v1/items/" + key).c_str(), json{{"embedding", v}, {"label", "c" + std::to_string(next % 3)}}.dump(), "application/json");
        if (r && (r->status == 200 || r->status == 201)) acknowledged[key] = v;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + static_cast<int>(rng() % 700)));
    ::kill(pid, SIGKILL);
    wait_gone(pid);
    dead = true;
    writer.join();
  }
  ASSERT_GT(acknowledged.size(), 20u) << "too few writes to test anything";
  // Restarted once more: every acknowledged item is there with its vector.
  const auto [pid, port] = start();
  ASSERT_GT(port, 0);
  httplib::Client c("127.0.0.1", port);
  auto info = c.Get("/v1/info");
  ASSERT_TRUE(info);
  EXPECT_GE(json::parse(info->body)["index"]["size"].get<int64_t>(), static_cast<int64_t>(acknowledged.size()));
  for (const auto& [key, v] : acknowledged) {
    auto r = c.Get(("/v1/items/" + key).c_str());
    ASSERT_TRUE(r && r->status == 200) << key << " was acknowledged and is gone";
    EXPECT_EQ(json::parse(r->body)["embedding"].get<std::vector<float>>(), v) << key;
  }
  ::kill(pid, SIGTERM);
  wait_gone(pid);
  // After a clean stop the index file alone holds them all, and searches as a Flat search does.
  auto index = EmbeddingIndex::load(index_path);
  EXPECT_GE(index.size(), static_cast<int64_t>(acknowledged.size()));
  const auto query = torch::tensor(acknowledged.begin()->second).reshape({1, 16});
  EXPECT_EQ(index.search(query, 1).at(0).at(0).item.key, acknowledged.begin()->first);
}
