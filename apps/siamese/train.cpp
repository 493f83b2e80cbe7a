// siamese train: flags (or a config file) -> TrainOptions -> train() -> metrics on stdout.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <functional>

#include "commands.h"
#include "console.h"
#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"
#include "siamese/core/system.h"
#include "siamese/report/run_report.h"
#include "siamese/train/distributed.h"
#include "siamese/train/trainer.h"

namespace siamese::cli {

namespace {

/// After training: the raw-pixel reference beside the test metrics, OUT/report.html, the summary.
void finish_run(TrainResult& result, const std::string& out, bool no_report, bool json, Console& console) {
  const auto run = read_run_record(out);
  const auto options = train_options_from_json(run.config_json);
  const auto data = open_data_as_trained(result.model, TrainedDataOptions().subset(options.data.split.subset()), console);
  const auto eval = EvalOptions().few_shot(result.test.oneshot_5way_1shot >= 0);
  const auto reference = raw_pixel_reference(*data.test, *data.validation, eval);
  std::string report;
  if (!no_report) {
    report = (std::filesystem::path(out) / "report.html").string();
    write_text_atomically(report, render_run_report(result.model, data, run, ReportOptions(), {result.test, reference}, console));
  }
  if (json) {  // per-class Recall@1 of many classes stays in metrics.json, out of the console
    std::printf("%s\n", to_json(result.test, result.test.recall_at_1_by_class.size() <= 20).c_str());
  } else {
    print_summary(result.test, reference, data.spec, report);
  }
}

/// --resume continues a run with the flags it was started with: any other training flag given
/// with it would be silently ignored, so it is a usage error instead.
void check_resume_alone(const CLI::App& cmd) {
  std::string given;
  for (const auto* option : cmd.get_options()) {
    const auto name = option->get_name();
    if (option->count() == 0 || name == "--resume" || name == "--quiet" || name == "--json" || name == "--no-report" ||
        name == "--nproc" || name == "--dist-timeout" || name == "--device") {
      continue;
    }
    given += (given.empty() ? "" : ", ") + name;
  }
  if (!given.empty()) {
    throw CLI::ValidationError("--resume", "the run continues with the flags it was started with; " + given +
                                               " cannot be changed (start a new run with --out instead)");
  }
}

}  // namespace

void add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "train a Siamese network; writes model, history, metrics into --out");
  // Every default comes from TrainOptions; fmnist-unseen training of the cnn encoder then takes
  // image_recipe's values for the flags not given.
  struct Flags {
    TrainOptions o;
    std::string protocol = to_string(o.data.split.protocol()), sampler = to_string(o.sampler.kind),
                loss = to_string(o.loss.kind), miner = to_string(o.loss.miner), distance = to_string(o.network.distance()),
                schedule = to_string(o.optim.schedule), encoder = to_string(o.network.encoder()), augment = to_string(o.data.augment),
                optimizer = to_string(o.optim.optimizer), select_by = to_string(o.optim.select_by),
                pooling = to_string(o.network.rnn().pooling()),
                imbalance = to_string(o.data.split.imbalance()), on_bad_image = to_string(o.data.images.on_bad_image),
                crop_scale = "0.35,1", backbone, resume, task = "embedding";
    DeviceFlags device;
    size_t cache_mb = o.data.images.cache_bytes >> 20;
    std::vector<int64_t> conv = o.network.cnn().conv_channels(), unseen = o.data.split.unseen_classes();
    int64_t hidden = o.network.cnn().hidden(), dim = o.network.cnn().embedding_dim(),
            validation = o.data.split.validation_size(), subset = o.data.split.subset();
    bool normalize = o.network.cnn().normalize(), quiet = false, json = false, no_report = false;
    int nproc = 1, dist_timeout = 300;
    RnnEncoderOptions rnn = o.network.rnn();
  };
  auto f = std::make_shared<Flags>();
  auto& o = f->o;
  cmd->add_option("--task", f->task, "embedding | tracking (a SiamFC tracker on sequences:DIR; its flags: siamese train --task tracking --help)")
      ->capture_default_str()->check(CLI::IsMember({"embedding"}));
  cmd->add_option("--data", o.data.spec,
                  "fashion-mnist | idx:DIR | folder:DIR (DIR/train/<class>/, DIR/test/<class>/) | list:FILE (CSV path,label[,split]; "
                  "needs --image-size); sequences: "
                  "text:DIR (train.tsv, test.tsv) | fasta:DIR (train.fasta, test.fasta) | strokes:DIR (train/*.jhf, "
                  "test/*.jhf) | csv:DIR (train.csv, test.csv)")
      ->capture_default_str();
  cmd->add_option("--protocol", f->protocol, "fmnist-seen | fmnist-unseen: which images train, validate, test")
      ->capture_default_str();
  cmd->add_option("--unseen-classes", f->unseen, "classes held out of training under fmnist-unseen")
      ->delimiter(',')->capture_default_str()->check(in_range(0, 1e6));
  cmd->add_option("--validation-size", f->validation,
                  "the last N training images validate (default: a fifth of them, at most 5000)")->check(in_range(1, kMaxCount));
  cmd->add_option("--imbalance", f->imbalance,
                  "keep only a share of some classes' training images, CLASS:SHARE[,...] (e.g. 0:0.01)");
  cmd->add_option("--subset", f->subset, "keep only the first N images of each split (0 = all)")->capture_default_str()->check(in_range(0, kMaxCount));
  auto photo_flag = [&](const std::string& name, auto& value, const std::string& help) {
    return cmd->add_option(name, value, help)->capture_default_str()->group("Photographs of any size (folder:, list:)");
  };
  auto& view = o.data.images.view;
  photo_flag("--image-size", view.size,
             "model input S x S: images of any size are decoded in the loader threads, training takes random-resized "
             "crops, the rest the centre crop (0 = images as they are, all of one size)")->check(in_range(0, 4096));
  photo_flag("--channels", view.channels, "1 (grey) or 3 (RGB): every image is converted (alpha dropped)")->check(in_range(1, 3));
  photo_flag("--eval-resize", view.eval_resize, "evaluation: the shorter side is resized to S / this, then the centre S x S cropped")
      ->check(in_range(0, 1, true));
  photo_flag("--crop-scale", f->crop_scale, "training crops cover MIN,MAX of the image's area (aspect 3/4 to 4/3)");
  photo_flag("--mean", o.data.mean, "per-channel input mean, e.g. 0.485,0.456,0.406 (default: computed on the training images)")
      ->delimiter(',');
  photo_flag("--std", o.data.std, "per-channel input standard deviation, e.g. 0.229,0.224,0.225")->delimiter(',');
  photo_flag("--cache-mb", f->cache_mb, "megabytes of decoded images kept in memory")->check(in_range(0, 1 << 24));
  photo_flag("--on-bad-image", f->on_bad_image, "fail | skip: an unreadable, truncated, empty or oversized image file stops the run, or is left out and counted");
  photo_flag("--max-pixels", o.data.images.max_pixels, "image files declaring more pixels are refused before decoding")
      ->check(in_range(1, 1e12));
  cmd->add_option("--init-weights", o.init.weights,
                  "start the encoder's trunk from a state_dict saved by Python's torch.save (e.g. torchvision's resnet18 "
                  "weights; names and shapes are checked, fc.* is ignored)");
  cmd->add_option("--init-from", o.init.from,
                  "start from another siamese model's trunk (and its head when the embedding is the same size)");
  cmd->add_option("--backbone", f->backbone,
                  "a TorchScript module saved in Python (torch.jit.save(torch.jit.script(m))) as the trunk: its output "
                  "(vectors, or feature maps that are pooled) feeds the embedding head; kept in the model file");
  cmd->add_option("--freeze", o.init.freeze, "keep the first N trunk parameters as they start (fine-tune the rest)")
      ->check(in_range(0, 1e6));
  cmd->add_option("--freeze-until", o.init.freeze_until, "keep every trunk parameter before the first named NAME... as it starts");
  cmd->add_option("--encoder", f->encoder, "cnn | hybrid (images of one size); resnet18 | resnet34 | resnet50 | convnet (any size >= 32 px; with --image-size); lstm | gru (sequences)")->capture_default_str();
  auto& r = f->rnn;
  auto rnn_flag = [&](const std::string& name, auto& value, const std::string& help) {
    return cmd->add_option(name, value, help)->capture_default_str()->group("Sequence encoders (lstm, gru, hybrid)");
  };
  rnn_flag("--tokens", o.network.tokens(), "text and fasta: char | word | kmerK (default char)");
  rnn_flag("--max-length", o.data.max_length, "cut longer sequences to N steps (0 = no limit); counted in the load summary")->check(in_range(0, kMaxCount));
  rnn_flag("--token-dim", r.token_dim(), "width of the learned token embedding")->check(in_range(1, 65536));
  rnn_flag("--conv1d", r.conv_channels(), "channels of a 1-D convolution over time before the RNN (0 = none)")->check(in_range(0, 65536));
  rnn_flag("--conv1d-kernel", r.conv_kernel(), "its kernel size (odd)")->check(in_range(1, 1025));
  rnn_flag("--conv1d-stride", r.conv_stride(), "its stride (shortens the sequence)")->check(in_range(1, 1024));
  rnn_flag("--conv1d-pool", r.conv_pool(), "max-pool its output over windows of this many steps (1 = none)")->check(in_range(1, 1024));
  rnn_flag("--rnn-hidden", r.hidden(), "hidden units per direction")->check(in_range(1, 65536));
  rnn_flag("--layers", r.layers(), "stacked recurrent layers (0: none, the token vectors are pooled directly)")->check(in_range(0, 64));
  rnn_flag("--bidirectional", r.bidirectional(), "run both directions (true/false)");
  rnn_flag("--dropout", r.dropout(), "dropout between stacked layers")->check(in_range(0, 1));
  rnn_flag("--pooling", f->pooling, "last | mean | max over the steps");
  rnn_flag("--frames", o.network.frames(), "hybrid: columns each image is cut into")->check(in_range(1, 4096));
  cmd->add_option("--conv-channels", f->conv, "one conv-BN-ReLU-pool block per entry")->delimiter(',')
      ->capture_default_str()->check(in_range(1, 65536));
  cmd->add_option("--hidden", f->hidden, "dense hidden layer width (0 = none)")->capture_default_str()->check(in_range(0, 65536));
  cmd->add_option("--embedding-dim", f->dim, "embedding size")->capture_default_str()->check(in_range(1, 65536));
  cmd->add_option("--normalize", f->normalize, "L2-normalise embeddings (true/false)")->capture_default_str();
  cmd->add_option("--loss", f->loss, "contrastive | triplet | ntxent (pk sampler)")->capture_default_str();
  cmd->add_option("--temperature", o.loss.temperature, "ntxent loss: temperature of the cosine similarities")
      ->capture_default_str()->check(in_range(0, 1000, true));
  cmd->add_option("--margin", o.loss.margin, "loss margin")->capture_default_str()->check(in_range(0, 1000));
  cmd->add_option("--miner", f->miner,
                  "all | batch-hard | semi-hard | hard-pairs | distance-weighted (pk sampler; fmnist-unseen: batch-hard)")
      ->capture_default_str();
  cmd->add_option("--distance", f->distance, "euclidean | sqeuclidean | cosine | manhattan | malstm (1 - exp(-L1))")->capture_default_str();
  cmd->add_option("--augment", f->augment,
                  "image transforms, e.g. rotate=15,flip=0.5,scale=0.1,translate=0.1,crop=0.2,noise=0.05@0.5,"
                  "brightness=0.2,contrast=0.2,blur=1 (name=range[@probability]; see docs/augmentation.md; fmnist-unseen: "
                  "rotate=15,scale=0.15,translate=0.1,crop=0.3,flip=0.5,noise=0.05@0.5,contrast=0.3)")
      ->capture_default_str();
  cmd->add_option("--sampler", f->sampler, "pairs | triplets | pk")->capture_default_str();
  cmd->add_option("--pos-fraction", o.sampler.pos_fraction, "positive pairs per batch (pairs sampler)")
      ->capture_default_str()->check(in_range(0, 1));
  cmd->add_option("--balance", o.sampler.balance,
                  "class-balanced sampling (true) or items drawn uniformly, classes by their size (false)")
      ->capture_default_str();
  cmd->add_option("--p", o.sampler.p, "classes per batch (pk sampler)")->capture_default_str()->check(in_range(1, 1e6));
  cmd->add_option("--k", o.sampler.k, "images per class (pk sampler; fmnist-unseen with augmentation: 8)")
      ->capture_default_str()->check(in_range(1, 1e6));
  cmd->add_option("--class-rotations", o.data.class_rotations,
                  "1 | 2 | 4: add the training images turned by 180° (2) or 90°, 180°, 270° (4) as new classes")
      ->capture_default_str()->check(in_range(1, 4));
  cmd->add_option("--views", o.sampler.views,
                  "copies of each image per pk batch, each augmented apart (fmnist-unseen with augmentation: 2)")
      ->capture_default_str()->check(in_range(1, 64));
  cmd->add_option("--instance-weight", o.loss.instance_weight,
                  "weight of the loss term whose positives are views of one image (needs --views 2+, --augment; "
                  "fmnist-unseen with augmentation and 2+ views: 10)")
      ->capture_default_str()->check(in_range(0, 1e6));
  cmd->add_option("--label-weight", o.loss.label_weight,
                  "weight of the loss whose positives share a class; 0 with --instance-weight: instance "
                  "discrimination, no label in the loss")
      ->capture_default_str()->check(in_range(0, 1e6));
  cmd->add_option("--batch-size", o.sampler.batch_size, "pairs or triplets per batch (pairs/triplets samplers)")
      ->capture_default_str()->check(in_range(1, 1e7));
  cmd->add_option("--epochs", o.optim.epochs, "passes over the training images")->capture_default_str()->check(in_range(1, 1e6));
  cmd->add_option("--optimizer", f->optimizer, "adam | sgd")->capture_default_str();
  cmd->add_option("--lr", o.optim.lr, "peak learning rate")->capture_default_str()->check(in_range(0, 100, true));
  cmd->add_option("--weight-decay", o.optim.weight_decay, "L2 weight decay")->capture_default_str()->check(in_range(0, 100));
  cmd->add_option("--schedule", f->schedule,
                  "none | step | cosine | plateau (LR x gamma after --patience flat epochs; fmnist-unseen: plateau)")
      ->capture_default_str();
  cmd->add_option("--patience", o.optim.patience, "plateau schedule: epochs without a better --select-by metric")
      ->capture_default_str()->check(in_range(1, 1e6));
  cmd->add_option("--early-stop", o.optim.early_stop, "stop after N epochs without a better --select-by metric (0 = never)")
      ->capture_default_str()->check(in_range(0, 1e6));
  cmd->add_option("--select-by", f->select_by, "validation metric that picks the best model: map_at_r | recall_at_1 | roc_auc")
      ->capture_default_str();
  cmd->add_option("--offline-mining-every", o.loss.offline_mining_every,
                  "every N epochs, mine each image's nearest other-class images as its negatives (0 = never)")
      ->capture_default_str()->check(in_range(0, 1e6));
  cmd->add_option("--offline-negatives", o.loss.offline_negatives, "mined negatives kept per image")->capture_default_str()->check(in_range(1, 1e6));
  cmd->add_option("--warmup-steps", o.optim.warmup_steps, "linear LR warm-up steps")->capture_default_str()->check(in_range(0, kMaxCount));
  cmd->add_option("--step-size", o.optim.step_size, "step schedule: epochs between LR drops")->capture_default_str()->check(in_range(1, 1e6));
  cmd->add_option("--gamma", o.optim.gamma, "step and plateau schedules: LR factor at each drop")->capture_default_str()->check(in_range(0, 100, true));
  cmd->add_option("--seed", o.runtime.seed, "seed of weights, sampling and pairs")->capture_default_str()->check(in_range(0, kMaxSeed));
  cmd->add_option("--threads", o.runtime.threads, "compute threads (0 = all cores)")->capture_default_str()->check(in_range(0, 4096));
  cmd->add_option("--workers", o.runtime.workers, "data loader threads")->capture_default_str()->check(in_range(1, 1024));
  cmd->add_option("--out", o.runtime.out, "run folder (must not hold a run already)")->capture_default_str();
  cmd->add_option("--resume", f->resume, "continue the interrupted run in DIR (its own flags are used)");
  cmd->add_option("--nproc", f->nproc,
                  "train in N local processes that share each batch (torch.distributed, Gloo); without it, a process "
                  "started by torchrun (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) joins its group")
      ->capture_default_str()->check(in_range(1, 1024))->group("Processes");
  cmd->add_option("--dist-timeout", f->dist_timeout,
                  "seconds a process waits for the others (joining, each exchange) before it stops with an error")
      ->capture_default_str()->check(in_range(1, 86400))->group("Processes");
  add_device_flags(cmd, f->device, /*int8=*/false);
  cmd->add_flag("--quiet", f->quiet, "no progress output");
  cmd->add_flag("--json", f->json, "print the test metrics as one JSON object instead of the summary table");
  cmd->add_flag("--no-report", f->no_report, "do not write OUT/report.html");

  cmd->callback([f, cmd]() {
    auto& o = f->o;
    if (!f->resume.empty()) check_resume_alone(*cmd);
    o.runtime.device = parse_device(f->device.device);  // a GPU this machine lacks: one error line, before anything
    o.runtime.amp = f->device.amp;
    auto group_options = group_options_from_environment();
    if (f->nproc > 1 || group_options.size > 1) {  // Gloo: before any rank starts, so the error is said once
      if (f->device.device == "auto") o.runtime.device = c10::kCPU;
      if (!o.runtime.device.is_cpu()) {
        throw CLI::ValidationError("--device", "training in several processes runs on the CPU only (Gloo, no NCCL in this "
                                               "build): use --device cpu, or one process on " + f->device.device);
      }
    }
    const bool launched = std::getenv("SIAMESE_LAUNCHER_PID") != nullptr;  // a rank launch_local started
    if (f->nproc > 1 && group_options.size > 1 && !launched) {
      throw CLI::ValidationError("--nproc", "this process is rank " + std::to_string(group_options.rank) + " of a group of " +
                                                std::to_string(group_options.size) + " already (WORLD_SIZE is set): leave out --nproc");
    }
    if (f->nproc > 1 && !launched) std::exit(launch_local(f->nproc));
    group_options.timeout = std::chrono::seconds(f->dist_timeout);
    if (group_options.size > 1) {
      stop_with_launcher();
      o.runtime.group = std::make_shared<ProcessGroup>(group_options);
    }
    // Ranks other than 0 print nothing but their own error (rank 0 says everything once).
    const bool lead = group_options.rank == 0;
    Console rank_console(f->quiet);
    Logger& console = lead ? static_cast<Logger&>(rank_console) : silent_logger();
    TrainObserver* observer = lead ? &rank_console : nullptr;
    TrainResult result;
    if (!f->resume.empty()) {
      result = resume(f->resume, console, observer, o.runtime.group, o.runtime.device);
    } else {
      o.data.split.protocol(parse_protocol(f->protocol)).unseen_classes(f->unseen).validation_size(cmd->count("--validation-size") > 0 ? f->validation : 0)
          .subset(f->subset).imbalance(parse_imbalance(f->imbalance));
      o.network.encoder(parse_encoder(f->encoder));
      if (!f->backbone.empty()) {
        if (cmd->count("--encoder") > 0 && o.network.encoder() != EncoderKind::TorchScript) {
          throw CLI::ValidationError("--backbone", "the TorchScript module is the encoder: leave out --encoder " + f->encoder);
        }
        if (!std::filesystem::is_regular_file(f->backbone)) throw Error(ErrorCode::NotFound, f->backbone, "no such TorchScript file");
        o.network.encoder(EncoderKind::TorchScript).backbone(std::make_shared<const std::string>(read_file(f->backbone))).backbone_source(f->backbone);
      }
      std::tie(o.data.images.view.crop_min, o.data.images.view.crop_max) = parse_crop_scale(f->crop_scale);
      o.data.images.cache_bytes = f->cache_mb << 20;
      o.data.images.on_bad_image = parse_bad_image_policy(f->on_bad_image);
      f->rnn.pooling(parse_pooling(f->pooling));
      o.optim.optimizer = parse_optimizer(f->optimizer);
      o.optim.select_by = parse_select_by(f->select_by);
      o.network.cnn(CnnEncoderOptions().conv_channels(f->conv).hidden(f->hidden).embedding_dim(f->dim)
                        .normalize(f->normalize));
      o.network.rnn(f->rnn.embedding_dim(f->dim).normalize(f->normalize));
      for (const char* flag : {"--rnn-hidden", "--bidirectional", "--dropout"}) {
        if (f->rnn.layers() == 0 && cmd->count(flag) > 0) {
          console.warning(std::string(flag) + " is ignored: --layers 0 has no recurrent layer");
        }
      }
      o.network.distance(parse_distance(f->distance));
      o.data.augment = parse_augment(f->augment);
      o.sampler.kind = parse_sampler(f->sampler);
      o.loss.kind = parse_loss(f->loss);
      o.loss.miner = parse_miner(f->miner);
      o.optim.schedule = parse_schedule(f->schedule);
      if (o.data.split.protocol() == Protocol::Unseen && o.network.encoder() == EncoderKind::Cnn && !is_sequence_spec(o.data.spec)) {
        // fmnist-unseen training starts from the ablation's best configuration where no flag says otherwise.
        o = image_recipe(o, [cmd](const std::string& key) {
          std::string flag = "--" + key;
          std::replace(flag.begin(), flag.end(), '_', '-');
          return cmd->count(flag) > 0;
        });
      }
      result = train(o, console, observer);
    }
    if (!lead) return;
    const std::string out = f->resume.empty() ? o.runtime.out : f->resume;
    std::fprintf(stderr, "trained %.0f s at %.0f images/s, peak memory %.0f MB; model, history.csv and metrics.json in %s\n",
                 result.train_seconds, result.images_per_second, peak_memory_mb(), out.c_str());
    finish_run(result, out, f->no_report, f->json, rank_console);
  });
}

}  // namespace siamese::cli
