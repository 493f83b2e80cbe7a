// Fuzz target: the checkpoint reader of run_training_loop (train/loop.h, what `train --resume`
// reads): epoch, step, history JSON, network weights and optimiser state from checkpoint.pt.
// Input: the checkpoint file, resumed by a TinyTask (tiny_task.h) with as many epochs as the
// checkpoint claims done, so the loop reads it and trains no further epoch.
#include "fuzz_util.h"
#include "tiny_task.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  siamese::fuzz::write_input("run/checkpoint.pt", data, size);
  siamese::LoopOptions options;
  options.out = (siamese::fuzz::work_dir() / "run").string();
  options.optim.epochs = 0;  // nothing to train after the checkpoint: the resume is what runs
  return siamese::fuzz::refuse_quietly([&] {
    siamese::fuzz::TinyTask task;
    siamese::run_training_loop(task, options, /*resume=*/true);
  });
}
