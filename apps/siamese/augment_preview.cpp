// siamese augment-preview: a grid of training images beside augmented versions of them.
#include <cstdio>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "commands.h"
#include "console.h"
#include "siamese/core/atomic_file.h"
#include "siamese/data/augment.h"
#include "siamese/data/data.h"
#include "siamese/core/error.h"

namespace siamese::cli {

void add_augment_preview(CLI::App& app) {
  auto* cmd = app.add_subcommand("augment-preview",
                                 "write a PNG grid: one training image per class, then augmented versions of it");
  struct Flags {
    std::string data = "fashion-mnist", augment, out;
    int64_t images = 10, versions = 7, zoom = 3;
    uint64_t seed = 0;
    bool force = false;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("--data", f->data, "fashion-mnist | idx:DIR | folder:DIR")->capture_default_str();
  cmd->add_option("--augment", f->augment, "transforms, as for train --augment")->required();
  cmd->add_option("--out", f->out, "PNG file to write")->required();
  cmd->add_option("--images", f->images, "rows: the first image of each of the first N classes")->capture_default_str()->check(in_range(1, 1000));
  cmd->add_option("--versions", f->versions, "augmented versions per image")->capture_default_str()->check(in_range(1, 100));
  cmd->add_option("--zoom", f->zoom, "pixel enlargement")->capture_default_str()->check(in_range(1, 64));
  cmd->add_option("--seed", f->seed, "augmentation seed")->capture_default_str()->check(in_range(0, kMaxSeed));
  cmd->add_flag("--force", f->force, "replace an existing --out file");
  cmd->callback([f]() {
    const auto options = parse_augment(f->augment);
    if (f->out.size() < 4 || f->out.substr(f->out.size() - 4) != ".png") {
      throw Error(ErrorCode::InvalidArgument, f->out, "--out must end in .png");
    }
    check_output(f->out, f->force);
    auto data = open_data(f->data).train;
    std::vector<int64_t> picked;
    std::vector<bool> seen;
    for (int64_t i = 0; i < data.size() && static_cast<int64_t>(picked.size()) < f->images; ++i) {
      const auto c = static_cast<size_t>(data.labels()[i]);
      if (c >= seen.size()) seen.resize(c + 1, false);
      if (!seen[c]) seen[c] = true, picked.push_back(i);
    }
    auto grid = augment_grid(data.gather(picked), options, f->versions, f->seed, f->zoom).contiguous();
    cv::Mat mat(static_cast<int>(grid.size(0)), static_cast<int>(grid.size(1)), CV_8UC(static_cast<int>(grid.size(2))),
                grid.data_ptr<uint8_t>());
    if (mat.channels() == 3) cv::cvtColor(mat, mat, cv::COLOR_RGB2BGR);
    std::vector<uchar> png;
    if (!cv::imencode(".png", mat, png)) throw Error(ErrorCode::Internal, f->out, "cannot encode the grid as PNG");
    write_file_atomically(f->out, std::string(png.begin(), png.end()));
    std::printf("%s: %zu images (rows) x original + %lld versions (%s)\n", f->out.c_str(), picked.size(),
                static_cast<long long>(f->versions), to_string(options).c_str());
  });
}

}  // namespace siamese::cli
