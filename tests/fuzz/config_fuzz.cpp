// Fuzz target: CLI11's config-file reader as apps/siamese/main.cpp sets it up (`siamese train
// --config FILE`: TOML or INI, a [train] section sets train's flags, unknown keys are errors), on a
// `train` subcommand with one option of each kind the real one has (string, integer, real, list,
// flag). Input: the config file.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = siamese::fuzz::write_input("config.toml", data, size);
  return siamese::fuzz::refuse_quietly([&] {
    CLI::App app{"siamese"};
    app.require_subcommand(1);
    app.set_config("--config", "", "read flags from a TOML/INI file");
    app.fallthrough();
    app.allow_config_extras(CLI::config_extras_mode::error);
    auto* train = app.add_subcommand("train", "train a network");
    std::string out, augment;
    int64_t epochs = 8;
    double lr = 1e-3;
    std::vector<int64_t> channels;
    bool resume = false;
    train->add_option("--out", out);
    train->add_option("--augment", augment);
    train->add_option("--epochs", epochs)->check(CLI::PositiveNumber);
    train->add_option("--lr", lr);
    train->add_option("--conv-channels", channels);
    train->add_flag("--resume", resume);
    std::vector<std::string> args = {"siamese", "train", "--config", path};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    app.parse(static_cast<int>(argv.size()), argv.data());
  });
}
