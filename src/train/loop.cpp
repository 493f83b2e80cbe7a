#include "siamese/train/loop.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "siamese/core/archive_file.h"
#include "siamese/core/atomic_file.h"
#include "siamese/core/enum_table.h"
#include "siamese/core/error.h"
#include "siamese/train/distributed.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace siamese {

constexpr EnumNames<Schedule, 4> kScheduleNames{{{Schedule::None, "none"}, {Schedule::Step, "step"}, {Schedule::Cosine, "cosine"}, {Schedule::Plateau, "plateau"}}};

Schedule parse_schedule(const std::string& name) { return parse_enum(kScheduleNames, name, "schedule"); }

std::string to_string(Schedule schedule) { return enum_name(kScheduleNames, schedule); }

constexpr EnumNames<SelectBy, 3> kSelectByNames{
    {{SelectBy::MapAtR, "map_at_r"}, {SelectBy::RecallAt1, "recall_at_1"}, {SelectBy::RocAuc, "roc_auc"}}};
constexpr EnumNames<OptimizerKind, 2> kOptimizerNames{{{OptimizerKind::Adam, "adam"}, {OptimizerKind::Sgd, "sgd"}}};

SelectBy parse_select_by(const std::string& name) { return parse_enum(kSelectByNames, name, "select-by"); }
std::string to_string(SelectBy select_by) { return enum_name(kSelectByNames, select_by); }
OptimizerKind parse_optimizer(const std::string& name) { return parse_enum(kOptimizerNames, name, "optimizer"); }
std::string to_string(OptimizerKind optimizer) { return enum_name(kOptimizerNames, optimizer); }

double select_metric(const EpochRecord& r, SelectBy select_by) {
  switch (select_by) {
    case SelectBy::MapAtR: return r.val_map_at_r;
    case SelectBy::RecallAt1: return r.val_recall_at_1;
    case SelectBy::RocAuc: return r.val_roc_auc;
  }
  throw Error(ErrorCode::Internal, "select_metric: unhandled SelectBy");
}

double learning_rate(const OptimOptions& o, int64_t step, int64_t steps_per_epoch) {
  double lr = o.lr;
  if (o.warmup_steps > 0 && step < o.warmup_steps) lr *= static_cast<double>(step + 1) / o.warmup_steps;
  const int64_t total = std::max<int64_t>(1, o.epochs * steps_per_epoch);
  if (o.schedule == Schedule::Step) {
    lr *= std::pow(o.gamma, static_cast<double>(step / steps_per_epoch / std::max<int64_t>(1, o.step_size)));
  } else if (o.schedule == Schedule::Cosine) {
    lr *= 0.5 * (1 + std::cos(M_PI * static_cast<double>(std::min(step, total)) / total));
  }
  return lr;
}

Standing standing(const std::vector<EpochRecord>& history, const OptimOptions& o) {
  Standing s;
  int64_t flat = 0;
  for (const auto& r : history) {
    const double m = select_metric(r, o.select_by);
    if (m > s.best) {
      s.best = m;
      s.since_best = flat = 0;
    } else {
      ++s.since_best;
      if (o.schedule == Schedule::Plateau && ++flat >= o.patience) {
        s.lr_scale *= o.gamma;
        flat = 0;
      }
    }
  }
  return s;
}

