// `siamese index` with several writers at once and with class folders added over several calls,
// run as users would run it (real processes, an untrained model).
#include <gtest/gtest.h>
#include <spawn.h>

#include <filesystem>
#include <map>
#include <set>

#include "siamese/index/index.h"
#include "small_model_util.h"
#include "test_util.h"

using namespace siamese;
using namespace siamese::testing;
namespace fs = std::filesystem;

TEST(IndexCli, ConcurrentAddsAndRemovesLoseNoItem) {
  const auto dir = temp_dir("index_concurrent");
  const auto model = (dir / "model.pt").string(), idx = (dir / "gallery.db").string();
  save_small_model(model);
  auto expected = write_random_images(dir / "base", "base", 3, 10);
  auto build = run("index build --model " + model + " --data " + (dir / "base").string() + " --out " + idx);
  ASSERT_EQ(build.code, 0) << build.out;
  // Two of the base items are removed while the adds run.
  std::vector<int64_t> doomed;
  std::set<std::string> removed;
  for (const auto& item : EmbeddingIndex::load(idx).items()) {
    if (item.key == expected[0] || item.key == expected[1]) doomed.push_back(item.id), removed.insert(item.key);
  }
  ASSERT_EQ(doomed.size(), 2u);
  expected.erase(expected.begin(), expected.begin() + 2);
  constexpr int kWriters = 6;
  std::vector<pid_t> writers;
  for (int w = 0; w < kWriters; ++w) {
    const auto folder = dir / ("more" + std::to_string(w));
    auto files = write_random_images(folder, "w" + std::to_string(w), 4, 100 + static_cast<uint64_t>(w));
    expected.insert(expected.end(), files.begin(), files.end());
  }
  for (int w = 0; w < kWriters; ++w) {  // all started before any has finished loading its model
    const auto folder = dir / ("more" + std::to_string(w));
    writers.push_back(start_cli({"index", "add", "--index", idx, "--model", model, "--data", folder.string()},
                                (dir / ("writer" + std::to_string(w) + ".log")).string()));
    ASSERT_GT(writers.back(), 0);
    if (w == 1 || w == 3) {  // removers between the adders
      const auto id = std::to_string(doomed[w == 1 ? 0 : 1]);
      writers.push_back(start_cli({"index", "remove", "--index", idx, "--ids", id},
                                  (dir / ("writer" + std::to_string(w) + "r.log")).string()));
      ASSERT_GT(writers.back(), 0);
    }
  }
  for (size_t w = 0; w < writers.size(); ++w) EXPECT_EQ(wait_for(writers[w]), 0) << "writer " << w;
  auto index = EmbeddingIndex::load(idx);
  std::set<std::string> keys;
  std::set<int64_t> ids;
  for (const auto& item : index.items()) {
    keys.insert(item.key);
    ids.insert(item.id);
  }
  for (const auto& file : expected) EXPECT_TRUE(keys.count(file)) << "lost: " << file;
  for (const auto& file : removed) EXPECT_FALSE(keys.count(file)) << "not removed: " << file;
  EXPECT_EQ(index.size(), static_cast<int64_t>(expected.size()));
  EXPECT_EQ(ids.size(), expected.size());
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  }
}

TEST(IndexCli, ClassFoldersKeepTheirLabelsAcrossAdds) {
  const auto dir = temp_dir("index_classes");
  const auto model = (dir / "model.pt").string(), idx = (dir / "classes.db").string();
  save_small_model(model);
  // Folder A holds classes x and y; folder B holds y and z (each call numbers its folders from 0).
  write_random_images(dir / "A" / "x", "ax", 3, 1);
  write_random_images(dir / "A" / "y", "ay", 3, 2);
  write_random_images(dir / "B" / "y", "by", 3, 3);
  write_random_images(dir / "B" / "z", "bz", 3, 4);
  ASSERT_EQ(run("index build --model " + model + " --data " + (dir / "A").string() + " --out " + idx).code, 0);
  auto add = run("index add --index " + idx + " --model " + model + " --data " + (dir / "B").string());
  ASSERT_EQ(add.code, 0) << add.out;

  // Every item's class is the folder its file lies in; one label per class name.
  auto index = EmbeddingIndex::load(idx);
  ASSERT_EQ(index.size(), 12);
  std::map<std::string, std::set<int64_t>> labels_of;  // folder name -> labels its items got
  for (const auto& item : index.items()) {
    const auto folder = fs::path(item.key).parent_path().filename().string();
    labels_of[folder].insert(item.label);
    EXPECT_EQ(item.class_name, folder) << item.key;
  }
  ASSERT_EQ(labels_of.size(), 3u);
  for (const auto& [name, labels] : labels_of) EXPECT_EQ(labels.size(), 1u) << name;
  const int64_t x = *labels_of["x"].begin(), y = *labels_of["y"].begin(), z = *labels_of["z"].begin();
  EXPECT_EQ(x, 0);  // the first call's labels, as it numbered its folders
  EXPECT_EQ(y, 1);
  EXPECT_GT(z, std::max(x, y));  // a new name: a new label above those in use

  auto search = run("search --index " + idx + " --model " + model + " --query " + (dir / "B" / "z").string() +
                    " -k 12 --json");
  ASSERT_EQ(search.code, 0) << search.out;
  auto lines = json_lines(search.out);
  ASSERT_EQ(lines.size(), 3u) << search.out;
  for (const auto& line : lines) {
    ASSERT_EQ(line["hits"].size(), 12u);
    EXPECT_EQ(line["hits"][0]["key"], line["query"]);  // itself, at distance 0
    for (const auto& hit : line["hits"]) {
      const auto folder = fs::path(hit["key"].get<std::string>()).parent_path().filename().string();
      EXPECT_EQ(hit["class"], folder) << hit.dump();
      EXPECT_EQ(hit["label"].get<int64_t>(), *labels_of[folder].begin()) << hit.dump();
    }
  }
  auto text = run("search --index " + idx + " --model " + model + " --query " + (dir / "A" / "x" / "ax_0.png").string());
  ASSERT_EQ(text.code, 0) << text.out;
  EXPECT_NE(text.out.find("label 0 (x)"), std::string::npos) << text.out;
}
