// Fuzz target: read_series_csv (data/sequence.h), time series "label,v1,...,vT" one per row, and
// read_series_files, a folder of one-series-per-file CSVs "label,f1,...,fF" per time step. Input:
// the CSV file; the first byte's low bit picks the reader, bit 1 a max_length of 4 (cuts series).
#include "fuzz_util.h"
#include "siamese/data/sequence.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool one_per_file = data[0] & 1;
  const int64_t max_length = (data[0] & 2) ? 4 : 0;
  const auto path = siamese::fuzz::write_input("series/a.csv", data + 1, size - 1);
  return siamese::fuzz::refuse_quietly([&] {
    if (one_per_file) {
      siamese::read_series_files((siamese::fuzz::work_dir() / "series").string(), max_length);
    } else {
      siamese::read_series_csv(path, max_length);
    }
  });
}
