// The UDP front end's outbox on a loop run as a worker runs it (UV_RUN_DEFAULT, blocking in
// epoll): a later reply made by a timer callback, as a stale answer on the client response timer
// is, must leave at once, not when the loop next wakes up for something else.
#include "proxy/udp_frontend.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "tests/proxy/worker_parts.h"

namespace nodedns::proxy {
namespace {

using testing_util::WorkerParts;

int BoundUdpSocket(sockaddr_in& addr) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return fd;
}

// The reply is made by a timer 10 ms in. Half a second later another thread makes a socket
// readable, and the callback of that I/O event (which runs before the loop's check phase) looks
// whether the client has the reply. Left in the outbox, it would leave only in the check phase
// after that wake-up.
TEST(UdpFrontendTest, ReplyMadeByATimerLeavesWithoutWaitingForTheLoopToWakeUp) {
  WorkerParts w;
  ASSERT_TRUE(w.ok());
  sockaddr_in server_addr, client_addr;
  const int server = BoundUdpSocket(server_addr);
  const int client = BoundUdpSocket(client_addr);
  int wake[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, wake), 0);
  UdpFrontend frontend(w.ctx(), w.path(), w.misses());
  const ListenFd fds[] = {{.fd = server, .server = 0}};
  frontend.Start(fds);

  struct State {
    UdpFrontend* frontend;
    Client c;
    int client_fd;
    int woken = 0;
    bool received_when_woken = false;
  } state{&frontend, {}, client};
  state.c.udp_fd = server;
  std::memcpy(&state.c.addr, &client_addr, sizeof client_addr);
  state.c.addr_len = sizeof client_addr;

  uv_timer_t reply_timer, watchdog;
  uv_poll_t waker;
  uv_timer_init(w.loop(), &reply_timer);
  uv_timer_init(w.loop(), &watchdog);
  uv_poll_init_socket(w.loop(), &waker, wake[0]);
  reply_timer.data = waker.data = &state;
  uv_timer_start(
      &reply_timer,
      [](uv_timer_t* t) {
        auto* st = static_cast<State*>(t->data);
        const uint8_t reply[] = {0x12, 0x34, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0};
        st->frontend->SendReply(st->c, reply);
      },
      10, 0);
  uv_poll_start(&waker, UV_READABLE, [](uv_poll_t* p, int, int) {
    auto* st = static_cast<State*>(p->data);
    uint8_t buf[64];
    ++st->woken;
    st->received_when_woken = recv(st->client_fd, buf, sizeof buf, MSG_DONTWAIT) == 12;
    uv_stop(p->loop);
  });
  // Bounds the test should the wake-up never come.
  uv_timer_start(
      &watchdog, [](uv_timer_t* t) { uv_stop(t->loop); }, 5000, 0);
  std::thread waker_thread([fd = wake[1]] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const char x = 'x';
    (void)!write(fd, &x, 1);
  });
  uv_run(w.loop(), UV_RUN_DEFAULT);
  waker_thread.join();
  EXPECT_EQ(state.woken, 1);
  EXPECT_TRUE(state.received_when_woken) << "the reply waited in the outbox";
  frontend.Stop();
  uv_close(reinterpret_cast<uv_handle_t*>(&reply_timer), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&watchdog), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&waker), nullptr);
  uv_run(w.loop(), UV_RUN_NOWAIT);
  close(server);
  close(client);
  close(wake[0]);
  close(wake[1]);
}

}  // namespace
}  // namespace nodedns::proxy
