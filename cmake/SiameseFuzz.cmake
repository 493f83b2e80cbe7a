# The fuzz targets of tests/fuzz/ (docs/reliability.md): one program per parser of outside bytes,
# tests/fuzz/<target>_fuzz.cpp defining LLVMFuzzerTestOneInput, each with its corpus in
# tests/fuzz/corpus/<target>/.
# - Normal build: each links tests/fuzz/replay_main.cpp, a main() that runs the target once on
#   every corpus file; the CTest test fuzz/<target> (label fuzz) replays the corpus.
# - SIAMESE_SANITIZE=ON (clang): each links libFuzzer (-fsanitize=fuzzer) instead, and is what
#   scripts/fuzz runs; fuzz/<target> then replays the corpus through libFuzzer (-runs=0).
# Programs are named fuzz_<target>; fuzz_make_seeds writes the seeds only our writers can make.
set(SIAMESE_FUZZ_TARGETS idx image pairs tsv fasta csv jhf augment config model_file checkpoint index_file index_spec serve_request)
set(fuzz_dir ${CMAKE_CURRENT_SOURCE_DIR}/tests/fuzz)

if(NOT SIAMESE_SANITIZE)
  add_library(siamese_fuzz_replay STATIC ${fuzz_dir}/replay_main.cpp)
endif()

foreach(target ${SIAMESE_FUZZ_TARGETS})
  add_executable(fuzz_${target} ${fuzz_dir}/${target}_fuzz.cpp)
  target_link_libraries(fuzz_${target} PRIVATE siamese CLI11::CLI11)
  target_precompile_headers(fuzz_${target} REUSE_FROM siamese_core)
  target_compile_options(fuzz_${target} PRIVATE -O1)   # glue around the libraries, as the tests
  set(corpus ${fuzz_dir}/corpus/${target})
  if(SIAMESE_SANITIZE)
    target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer)
    add_test(NAME fuzz/${target} COMMAND fuzz_${target} -runs=0 -rss_limit_mb=4096 ${corpus})
    # Full unwinding, so that tests/fuzz/lsan.supp can name LibTorch's leak (see there).
    set_tests_properties(fuzz/${target} PROPERTIES ENVIRONMENT
      "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0;LSAN_OPTIONS=suppressions=${fuzz_dir}/lsan.supp;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=${fuzz_dir}/ubsan.supp")
  else()
    target_link_libraries(fuzz_${target} PRIVATE siamese_fuzz_replay)
    add_test(NAME fuzz/${target} COMMAND fuzz_${target} ${corpus})
  endif()
  set_tests_properties(fuzz/${target} PROPERTIES LABELS fuzz TIMEOUT 300)
endforeach()

add_executable(fuzz_make_seeds ${fuzz_dir}/make_seeds.cpp)
target_link_libraries(fuzz_make_seeds PRIVATE siamese)
target_precompile_headers(fuzz_make_seeds REUSE_FROM siamese_core)
