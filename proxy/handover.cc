// Socket handover; see handover.h.
#include "proxy/handover.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace nodedns::proxy {

namespace internal {

uint64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

namespace {

// Waits for `events` on `sock` until `deadline_ms`.
absl::Status Wait(int sock, short events, uint64_t deadline_ms, const char* what) {
  for (;;) {
    const uint64_t now = MonotonicMs();
    if (now >= deadline_ms) return absl::DeadlineExceededError(absl::StrCat("timed out ", what));
    pollfd p{sock, events, 0};
    const int rc = poll(&p, 1, static_cast<int>(std::min<uint64_t>(deadline_ms - now, 1000)));
    if (rc > 0) return absl::OkStatus();
    if (rc < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("poll: ", std::strerror(errno)));
    }
  }
}

const char* TypeName(HandoverMessage t) {
  switch (t) {
    case HandoverMessage::kHello:
      return "hello";
    case HandoverMessage::kSockets:
      return "sockets";
    case HandoverMessage::kCache:
      return "cache";
    case HandoverMessage::kEnd:
      return "end";
    case HandoverMessage::kServing:
      return "serving";
  }
  return "unknown";
}

}  // namespace

absl::Status SendMessage(int sock, HandoverMessage type, std::span<const uint8_t> payload,
                         std::span<const int> fds, uint64_t deadline_ms) {
  HandoverHeader h;
  h.type = type;
  iovec iov[2] = {{&h, sizeof h}, {const_cast<uint8_t*>(payload.data()), payload.size()}};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = payload.empty() ? 1 : 2;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    if (sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return absl::OkStatus();
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      return absl::UnavailableError(
          absl::StrCat("sending ", TypeName(type), ": ", std::strerror(errno)));
    }
    if (auto st = Wait(sock, POLLOUT, deadline_ms, "sending"); !st.ok()) return st;
  }
}

absl::StatusOr<ReceivedMessage> ReceiveMessage(int sock, uint64_t deadline_ms) {
  ReceivedMessage m;
  m.payload.resize(sizeof(HandoverHeader) + kMaxPayload);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  iovec iov{m.payload.data(), m.payload.size()};
  msghdr msg{};
  ssize_t n;
  for (;;) {
    msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      return absl::UnavailableError(absl::StrCat("receiving: ", std::strerror(errno)));
    }
    if (auto st = Wait(sock, POLLIN, deadline_ms, "waiting for the other process"); !st.ok()) {
      return st;
    }
  }
  // Descriptors first, so that they are closed by the caller whatever the message turns out to be.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      m.fds.push_back(fd);
    }
  }
  auto fail = [&m](absl::Status st) {
    for (int fd : m.fds) close(fd);
    return st;
  };
  if (n == 0) return fail(absl::UnavailableError("the other process closed the connection"));
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    return fail(absl::DataLossError("a message longer than the protocol allows"));
  }
  HandoverHeader h;
  if (static_cast<size_t>(n) < sizeof h) return fail(absl::DataLossError("a short message"));
  std::memcpy(&h, m.payload.data(), sizeof h);
  if (std::memcmp(h.magic, "NDHO", 4) != 0) {
    return fail(absl::FailedPreconditionError("not a nodedns handover socket"));
  }
  if (h.version != kHandoverVersion) {
    return fail(absl::FailedPreconditionError(absl::StrCat(
        "the other process speaks handover version ", h.version, ", this one ", kHandoverVersion)));
  }
  m.type = h.type;
  m.payload.erase(m.payload.begin(), m.payload.begin() + sizeof h);
  m.payload.resize(static_cast<size_t>(n) - sizeof h);
  return m;
}

}  // namespace internal

using internal::HandoverMessage;
using internal::MonotonicMs;

