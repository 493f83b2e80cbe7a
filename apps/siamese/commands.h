#pragma once
// The subcommands of the `siamese` tool: each registers its flags and an action on the app.

#include <CLI/CLI.hpp>

namespace siamese::cli {

void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_embed(CLI::App& app);
void add_verify(CLI::App& app);
void add_augment_preview(CLI::App& app);
void add_index(CLI::App& app);
void add_search(CLI::App& app);
void add_oneshot(CLI::App& app);
void add_report(CLI::App& app);

}  // namespace siamese::cli