namespace {

std::string history_csv(const std::vector<EpochRecord>& history) {
  std::ostringstream s;
  s << "epoch,loss,lr,val_recall_at_1,val_map_at_r,val_roc_auc,images_per_second,seconds,data_wait_seconds,"
       "active_fraction,min_class_share,max_class_share,positive_share\n";
  for (const auto& r : history) {
    s << r.epoch << ',' << r.loss << ',' << r.lr << ',' << r.val_recall_at_1 << ',' << r.val_map_at_r << ','
      << r.val_roc_auc << ',' << r.images_per_second << ',' << r.seconds << ',' << r.data_wait_seconds << ','
      << r.active_fraction << ',' << r.min_class_share << ',' << r.max_class_share << ',' << r.positive_share << '\n';
  }
  return s.str();
}

nlohmann::json history_json(const std::vector<EpochRecord>& history) {
  auto j = nlohmann::json::array();
  for (const auto& r : history) {
    j.push_back({r.epoch, r.loss, r.lr, r.val_recall_at_1, r.val_map_at_r, r.val_roc_auc, r.images_per_second,
                 r.seconds, r.data_wait_seconds, r.active_fraction, r.min_class_share, r.max_class_share,
                 r.positive_share});
  }
  return j;
}

std::vector<EpochRecord> history_from_json(const nlohmann::json& j) {
  std::vector<EpochRecord> h;
  for (const auto& r : j) {
    EpochRecord e{r[0].get<int64_t>(), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9]};
    if (r.size() >= 13) e.min_class_share = r[10], e.max_class_share = r[11], e.positive_share = r[12];
    h.push_back(e);
  }
  return h;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimOptions& o, torch::nn::Module& module) {
  if (o.optimizer == OptimizerKind::Sgd) {
    return std::make_unique<torch::optim::SGD>(
        module.parameters(), torch::optim::SGDOptions(o.lr).momentum(0.9).weight_decay(o.weight_decay));
  }
  return std::make_unique<torch::optim::Adam>(module.parameters(),
                                              torch::optim::AdamOptions(o.lr).weight_decay(o.weight_decay));
}

std::string summary(const EpochRecord& r, int64_t epochs, const std::array<std::string, 3>& names) {
  char line[320];
  std::snprintf(line, sizeof line,
                "epoch %lld/%lld loss %.4f lr %.2e val %s %.4f %s %.4f %s %.4f %.0f img/s %.1fs (data wait %.2fs, "
                "active %.3f)",
                static_cast<long long>(r.epoch), static_cast<long long>(epochs), r.loss, r.lr, names[0].c_str(),
                r.val_recall_at_1, names[1].c_str(), r.val_map_at_r, names[2].c_str(), r.val_roc_auc, r.images_per_second,
                r.seconds, r.data_wait_seconds, r.active_fraction);
  return line;
}

/// One run of the loop: its state between stages.
class Loop {
 public:
  Loop(TrainingTask& task, const LoopOptions& o, Logger& logger, TrainObserver* observer)
      : task_(task), o_(o), logger_(logger), observer_(observer), optimizer_(make_optimizer(o.optim, task.module())),
        checkpoint_((fs::path(o.out) / "checkpoint.pt").string()) {}

  LoopResult run(bool resume);

 private:
  void load_checkpoint();
  void save_checkpoint(int64_t epochs_done);
  void join_group();
  /// Rank 0 after an epoch: logs it, keeps the model if best, checkpoints; false: the observer stops.
  bool epoch_end(const EpochRecord& record, double best, int64_t epoch);
  bool lead() const { return !o_.group || o_.group->rank() == 0; }
  /// Rank 0's loss and validation metrics in `record`: early stopping and the plateau schedule
  /// then decide alike on every rank, whatever their float rounding.
  void share_record(EpochRecord& record);
  /// Rank 0's answer to whether to go on (always true without a group: `lead_says` decides).
  bool agree(bool lead_says);
  EpochRecord train_epoch(int64_t epoch, double lr_scale);

  TrainingTask& task_;
  const LoopOptions& o_;
  Logger& logger_;
  TrainObserver* observer_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::string checkpoint_;
  int64_t first_epoch_ = 0, step_ = 0;
  double epoch_communication_ = 0;  ///< seconds of the last epoch's steps in the group's collectives
  std::vector<EpochRecord> history_;
};

void Loop::load_checkpoint() {
  try {
    torch::serialize::InputArchive archive;
    load_archive(archive, checkpoint_, "checkpoint", o_.device);  // checks its checksum; none in older checkpoints
    c10::IValue v;
    archive.read("epoch", v);
    first_epoch_ = v.toInt();
    archive.read("step", v);
    step_ = v.toInt();
    archive.read("history", v);
    history_ = history_from_json(nlohmann::json::parse(v.toStringRef()));
    torch::serialize::InputArchive weights, state;
    archive.read("network", weights);
    task_.module().load(weights);
    archive.read("optimizer", state);
    optimizer_->load(state);
    task_.load_state(archive);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::Corruption, checkpoint_,
                std::string("corrupt or unreadable checkpoint (") + e.what_without_backtrace() + ")");
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::Corruption, checkpoint_, std::string("corrupt checkpoint history (") + e.what() + ")");
  }
  logger_.info("resuming " + o_.out + " after epoch " + std::to_string(first_epoch_));
}