absl::StatusOr<ListeningSocket> DescribeSocket(int fd) {
  ListeningSocket s;
  s.fd = fd;
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("not a socket: ", std::strerror(errno)));
  }
  len = sizeof listening;
  getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
  s.addr.length = sizeof s.addr.storage;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&s.addr.storage), &s.addr.length) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("getsockname: ", std::strerror(errno)));
  }
  if (s.addr.family() != AF_INET && s.addr.family() != AF_INET6) {
    return absl::InvalidArgumentError("not an IP socket");
  }
  if (type == SOCK_STREAM && listening) {
    s.tcp = true;
  } else if (type != SOCK_DGRAM) {
    return absl::InvalidArgumentError("neither a UDP socket nor a listening TCP socket");
  }
  return s;
}

namespace {

sockaddr_un UnixAddress(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), std::min(path.size(), sizeof a.sun_path - 1));
  return a;
}

bool SameAddress(const dns::SocketAddress& a, const dns::SocketAddress& b) {
  return a.length == b.length && std::memcmp(&a.storage, &b.storage, a.length) == 0;
}

}  // namespace

std::unique_ptr<HandoverClient> HandoverClient::Request(const std::string& path,
                                                        uint32_t timeout_ms) {
  std::unique_ptr<HandoverClient> c(new HandoverClient);
  const uint64_t deadline = MonotonicMs() + timeout_ms;
  auto failed = [&c](std::string why) {
    c->outcome_ = Outcome::kFailed;
    c->error_ = std::move(why);
    for (const ListeningSocket& s : c->sockets_) close(s.fd);
    c->sockets_.clear();
    return std::move(c);
  };
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return failed(absl::StrCat(path, ": longer than a Unix socket path may be"));
  }
  c->conn_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (c->conn_ < 0) return failed(absl::StrCat("socket: ", std::strerror(errno)));
  const sockaddr_un addr = UnixAddress(path);
  if (connect(c->conn_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) return c;  // nobody there: bind as usual
    return failed(absl::StrCat("connect ", path, ": ", std::strerror(err)));
  }
  if (auto st = internal::SendMessage(c->conn_, HandoverMessage::kHello, {}, {}, deadline);
      !st.ok()) {
    return failed(std::string(st.message()));
  }
  c->deadline_ms_ = deadline;
  // Sockets until the first snapshot chunk or the end; the chunks are ReceiveSnapshot's.
  for (;;) {
    auto m = internal::ReceiveMessage(c->conn_, deadline);
    if (!m.ok()) return failed(std::string(m.status().message()));
    for (int fd : m->fds) {
      ++c->received_;
      auto s = DescribeSocket(fd);
      if (s.ok()) {
        c->sockets_.push_back(*s);
      } else {
        close(fd);
      }
    }
    if (m->type == HandoverMessage::kCache) {
      c->first_chunk_ = std::move(m->payload);
      break;
    }
    if (m->type == HandoverMessage::kEnd) {
      c->ended_ = true;
      break;
    }
    if (m->type != HandoverMessage::kSockets) return failed("the other process spoke out of turn");
  }
  if (c->sockets_.empty()) return failed("the other process passed no socket");
  c->outcome_ = Outcome::kReceived;
  return c;
}

absl::Status HandoverClient::ReceiveSnapshot(
    const std::function<void(std::span<const uint8_t>)>& consume) {
  if (outcome_ != Outcome::kReceived) return absl::FailedPreconditionError("nothing received");
  if (!first_chunk_.empty()) {
    consume(first_chunk_);
    std::vector<uint8_t>().swap(first_chunk_);
  }
  while (!ended_) {
    auto m = internal::ReceiveMessage(conn_, deadline_ms_);
    if (!m.ok()) return m.status();
    for (int fd : m->fds) close(fd);
    if (m->type == HandoverMessage::kEnd) {
      ended_ = true;
    } else if (m->type == HandoverMessage::kCache) {
      consume(m->payload);
    } else {
      return absl::DataLossError("the other process spoke out of turn");
    }
  }
  return absl::OkStatus();
}

HandoverClient::~HandoverClient() {
  for (const ListeningSocket& s : sockets_) close(s.fd);
  if (conn_ >= 0) close(conn_);
}

