#pragma once
// The smallest TrainingTask (train/loop.h): a linear map 4 -> 2 trained on one fixed batch, so that
// run_training_loop writes and reads real checkpoints in milliseconds. Used by the checkpoint fuzz
// target (to resume from the fuzzed checkpoint) and by make_seeds (to write its seed checkpoints).

#include <optional>

#include "siamese/train/loop.h"

namespace siamese::fuzz {

class TinyTask : public TrainingTask {
 public:
  TinyTask() : linear_(4, 2) {}
  torch::nn::Module& module() override { return *linear_; }
  int64_t begin_epoch(int64_t epoch, EpochRecord& record) override {
    (void)epoch;
    (void)record;
    batches_left_ = 1;
    return 1;
  }
  std::optional<Batch> next_batch() override {
    if (batches_left_-- <= 0) return std::nullopt;
    Batch batch;
    batch.inputs = torch::ones({3, 4});
    batch.labels = torch::zeros({3}, torch::kInt64);
    return batch;
  }
  StepLoss loss(const Batch& batch, int64_t step) override {
    (void)step;
    return {linear_->forward(batch.inputs).pow(2).mean()};
  }
  void validate(EpochRecord& record) override { record.val_map_at_r = 0.5; }
  void keep_best(const EpochRecord& record) override { (void)record; }

 private:
  torch::nn::Linear linear_;
  int64_t batches_left_ = 0;
};

}  // namespace siamese::fuzz
