#pragma once
// Small synthetic tracking sequences for the tests: a textured square moving over a textured
// background, in the OTB layout.
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

/// DIR/SEQ/img/0001.png ... and DIR/SEQ/groundtruth_rect.txt: `frames` frames of 128 × 96, a
/// 20 × 20 chequered square starting at (x0, y0) and moving (dx, dy) pixels a frame.
inline void write_moving_square(const std::filesystem::path& dir, int frames, double x0, double y0, double dx, double dy,
                                unsigned seed) {
  std::filesystem::create_directories(dir / "img");
  cv::Mat background(96, 128, CV_8UC3);
  cv::RNG rng(seed);
  rng.fill(background, cv::RNG::UNIFORM, 40, 140);
  cv::GaussianBlur(background, background, cv::Size(7, 7), 2);
  std::ofstream truth(dir / "groundtruth_rect.txt");
  for (int f = 0; f < frames; ++f) {
    cv::Mat frame = background.clone();
    const int x = static_cast<int>(x0 + dx * f), y = static_cast<int>(y0 + dy * f);
    for (int r = 0; r < 20; ++r) {
      for (int c = 0; c < 20; ++c) {
        const bool dark = ((r / 5) + (c / 5)) % 2 == 0;
        if (y + r >= 0 && y + r < 96 && x + c >= 0 && x + c < 128) {
          frame.at<cv::Vec3b>(y + r, x + c) = dark ? cv::Vec3b(30, 30, 200) : cv::Vec3b(230, 230, 60);
        }
      }
    }
    char name[16];
    std::snprintf(name, sizeof name, "%04d.png", f + 1);
    cv::imwrite((dir / "img" / name).string(), frame);
    truth << x << ',' << y << ",20,20\n";
  }
}

/// Three such sequences in DIR (two train, the last validates).
inline void write_square_sequences(const std::filesystem::path& dir) {
  write_moving_square(dir / "a", 10, 10, 20, 4, 2, 1);
  write_moving_square(dir / "b", 10, 90, 60, -4, -1, 2);
  write_moving_square(dir / "c", 10, 30, 10, 3, 3, 3);
}
