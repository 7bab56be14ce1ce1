// A minimal HTTP/1.0-style server for the health port: GET /health, GET /metrics (and whatever
// paths the handler knows). One request per connection, on its own thread and libuv loop, so that
// scrapes never run on a worker. Not a general web server: requests over 8 KiB are refused.
#ifndef NODEDNS_PROXY_HTTP_SERVER_H_
#define NODEDNS_PROXY_HTTP_SERVER_H_

#include <uv.h>

#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "proxy/config.h"

namespace nodedns::proxy {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// Start() and Stop() from the main thread; the handler runs on the server's own thread.
class HttpServer {
 public:
  using Handler = std::function<HttpResponse(std::string_view method, std::string_view path)>;
  // `flag`: what errors name (the flag or Corefile line that asked for this address).
  HttpServer(SocketAddress addr, Handler handler, std::string flag = "--health");
  ~HttpServer();
  // Binds and listens (errors name the flag), so that an unusable address is reported before the
  // server starts anything else; or listens on `inherited_fd`, a socket bound to the address by a
  // predecessor (handover.h), owned from now on. Start() calls it if it has not run.
  absl::Status Listen(int inherited_fd = -1);
  // The listening socket (for a handover), -1 before Listen.
  int fd() const;
  // Starts the server's thread.
  absl::Status Start();
  void Stop();

 private:
  struct Conn;
  static void OnConnection(uv_stream_t* server, int status);
  SocketAddress addr_;
  std::string flag_;
  Handler handler_;
  uv_loop_t loop_;
  uv_tcp_t listener_;
  uv_async_t stop_;
  std::thread thread_;
  bool listening_ = false;
  bool started_ = false;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_HTTP_SERVER_H_
