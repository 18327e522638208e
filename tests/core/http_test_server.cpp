// A minimal server process for tests that must signal a real process:
//   http_test_server PORT_FILE DELAY_MS
// Serves GET /slow (answers after DELAY_MS) on 127.0.0.1 at a free port, writes the port to
// PORT_FILE (atomically), shuts down gracefully on SIGTERM/SIGINT and exits 0.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "core/http_server.h"
#include "core/log.h"

int main(int argc, char** argv) {
  using namespace rudder::core;
  if (argc != 3) {
    std::fprintf(stderr, "usage: http_test_server PORT_FILE DELAY_MS\n");
    return 2;
  }
  const std::string port_file = argv[1];
  const int delay_ms = std::stoi(argv[2]);
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  HttpServer server(options);
  server.route("GET", "/slow", [delay_ms](const HttpRequest&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    HttpResponse r;
    r.body = R"({"done":true})";
    return r;
  });
  server.handle_signals();
  server.start();
  server.set_ready(true);
  {
    std::ofstream(port_file + ".tmp") << server.port() << "\n";
    std::rename((port_file + ".tmp").c_str(), port_file.c_str());
  }
  server.wait();
  RUDDER_LOG(kInfo) << "stopped";
  return 0;
}
