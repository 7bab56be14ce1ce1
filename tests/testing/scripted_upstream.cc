// See scripted_upstream.h.
#include "tests/testing/scripted_upstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace nodedns::testing {

struct ScriptedUpstream::Conn {
  int fd;
  int number;
  std::vector<uint8_t> in;
};

struct ScriptedUpstream::Due {
  std::chrono::steady_clock::time_point at;
  int tcp_fd;  // -1: UDP, to `from`
  sockaddr_storage from;
  socklen_t from_len;
  std::vector<uint8_t> reply;
};

MessageSpec ReplySpecFor(const SeenQuery& query) {
  MessageSpec spec;
  spec.qname = query.name;
  spec.qtype = query.qtype;
  LdnsPkt q = Parse(query.wire);
  if (q) {
    spec.id = ldns_pkt_id(q.get());
    spec.rd = ldns_pkt_rd(q.get());
    spec.cd = ldns_pkt_cd(q.get());
    spec.edns = ldns_pkt_edns(q.get());
  }
  return spec;
}

ScriptedUpstream::ScriptedUpstream(Script script, const std::string& ipv4, uint16_t port)
    : script_(std::move(script)) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ipv4.c_str(), &a.sin_addr);
  socklen_t len = sizeof a;
  tcp_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bind(tcp_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(tcp_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  listen(tcp_fd_, 64);
  udp_fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  bind(udp_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);  // the same port
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { Run(); });
}

ScriptedUpstream::~ScriptedUpstream() {
  stop_ = true;
  thread_.join();
  for (const auto& c : conns_) close(c.fd);
  close(udp_fd_);
  close(tcp_fd_);
}

void ScriptedUpstream::set_script(Script script) {
  std::lock_guard<std::mutex> lock(mu_);
  script_ = std::move(script);
}

std::vector<SeenQuery> ScriptedUpstream::seen() const {
  std::lock_guard<std::mutex> lock(mu_);
  return seen_;
}

int ScriptedUpstream::Count(const std::string& name, bool tcp) const {
  int n = 0;
  for (const SeenQuery& s : seen()) n += s.name == name && s.tcp == tcp;
  return n;
}

void ScriptedUpstream::Handle(std::vector<uint8_t> query, int tcp_fd, int conn_number,
                              const sockaddr_storage& from, socklen_t from_len) {
  SeenQuery seen;
  seen.wire = std::move(query);
  seen.tcp = tcp_fd >= 0;
  seen.conn = conn_number;
  LdnsPkt q = Parse(seen.wire);
  if (q && ldns_pkt_qdcount(q.get()) == 1) {
    const ldns_rr* question = ldns_rr_list_rr(ldns_pkt_question(q.get()), 0);
    char* owner = ldns_rdf2str(ldns_rr_owner(question));
    seen.name = owner;
    free(owner);
    std::transform(seen.name.begin(), seen.name.end(), seen.name.begin(), ::tolower);
    seen.qtype = ldns_rr_get_type(question);
    seen.qclass = ldns_rr_get_class(question);
  }
  Script script;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seen_.push_back(seen);
    script = script_;
  }
  ++queries_;
  const Action action = script(seen);
  if (action.kind == Action::Kind::kClose && tcp_fd >= 0) {
    for (Conn& c : conns_) {
      if (c.fd == tcp_fd) {
        std::erase_if(due_, [&](const Due& d) { return d.tcp_fd == c.fd; });
        close(c.fd);
        c.fd = -1;
      }
    }
    return;
  }
  if (action.kind != Action::Kind::kReply) return;  // silent: held unanswered for ever
  due_.push_back(
      {std::chrono::steady_clock::now() + action.delay, tcp_fd, from, from_len, action.reply});
  max_outstanding_ = std::max<int>(max_outstanding_, static_cast<int>(due_.size()));
}

void ScriptedUpstream::Run() {
  int next_conn = 0;
  while (!stop_) {
    std::vector<pollfd> fds = {{udp_fd_, POLLIN, 0}, {tcp_fd_, POLLIN, 0}};
    for (const auto& c : conns_) fds.push_back({c.fd, POLLIN, 0});
    poll(fds.data(), fds.size(), 5);
    if (fds[0].revents & POLLIN) {
      std::vector<uint8_t> buf(65536);
      sockaddr_storage from{};
      socklen_t len = sizeof from;
      const ssize_t n =
          recvfrom(udp_fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n > 0) {
        buf.resize(static_cast<size_t>(n));
        Handle(std::move(buf), -1, -1, from, len);
      }
    }
    if (fds[1].revents & POLLIN) {
      const int c = accept4(tcp_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        conns_.push_back({c, next_conn++, {}});
        ++connections_;
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const int fd = conns_[i - 2].fd;
      const int number = conns_[i - 2].number;
      if (fd < 0) continue;
      uint8_t buf[4096];
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {  // closed: forget it and whatever it still had coming
        std::erase_if(due_, [&](const Due& d) { return d.tcp_fd == fd; });
        close(fd);
        conns_[i - 2].fd = -1;
        continue;
      }
      std::vector<uint8_t>& in = conns_[i - 2].in;
      in.insert(in.end(), buf, buf + n);
      while (in.size() >= 2 && in.size() >= 2u + (in[0] << 8 | in[1])) {
        const size_t len = in[0] << 8 | in[1];
        std::vector<uint8_t> query(in.begin() + 2, in.begin() + 2 + static_cast<ptrdiff_t>(len));
        in.erase(in.begin(), in.begin() + 2 + static_cast<ptrdiff_t>(len));
        Handle(std::move(query), fd, number, {}, 0);
        if (conns_[i - 2].fd < 0) break;  // the script closed it
      }
    }
    std::erase_if(conns_, [](const Conn& c) { return c.fd < 0; });
    const auto now = std::chrono::steady_clock::now();
    for (auto it = due_.begin(); it != due_.end();) {
      if (it->at > now) {
        ++it;
        continue;
      }
      if (it->tcp_fd >= 0) {
        std::vector<uint8_t> frame(2 + it->reply.size());
        frame[0] = static_cast<uint8_t>(it->reply.size() >> 8);
        frame[1] = static_cast<uint8_t>(it->reply.size());
        std::copy(it->reply.begin(), it->reply.end(), frame.begin() + 2);
        size_t off = 0;
        while (off < frame.size()) {
          const ssize_t n = send(it->tcp_fd, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
          if (n <= 0) break;
          off += static_cast<size_t>(n);
        }
      } else {
        sendto(udp_fd_, it->reply.data(), it->reply.size(), 0,
               reinterpret_cast<const sockaddr*>(&it->from), it->from_len);
      }
      it = due_.erase(it);
    }
  }
}

}  // namespace nodedns::testing
