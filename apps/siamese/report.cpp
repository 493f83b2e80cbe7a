// siamese report: the HTML page of a run folder (as `train` writes it at the end), or of a model
// and data made elsewhere.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "console.h"
#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"
#include "siamese/report/run_report.h"

namespace fs = std::filesystem;

namespace siamese::cli {

void add_report(CLI::App& app) {
  auto* cmd = app.add_subcommand("report", "write the HTML report of a run folder (or of --model on --data)");
  struct Flags {
    std::string run, model, data, out;
    int64_t samples = ReportOptions().samples(), queries = ReportOptions().queries();
    bool force = false, quiet = false;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("run", f->run, "run folder written by `siamese train` (report.html goes there)");
  cmd->add_option("--model", f->model, "a model file, for a model trained elsewhere (with --data, --out)");
  cmd->add_option("--data", f->data, "data set to show (default: the one the model was trained on)");
  cmd->add_option("--out", f->out, "the page to write (default RUN/report.html)");
  cmd->add_option("--samples", f->samples, "test items on the embedding map")->capture_default_str()
      ->check(in_range(2, 100000));
  cmd->add_option("--queries", f->queries, "rows of the nearest-neighbour grid")->capture_default_str()
      ->check(in_range(0, 200));
  cmd->add_flag("--force", f->force, "replace an existing --out file other than RUN/report.html");
  cmd->add_flag("--quiet", f->quiet, "no progress output");
  cmd->callback([f]() {
    if (f->run.empty() == f->model.empty()) {
      throw Error(ErrorCode::InvalidArgument, "report: give a run folder, or --model FILE (not both)");
    }
    Console console(f->quiet);
    RunRecord run;
    std::string model_path = f->model, out = f->out;
    int64_t subset = 0;
    if (!f->run.empty()) {
      run = read_run_record(f->run);
      model_path = (fs::path(f->run) / "model.pt").string();
      if (!fs::exists(model_path)) throw Error(ErrorCode::NotFound, model_path, "the run folder holds no model (did its training finish?)");
      if (out.empty()) out = (fs::path(f->run) / "report.html").string();
      const auto config = nlohmann::json::parse(run.config_json.empty() ? "{}" : run.config_json, nullptr, false);
      if (config.is_object()) subset = config.value("subset", int64_t{0});
    } else if (out.empty()) {
      throw Error(ErrorCode::InvalidArgument, "report: --model needs --out FILE.html");
    }
    const bool own = !f->run.empty() && fs::path(out) == fs::path(f->run) / "report.html";
    if (fs::exists(out) && !own && !f->force) {
      throw Error(ErrorCode::InvalidArgument, out, "exists; give --force to replace it");
    }
    auto model = load_model(model_path);
    console.info("report: opening the data");
    const auto data = open_data_as_trained(model, TrainedDataOptions().data(f->data).subset(subset), console);
    write_text_atomically(out, render_run_report(model, data, run, ReportOptions().samples(f->samples).queries(f->queries),
                                                 {}, console));
    std::printf("report: %s\n", out.c_str());
  });
}

}  // namespace siamese::cli
