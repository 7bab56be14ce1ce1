// The health port's tiny HTTP server; see http_server.h.
#include "proxy/http_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace nodedns::proxy {

namespace {

constexpr size_t kMaxRequest = 8192;

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

}  // namespace

struct HttpServer::Conn {
  uv_tcp_t handle;
  HttpServer* server;
  std::string request;
  std::string response;
  uv_write_t write;
  bool answered = false;
};

HttpServer::HttpServer(SocketAddress addr, Handler handler, std::string flag)
    : addr_(addr), flag_(std::move(flag)), handler_(std::move(handler)) {}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::Listen(int inherited_fd) {
  if (listening_) return absl::OkStatus();
  uv_loop_init(&loop_);
  uv_tcp_init(&loop_, &listener_);
  listener_.data = this;
  auto fail = [this](const std::string& why) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    return absl::UnavailableError(absl::StrCat(flag_, " ", addr_.ToString(), ": ", why));
  };
  int fd = inherited_fd;
  if (fd < 0) {
    fd = socket(addr_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(std::strerror(errno));
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // Next to a predecessor whose handover failed (handover.h), as the DNS sockets do.
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (addr_.family() == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, addr_.get(), addr_.length) != 0) {
      const int err = errno;
      close(fd);
      return fail(std::strerror(err));
    }
  }
  if (int rc = uv_tcp_open(&listener_, fd); rc != 0) {
    close(fd);
    return fail(uv_strerror(rc));
  }
  if (int rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 128, &OnConnection); rc != 0) {
    return fail(uv_strerror(rc));
  }
  uv_async_init(&loop_, &stop_, [](uv_async_t* h) {
    auto* s = static_cast<HttpServer*>(h->data);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->listener_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
    uv_walk(
        &s->loop_,
        [](uv_handle_t* handle, void*) {
          if (!uv_is_closing(handle)) {
            uv_close(handle, [](uv_handle_t* c) { delete static_cast<Conn*>(c->data); });
          }
        },
        nullptr);
  });
  stop_.data = this;
  listening_ = true;
  return absl::OkStatus();
}

int HttpServer::fd() const {
  uv_os_fd_t fd = -1;
  if (listening_) uv_fileno(reinterpret_cast<const uv_handle_t*>(&listener_), &fd);
  return fd;
}

absl::Status HttpServer::Start() {
  if (auto st = Listen(); !st.ok()) return st;
  started_ = true;
  thread_ = std::thread([this] {
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  });
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (!listening_) return;
  listening_ = false;
  uv_async_send(&stop_);
  if (started_) {
    started_ = false;
    thread_.join();
    return;
  }
  // Listening, never started: close the handles on this thread.
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

void HttpServer::OnConnection(uv_stream_t* listener, int status) {
  auto* s = static_cast<HttpServer*>(listener->data);
  if (status < 0) return;
  auto* c = new Conn;
  c->server = s;
  uv_tcp_init(&s->loop_, &c->handle);
  c->handle.data = c;
  auto close = [](Conn* conn) {
    uv_close(reinterpret_cast<uv_handle_t*>(&conn->handle),
             [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
  };
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&c->handle)) != 0) {
    close(c);
    return;
  }
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->handle),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        *buf = uv_buf_init(new char[suggested], static_cast<unsigned>(suggested));
      },
      [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
        auto* conn = static_cast<Conn*>(stream->data);
        if (nread > 0) conn->request.append(buf->base, static_cast<size_t>(nread));
        delete[] buf->base;
        if (conn->answered) return;
        const size_t end = conn->request.find("\r\n\r\n");
        if (nread < 0 && end == std::string::npos) {
          uv_close(reinterpret_cast<uv_handle_t*>(stream),
                   [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
          return;
        }
        HttpResponse resp;
        if (end == std::string::npos) {
          if (conn->request.size() <= kMaxRequest) return;  // wait for the rest
          resp = {400, "text/plain; charset=utf-8", "request too large\n"};
        } else {
          const std::string_view line =
              std::string_view(conn->request).substr(0, conn->request.find("\r\n"));
          const size_t sp1 = line.find(' ');
          const size_t sp2 = line.find(' ', sp1 + 1);
          if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) {
            resp = {400, "text/plain; charset=utf-8", "bad request line\n"};
          } else {
            std::string_view path = line.substr(sp1 + 1, sp2 - sp1 - 1);
            path = path.substr(0, path.find('?'));
            resp = conn->server->handler_(line.substr(0, sp1), path);
          }
        }
        conn->answered = true;
        uv_read_stop(stream);
        conn->response = absl::StrCat("HTTP/1.1 ", resp.status, " ", Reason(resp.status),
                                      "\r\nContent-Type: ", resp.content_type,
                                      "\r\nContent-Length: ", resp.body.size(),
                                      "\r\nConnection: close\r\n\r\n", resp.body);
        uv_buf_t out =
            uv_buf_init(conn->response.data(), static_cast<unsigned>(conn->response.size()));
        conn->write.data = conn;
        uv_write(&conn->write, stream, &out, 1, [](uv_write_t* w, int) {
          auto* cn = static_cast<Conn*>(w->data);
          if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&cn->handle))) return;  // stopping
          uv_close(reinterpret_cast<uv_handle_t*>(&cn->handle),
                   [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
        });
      });
}

}  // namespace nodedns::proxy
