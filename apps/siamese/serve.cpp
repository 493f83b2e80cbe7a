// siamese serve: the model (and its index) behind the HTTP API of docs/service.md, until SIGINT
// or SIGTERM, which let the requests in flight finish.
#include <signal.h>

#include <cstdio>

#include "commands.h"
#include "console.h"
#include "siamese/model/model_file.h"
#include "siamese/serve/service.h"

namespace siamese::cli {

void add_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "serve embedding, verification and search over HTTP (docs/service.md)");
  struct Flags {
    std::string model, index, api_key_file;
    ServiceOptions options;
    DeviceFlags device;
  };
  auto f = std::make_shared<Flags>();
  auto& o = f->options;
  cmd->add_option("--model", f->model, "model file or run folder")->required();
  cmd->add_option("--index", f->index, "index file for /v1/search and /v1/items (created empty when missing)");
  cmd->add_option("--host", o.host(), "address to listen on (anything but loopback needs --api-key-file)")->capture_default_str();
  cmd->add_option("--port", o.port(), "TCP port; 0 = any free one")->capture_default_str()->check(in_range(0, 65535));
  cmd->add_option("--api-key-file", f->api_key_file, "API keys, one per line: KEY or 'ro KEY' (read-only), 'rw KEY' (may write)");
  cmd->add_option("--threads", o.threads(), "threads answering requests")->capture_default_str()->check(in_range(1, 1024));
  cmd->add_option("--max-batch", o.max_batch(), "most inputs per forward pass (1 = no batching)")->capture_default_str()->check(in_range(1, 4096));
  cmd->add_option("--max-delay-ms", o.max_delay_ms(), "how long a batch waits for more inputs")->capture_default_str()->check(in_range(0, 1000));
  cmd->add_option("--max-queue", o.max_queue(), "most inputs waiting; past it 429")->capture_default_str()->check(in_range(1, 1e7));
  cmd->add_option("--max-body-bytes", o.max_body_bytes(), "largest request body")->capture_default_str()->check(in_range(1024, 1e10));
  cmd->add_option("--max-inputs", o.max_inputs(), "most inputs per /v1/embed request")->capture_default_str()->check(in_range(1, 1e6));
  cmd->add_option("--max-pixels", o.max_pixels(), "most pixels an image may declare")->capture_default_str()->check(in_range(1, 1e10));
  cmd->add_option("--max-k", o.max_k(), "largest k of /v1/search")->capture_default_str()->check(in_range(1, 1e6));
  cmd->add_option("--snapshot-every", o.snapshot_every(), "index changes between two snapshots of the index file (each is in INDEX.wal first)")
      ->capture_default_str()->check(in_range(1, 1e9));
  cmd->add_option("--timeout", o.timeout_s(), "seconds a request may take")->capture_default_str()->check(in_range(0, 3600, true));
  add_device_flags(cmd, f->device);
  cmd->callback([f]() {
    if (!f->api_key_file.empty()) read_api_keys(f->api_key_file, f->options);
    Console logger(false);
    // SIGINT and SIGTERM are taken by sigwait below, in every thread the service starts.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    auto model = load_model(f->model);
    place_model(model, f->device);
    Service service(std::move(model), f->index, f->options, logger);
    const int port = service.start();
    std::fprintf(stderr, "serving %s on http://%s:%d (Ctrl-C to stop)\n", f->model.c_str(), f->options.host().c_str(), port);
    int signal = 0;
    sigwait(&signals, &signal);
    std::fprintf(stderr, "stopping (signal %d): finishing the requests in flight\n", signal);
    service.stop();
  });
}

}  // namespace siamese::cli