void Loop::save_checkpoint(int64_t epochs_done) {
  torch::serialize::OutputArchive archive;
  archive.write("epoch", c10::IValue(epochs_done));
  archive.write("step", c10::IValue(step_));
  archive.write("history", c10::IValue(history_json(history_).dump()));
  torch::serialize::OutputArchive weights, state;
  task_.module().save(weights);
  archive.write("network", weights);
  optimizer_->save(state);
  archive.write("optimizer", state);
  task_.save_state(archive);
  save_archive(archive, checkpoint_);  // with its checksum, serialised in memory, written atomically
  write_text_atomically((fs::path(o_.out) / "history.csv").string(), history_csv(history_));
}

EpochRecord Loop::train_epoch(int64_t epoch, double lr_scale) {
  EpochRecord record;
  record.epoch = epoch + 1;
  // Each rank its own stream (dropout masks); one process keeps the seeds it always had.
  torch::manual_seed(o_.seed + 1000003 * (epoch + 1) + (o_.group ? 7919 * o_.group->rank() : 0));
  const int64_t steps = task_.begin_epoch(epoch, record);
  task_.module().train();
  const double communication = o_.group ? o_.group->communication_seconds() : 0;
  const auto start = Clock::now();
  double loss_sum = 0, wait = 0, lr = o_.optim.lr;
  int64_t images = 0, active = 0, selected = 0, done = 0;
  while (true) {
    const auto asked = Clock::now();
    auto batch = task_.next_batch();
    wait += std::chrono::duration<double>(Clock::now() - asked).count();
    if (!batch) break;
    lr = learning_rate(o_.optim, step_, steps) * lr_scale;
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
    auto step = task_.loss(*batch, step_);
    active += step.active;
    selected += step.selected;
    const double value = step.loss.item<double>();
    if (!std::isfinite(value)) {
      throw Error(ErrorCode::InvalidArgument,
                  "loss is " + std::to_string(value) + " at epoch " + std::to_string(epoch + 1) + " step " +
                      std::to_string(batch->number + 1) + " (lr " + std::to_string(lr) +
                      "): training diverged; lower --lr. The last checkpoint in " + o_.out + " is intact.");
    }
    optimizer_->zero_grad();
    step.loss.backward();
    if (o_.group) all_reduce_gradients(*o_.group, task_.module());
    optimizer_->step();
    ++step_;
    ++done;
    loss_sum += value;
    images += batch->inputs.size(0);
    if (observer_ && lead()) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      const double eta = (steps - done + (o_.optim.epochs - epoch - 1) * steps) * elapsed / static_cast<double>(done);
      observer_->on_step({epoch + 1, o_.optim.epochs, done, steps, loss_sum / done, images / std::max(1e-9, elapsed), eta});
    }
  }
  if (o_.group) {  // every rank's images; rank 0's batch-norm statistics, as validation and model.pt use
    std::vector<torch::Tensor> count{torch::tensor({static_cast<double>(images)}, torch::kFloat64)};
    o_.group->all_reduce_sum(count);
    images = static_cast<int64_t>(count[0].item<double>());
    broadcast_module(*o_.group, task_.module());
    epoch_communication_ = o_.group->communication_seconds() - communication;
  }
  record.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  record.loss = loss_sum / std::max<int64_t>(1, steps);
  record.lr = lr;
  record.images_per_second = images / record.seconds;
  record.data_wait_seconds = wait;
  record.active_fraction = selected > 0 ? static_cast<double>(active) / selected : 0.0;
  return record;
}