std::vector<int> HandoverClient::Take(const dns::SocketAddress& addr, bool tcp) {
  std::vector<int> out;
  auto taken = [&](const ListeningSocket& s) {
    if (s.tcp != tcp || !SameAddress(s.addr, addr)) return false;
    out.push_back(s.fd);
    return true;
  };
  sockets_.erase(std::remove_if(sockets_.begin(), sockets_.end(), taken), sockets_.end());
  return out;
}

absl::Status HandoverClient::Confirm() {
  if (outcome_ != Outcome::kReceived) return absl::FailedPreconditionError("nothing to confirm");
  absl::Status st =
      internal::SendMessage(conn_, HandoverMessage::kServing, {}, {}, MonotonicMs() + 1000);
  close(conn_);
  conn_ = -1;
  return st;
}

absl::StatusOr<std::unique_ptr<HandoverListener>> HandoverListener::Listen(
    const std::string& path) {
  // Bound at a temporary name and renamed over PATH: a predecessor keeps its (now nameless)
  // listener, and a client never finds PATH missing.
  const std::string tmp = absl::StrCat(path, ".", getpid());
  if (tmp.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": longer than a Unix socket path may be"));
  }
  std::unique_ptr<HandoverListener> l(new HandoverListener);
  l->path_ = path;
  l->fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (l->fd_ < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  unlink(tmp.c_str());
  const sockaddr_un addr = UnixAddress(tmp);
  if (bind(l->fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(l->fd_, 4) != 0) {
    const int err = errno;
    l->owns_path_ = false;
    return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(err)));
  }
  // Only root (the next nodedns) may connect.
  chmod(tmp.c_str(), 0600);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    l->owns_path_ = false;
    return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(err)));
  }
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    l->dev_ = st.st_dev;
    l->ino_ = st.st_ino;
  }
  return l;
}

HandoverListener::~HandoverListener() {
  if (fd_ >= 0) close(fd_);
  struct stat st;
  if (owns_path_ && stat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) {
    unlink(path_.c_str());
  }
}

absl::StatusOr<int> HandoverListener::Serve(
    std::span<const int> sockets, const std::function<void(const ChunkSink&)>& produce_snapshot,
    uint32_t timeout_ms) {
  const int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (conn < 0) return absl::UnavailableError(absl::StrCat("accept: ", std::strerror(errno)));
  const uint64_t deadline = MonotonicMs() + timeout_ms;
  auto fail = [conn](const absl::Status& st) {
    close(conn);
    return st;
  };
  auto hello = internal::ReceiveMessage(conn, deadline);
  if (!hello.ok()) return fail(hello.status());
  for (int fd : hello->fds) close(fd);
  if (hello->type != HandoverMessage::kHello) {
    return fail(absl::FailedPreconditionError("the successor did not say hello"));
  }
  for (size_t i = 0; i < sockets.size(); i += internal::kMaxFdsPerMessage) {
    const auto batch =
        sockets.subspan(i, std::min(internal::kMaxFdsPerMessage, sockets.size() - i));
    if (auto st = internal::SendMessage(conn, HandoverMessage::kSockets, {}, batch, deadline);
        !st.ok()) {
      return fail(st);
    }
  }
  absl::Status sent;
  if (produce_snapshot) {
    produce_snapshot([&](std::span<const uint8_t> chunk) {
      if (chunk.size() > kMaxSnapshotChunk) {
        sent = absl::InternalError("a snapshot chunk over the limit");
      } else {
        sent = internal::SendMessage(conn, HandoverMessage::kCache, chunk, {}, deadline);
      }
      return sent.ok();
    });
  }
  if (!sent.ok()) return fail(sent);
  if (auto st = internal::SendMessage(conn, HandoverMessage::kEnd, {}, {}, deadline); !st.ok()) {
    return fail(st);
  }
  return conn;
}

bool HandoverListener::ReadServing(int conn) {
  auto m = internal::ReceiveMessage(conn, MonotonicMs());
  close(conn);
  if (!m.ok()) return false;
  for (int fd : m->fds) close(fd);
  return m->type == HandoverMessage::kServing;
}

}  // namespace nodedns::proxy
