#pragma once
// What the service tests share: a small seeded model, PNG images, a running service on a free
// loopback port with a client, and checks of JSON error answers.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "base64_util.h"
#include "siamese/core/error.h"
#include "siamese/model/inputs.h"
#include "siamese/serve/service.h"
#include "test_util.h"

namespace siamese::testing {

using nlohmann::json;
namespace fs = std::filesystem;


/// An untrained CNN (seeded) on 28x28 grey images, embedding size 16, saved and loaded back.
inline SavedModel small_model(const fs::path& dir) {
  torch::manual_seed(11);
  SiameseNetwork network(SiameseNetworkOptions().cnn(CnnEncoderOptions().conv_channels({4, 8}).hidden(32).embedding_dim(16)));
  const auto path = (dir / "model.pt").string();
  save_model(path, network, 0.8);
  return load_model(path);
}

/// A random grey PNG of this size, as file bytes.
inline std::string png(int height, int width, uint64_t seed) {
  torch::manual_seed(seed);
  auto pixels = torch::randint(0, 256, {height, width}, torch::kUInt8).contiguous();
  std::vector<uchar> bytes;
  cv::imencode(".png", cv::Mat(height, width, CV_8UC1, pixels.data_ptr<uint8_t>()), bytes);
  return std::string(bytes.begin(), bytes.end());
}

/// A black grey PNG of this size: a few hundred bytes whatever its size.
inline std::string blank_png(int height, int width) {
  std::vector<uchar> bytes;
  cv::imencode(".png", cv::Mat::zeros(height, width, CV_8UC1), bytes);
  return std::string(bytes.begin(), bytes.end());
}

inline json image(const std::string& bytes) { return {{"image", base64(bytes)}}; }

/// A service on a free loopback port, with a client for it.
struct Running {
  Running(SavedModel model, const std::string& index, ServiceOptions options)
      : service(std::move(model), index, options.port(0), silent_logger()), port(service.start()), client("127.0.0.1", port) {
    client.set_read_timeout(60);
  }
  Service service;
  int port;
  httplib::Client client;

  /// POST of a JSON body; the status and the parsed answer.
  std::pair<int, json> post(const std::string& path, const json& body, const httplib::Headers& headers = {}) {
    return parse(client.Post(path.c_str(), headers, body.dump(), "application/json"));
  }
  std::pair<int, json> get(const std::string& path, const httplib::Headers& headers = {}) { return parse(client.Get(path.c_str(), headers)); }
  static std::pair<int, json> parse(const httplib::Result& r) {
    if (!r) return {0, json{{"transport_error", httplib::to_string(r.error())}}};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
};

/// A JSON error answer: this status and code, a message holding `says`.
inline void expect_error(const std::pair<int, json>& answer, int status, const std::string& code, const std::string& says) {
  EXPECT_EQ(answer.first, status) << answer.second.dump();
  const auto& e = answer.second.value("error", json::object());
  EXPECT_EQ(e.value("code", ""), code) << answer.second.dump();
  EXPECT_NE(e.value("message", "").find(says), std::string::npos) << answer.second.dump();
}

/// f() throws a siamese::Error of `code` saying `says`.
template <class F>
void expect_error_code(F&& f, ErrorCode code, const std::string& says) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one saying " << says;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
  }
}

class Serve : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_dir("serve");
    for (int i = 0; i < 6; ++i) {
      images_.push_back(png(28, 28, 100 + static_cast<uint64_t>(i)));
      paths_.push_back((dir_ / ("img" + std::to_string(i) + ".png")).string());
      std::ofstream(paths_.back(), std::ios::binary) << images_.back();
    }
  }
  fs::path dir_;
  std::vector<std::string> images_, paths_;
};

}  // namespace siamese::testing