bool Loop::epoch_end(const EpochRecord& record, double best, int64_t epoch) {
  logger_.progress(summary(record, o_.optim.epochs, task_.metric_names()));
  if (auto note = task_.epoch_note(); !note.empty()) logger_.progress(note);
  if (o_.group) {
    int64_t values = 0;
    for (const auto& p : task_.module().parameters()) values += p.requires_grad() ? p.numel() : 0;
    char line[200];
    std::snprintf(line, sizeof line,
                  "  %d processes: %.2f s of the epoch's %.1f s in collectives (%.1f%%); %.2f MB of gradients a step",
                  o_.group->size(), epoch_communication_, record.seconds,
                  100 * epoch_communication_ / std::max(1e-9, record.seconds), 4e-6 * static_cast<double>(values));
    logger_.progress(line);
  }
  if (select_metric(record, o_.optim.select_by) > best) task_.keep_best(record);
  save_checkpoint(epoch + 1);
  return !observer_ || observer_->on_epoch_end(record);
}

void Loop::join_group() {
  std::vector<torch::Tensor> where{torch::tensor({first_epoch_, step_}, torch::kInt64)};
  o_.group->broadcast(where);
  if (where[0][0].item<int64_t>() != first_epoch_ || where[0][1].item<int64_t>() != step_) {
    throw Error(ErrorCode::InvalidArgument, checkpoint_,
                "rank " + std::to_string(o_.group->rank()) + " resumes after epoch " + std::to_string(first_epoch_) +
                    " but rank 0 after epoch " + std::to_string(where[0][0].item<int64_t>()) +
                    ": every rank needs the same run folder (a shared file system)");
  }
  broadcast_module(*o_.group, task_.module());
}

void Loop::share_record(EpochRecord& r) {
  std::vector<torch::Tensor> v{torch::tensor({r.loss, r.val_recall_at_1, r.val_map_at_r, r.val_roc_auc}, torch::kFloat64)};
  o_.group->broadcast(v);
  r.loss = v[0][0].item<double>(), r.val_recall_at_1 = v[0][1].item<double>();
  r.val_map_at_r = v[0][2].item<double>(), r.val_roc_auc = v[0][3].item<double>();
}

bool Loop::agree(bool lead_says) {
  if (!o_.group) return lead_says;
  std::vector<torch::Tensor> flag{torch::tensor({lead_says ? int64_t{1} : int64_t{0}}, torch::kInt64)};
  o_.group->broadcast(flag);
  return flag[0].item<int64_t>() != 0;
}

LoopResult Loop::run(bool resume) {
  if (resume && fs::exists(checkpoint_)) load_checkpoint();
  if (o_.group) join_group();
  LoopResult result;
  result.finished = true;
  double images = 0;
  for (const auto& r : history_) {
    result.train_seconds += r.seconds;
    images += r.images_per_second * r.seconds;
  }
  for (int64_t epoch = first_epoch_; epoch < o_.optim.epochs; ++epoch) {
    const auto stand = standing(history_, o_.optim);
    if (o_.optim.early_stop > 0 && stand.since_best >= o_.optim.early_stop) {
      std::ostringstream m;
      m << "early stop: no better validation " << to_string(o_.optim.select_by) << " for " << stand.since_best << " epochs; best "
        << stand.best;
      logger_.info(m.str());
      result.stopped_early = true;
      break;
    }
    auto record = train_epoch(epoch, stand.lr_scale);
    result.train_seconds += record.seconds;
    images += record.images_per_second * record.seconds;
    task_.validate(record);
    if (o_.group) share_record(record);
    history_.push_back(record);
    const bool goes_on = lead() ? epoch_end(record, stand.best, epoch) : true;
    if (!agree(goes_on)) {
      result.finished = false;
      break;
    }
  }
  result.history = history_;
  result.images_per_second = images / std::max(1e-9, result.train_seconds);
  return result;
}

}  // namespace

LoopResult run_training_loop(TrainingTask& task, const LoopOptions& options, bool resume, Logger& logger,
                             TrainObserver* observer) {
  Loop loop(task, options, logger, observer);
  return loop.run(resume);
}

}  // namespace siamese
