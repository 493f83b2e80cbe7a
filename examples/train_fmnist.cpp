// Train a Siamese CNN on Fashion-MNIST and evaluate it on the test images.
//   train_fmnist OUT_DIR [EPOCHS] [SUBSET]
// OUT_DIR receives model.pt, checkpoint.pt, history.csv and metrics.json (it must not hold a run).
// SUBSET > 0 keeps only the first SUBSET images of each split, for a quick run.
#include <cstdio>
#include <string>

#include "siamese/core/error.h"
#include "siamese/core/log.h"
#include "siamese/train/trainer.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR [EPOCHS] [SUBSET]\n", argv[0]);
    return 2;
  }
  siamese::TrainOptions options;  // defaults: the fmnist-seen protocol, triplet loss, P×K batches
  options.runtime.out = argv[1];
  options.data.spec = "fashion-mnist";  // the Debian package dataset-fashion-mnist
  if (argc > 2) options.optim.epochs = std::stoll(argv[2]);
  if (argc > 3) options.data.split.subset(std::stoll(argv[3])).validation_size(std::stoll(argv[3]) / 5);
  options.runtime.threads = 2;

  // The library prints nothing by itself: give it a logger to see what it does.
  siamese::StderrLogger logger;
  try {
    const siamese::TrainResult result = siamese::train(options, logger);
    const siamese::EvalReport& test = result.test;  // the protocol's metrics on the test split
    std::printf("trained %lld epochs in %.0f s at %.0f images/s\n",
                static_cast<long long>(result.history.size()), result.train_seconds, result.images_per_second);
    std::printf("Recall@1 %.4f  MAP@R %.4f  verification accuracy %.4f  ROC AUC %.4f\n", test.recall_at_1,
                test.map_at_r, test.verification_accuracy, test.roc_auc);
    std::printf("%s\n", siamese::to_json(test, false).c_str());
  } catch (const siamese::Error& e) {
    // Every failure the library reports is a siamese::Error with a category and a message.
    std::fprintf(stderr, "error (%s): %s\n", siamese::to_string(e.code()), e.what());
    return 1;
  }
  return 0;
}
