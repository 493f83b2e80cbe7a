// siamese index build|add|remove and siamese search: a persistent similarity-search index.
#include "siamese/index/index.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "console.h"
#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"
#include "siamese/core/log.h"
#include "siamese/model/inputs.h"
#include "siamese/model/model_file.h"
#include "siamese/report/html.h"

namespace fs = std::filesystem;

namespace siamese::cli {

namespace {

/// Adds the embeddings `e` of the inputs, under their class names when they have them (a name the
/// index holds keeps its label), reporting on stderr. The index refuses embeddings of a model
/// other than the one whose fingerprint it holds.
void add_embedded(EmbeddingIndex& index, const Inputs& in, const torch::Tensor& e, const std::string& fingerprint) {
  if (in.class_names.empty()) {
    index.add(e, in.keys, in.labels, fingerprint);
  } else {
    index.add(e, in.keys, in.labels, in.class_names, fingerprint);
  }
  std::fprintf(stderr, "added %lld embeddings (index now %lld)\n", static_cast<long long>(e.size(0)),
               static_cast<long long>(index.size()));
}

/// " (NAME)" after a label, "" when its class has no name.
std::string class_suffix(const IndexItem& item) { return item.class_name.empty() ? "" : " (" + item.class_name + ")"; }

}  // namespace

void add_index(CLI::App& app) {
  auto* cmd = app.add_subcommand("index", "build and change a persistent similarity-search index");
  cmd->require_subcommand(1);
  struct Flags {
    std::string model, data, out, index, spec = "Flat", split = "train";
    int64_t nprobe = 16, ef_search = 64;
    std::vector<int64_t> ids;
    bool force = false;
    DeviceFlags device;
  };
  auto f = std::make_shared<Flags>();

  auto* build = cmd->add_subcommand("build", "embed images with a model and write a new index");
  build->add_option("--model", f->model, "model file or run folder")->required();
  build->add_option("--data", f->data, "image file, folder of images (sub-folders = labels), or data set spec; "
                                     "sequence models: a sequence spec, file or folder (see docs/cli.md)")->required();
  build->add_option("--split", f->split, "split of a data set spec: train | test")->capture_default_str();
  build->add_option("--out", f->out, "index file to write")->required();
  build->add_option("--index", f->spec, "FAISS factory string: Flat | IVF1024,Flat | HNSW32 | IVF1024,PQ16 ...")->capture_default_str();
  build->add_option("--nprobe", f->nprobe, "IVF: lists visited per query (stored; search may override)")->capture_default_str()->check(in_range(1, 1e6));
  build->add_option("--ef-search", f->ef_search, "HNSW: search beam (stored; search may override)")->capture_default_str()->check(in_range(1, 1e6));
  build->add_flag("--force", f->force, "replace an existing index file");
  add_device_flags(build, f->device);
  build->callback([f]() {
    if (fs::exists(f->out) && !f->force) {
      throw Error(ErrorCode::InvalidArgument, f->out, "exists; pass --force to replace it");
    }
    auto model = load_model(f->model);
    Console logger(false);
    auto in = read_inputs(f->data, model, f->split, logger);
    place_model(model, f->device);  // first: the fingerprint says whether it embeds in int8
    EmbeddingIndex index(IndexOptions(model.network->encoder->embedding_dim())
                             .spec(f->spec)
                             .distance(model.network->options.distance())
                             .fingerprint(model_fingerprint(model.network))
                             .nprobe(f->nprobe)
                             .ef_search(f->ef_search));
    add_embedded(index, in, embed_inputs(model, in, logger), model_fingerprint(model.network));
    index.save(f->out);
    std::fprintf(stderr, "wrote %s (%s, %lld items)\n", f->out.c_str(), f->spec.c_str(), static_cast<long long>(index.size()));
  });

  auto* add = cmd->add_subcommand("add", "embed more images into an existing index");
  add->add_option("--index", f->index, "index file")->required();
  add->add_option("--model", f->model, "the model the index was built with")->required();
  add->add_option("--data", f->data, "image file, folder of images, or data set spec (sequence models: as build)")->required();
  add->add_option("--split", f->split, "split of a data set spec: train | test")->capture_default_str();
  add_device_flags(add, f->device);
  add->callback([f]() {
    const auto before = EmbeddingIndex::load(f->index);
    auto model = load_model(f->model);
    place_model(model, f->device);  // first: the fingerprint says whether it embeds in int8
    const auto fingerprint = model_fingerprint(model.network);
    before.check_fingerprint(fingerprint);  // before embedding anything
    Console logger(false);
    const auto in = read_inputs(f->data, model, f->split, logger);
    const auto e = embed_inputs(model, in, logger);
    // Under the index's writer lock, on the index as the last writer left it: concurrent adds
    // (and removes) of one index are applied one after another, none lost.
    EmbeddingIndex::update(f->index, [&](EmbeddingIndex& index) { add_embedded(index, in, e, fingerprint); });
  });

  auto* remove = cmd->add_subcommand("remove", "remove items by id");
  remove->add_option("--index", f->index, "index file")->required();
  remove->add_option("--ids", f->ids, "ids to remove (comma-separated)")->delimiter(',')->required()->check(in_range(0, 9.2e18));
  remove->callback([f]() {
    EmbeddingIndex::update(f->index, [&](EmbeddingIndex& index) {
      const auto removed = index.remove(f->ids);
      std::fprintf(stderr, "removed %lld of %zu ids (index now %lld)\n", static_cast<long long>(removed),
                   f->ids.size(), static_cast<long long>(index.size()));
    });
  });
}

void add_search(CLI::App& app) {
  auto* cmd = app.add_subcommand("search", "the k most similar indexed items of each query image");
  struct Flags {
    std::string index, model, query, html, split = "train";
    int64_t k = 10, nprobe = -1, ef_search = -1;
    bool json = false, force = false;
    DeviceFlags device;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("--index", f->index, "index file")->required();
  cmd->add_option("--model", f->model, "the model the index was built with")->required();
  cmd->add_option("--query", f->query, "image file or folder of images; sequence models: a sequence file, folder or "
                                       "spec (--split), or a text for a text model")->required();
  cmd->add_option("--split", f->split, "split of a data set spec: train | test")->capture_default_str();
  cmd->add_option("-k", f->k, "neighbours per query")->capture_default_str()->check(in_range(1, 1e5));
  cmd->add_option("--nprobe", f->nprobe, "IVF: lists visited per query (default: the index's)")->check(in_range(1, 1e6));
  cmd->add_option("--ef-search", f->ef_search, "HNSW: search beam (default: the index's)")->check(in_range(1, 1e6));
  cmd->add_flag("--json", f->json, "print one JSON object per query");
  cmd->add_option("--html", f->html, "also write a page showing each query and its neighbours");
  cmd->add_flag("--force", f->force, "replace an existing --html file");
  add_device_flags(cmd, f->device);
  cmd->callback([f]() {
    if (!f->html.empty()) check_output(f->html, f->force, {f->index, f->model, f->query});
    auto index = EmbeddingIndex::load(f->index);
    auto model = load_model(f->model);
    place_model(model, f->device);  // first: the fingerprint says whether it embeds in int8
    const auto fingerprint = model_fingerprint(model.network);
    index.check_fingerprint(fingerprint);  // before embedding anything
    index.set_search_parameters(f->nprobe > 0 ? f->nprobe : index.options().nprobe(),
                                f->ef_search > 0 ? f->ef_search : index.options().ef_search());
    Console logger(false);
    auto queries = read_inputs(f->query, model, f->split, logger);
    auto hits = index.search(embed_inputs(model, queries, logger), f->k, fingerprint);
    for (size_t i = 0; i < hits.size(); ++i) {
      if (f->json) {
        nlohmann::ordered_json j;
        j["query"] = queries.keys[i];
        j["hits"] = nlohmann::json::array();
        for (const auto& h : hits[i]) {
          j["hits"].push_back({{"id", h.item.id},
                               {"key", h.item.key},
                               {"label", h.item.label},
                               {"class", h.item.class_name},
                               {"distance", h.distance}});
        }
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%s\n", queries.keys[i].c_str());
        for (const auto& h : hits[i]) {
          std::printf("  %.6f  id %lld  label %lld%s  %s\n", h.distance, static_cast<long long>(h.item.id),
                      static_cast<long long>(h.item.label), class_suffix(h.item).c_str(), h.item.key.c_str());
        }
      }
    }
    if (!f->html.empty()) {
      KeyImages images;
      write_text_atomically(f->html, search_page(queries.keys, hits, f->index, model.network->takes_sequences(), images));
      std::fprintf(stderr, "wrote %s\n", f->html.c_str());
    }
  });
}

}  // namespace siamese::cli
