/* A UDP relay that delays every datagram going upstream by a fixed time: an upstream that "adds
 * 1 ms" for bench/search_rewrite_bench.sh on kernels without sch_netem (tc qdisc ... netem).
 *
 *   udp_delay_relay LISTEN_IPV4:PORT UPSTREAM_IPV4:PORT DELAY_US
 *
 * Each client address:port gets its own connected socket to the upstream, so replies go back to
 * the client that asked (DNS IDs are never looked at). Replies are relayed at once: the delay is
 * one-way, on the request direction, so the round trip through the relay is DELAY_US longer.
 * Single-threaded: ppoll() with a nanosecond timeout until the oldest queued datagram is due, and
 * 1 ns timer slack so that the wake-up is not rounded up by the default 50 us. Runs until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define QUEUE_LEN 4096
#define MAX_DGRAM 4096

struct client {
  struct sockaddr_in addr;
  int fd; /* connected to the upstream; -1 when the slot is free */
  long long last_used_ns;
};

struct pending {
  long long due_ns;
  int client;
  size_t len;
  unsigned char data[MAX_DGRAM];
};

static struct client clients[MAX_CLIENTS];
static struct pending queue[QUEUE_LEN];
static size_t q_head, q_len;

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int parse_addr(const char *s, struct sockaddr_in *out) {
  char host[64];
  const char *colon = strrchr(s, ':');
  if (!colon || (size_t)(colon - s) >= sizeof host) return -1;
  memcpy(host, s, colon - s);
  host[colon - s] = 0;
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = htons((unsigned short)atoi(colon + 1));
  return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

/* The slot for a client address, opening a socket to the upstream for a new one (replacing the
 * least recently used slot when all are taken). -1 on error. */
static int client_slot(const struct sockaddr_in *from, const struct sockaddr_in *upstream) {
  int free_slot = -1, lru = 0;
  for (int i = 0; i < MAX_CLIENTS; ++i) {
    if (clients[i].fd < 0) {
      if (free_slot < 0) free_slot = i;
      continue;
    }
    if (clients[i].addr.sin_addr.s_addr == from->sin_addr.s_addr &&
        clients[i].addr.sin_port == from->sin_port) {
      clients[i].last_used_ns = now_ns();
      return i;
    }
    if (clients[i].last_used_ns < clients[lru].last_used_ns || clients[lru].fd < 0) lru = i;
  }
  int slot = free_slot >= 0 ? free_slot : lru;
  if (clients[slot].fd >= 0) close(clients[slot].fd);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0 || connect(fd, (const struct sockaddr *)upstream, sizeof *upstream) != 0) {
    if (fd >= 0) close(fd);
    clients[slot].fd = -1;
    return -1;
  }
  clients[slot].addr = *from;
  clients[slot].fd = fd;
  clients[slot].last_used_ns = now_ns();
  return slot;
}

int main(int argc, char **argv) {
  struct sockaddr_in listen_addr, upstream;
  if (argc != 4 || parse_addr(argv[1], &listen_addr) != 0 || parse_addr(argv[2], &upstream) != 0) {
    fprintf(stderr, "usage: udp_delay_relay LISTEN_IPV4:PORT UPSTREAM_IPV4:PORT DELAY_US\n");
    return 1;
  }
  long long delay_ns = atoll(argv[3]) * 1000LL;
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  signal(SIGPIPE, SIG_IGN);
  for (int i = 0; i < MAX_CLIENTS; ++i) clients[i].fd = -1;

  int lfd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (lfd < 0 || bind(lfd, (const struct sockaddr *)&listen_addr, sizeof listen_addr) != 0) {
    perror("udp_delay_relay: bind");
    return 1;
  }

  static unsigned char buf[MAX_DGRAM];
  for (;;) {
    struct pollfd fds[MAX_CLIENTS + 1];
    int slot_of[MAX_CLIENTS + 1];
    int n = 0;
    fds[n].fd = lfd;
    fds[n].events = POLLIN;
    slot_of[n++] = -1;
    for (int i = 0; i < MAX_CLIENTS; ++i) {
      if (clients[i].fd < 0) continue;
      fds[n].fd = clients[i].fd;
      fds[n].events = POLLIN;
      slot_of[n++] = i;
    }
    struct timespec ts, *tsp = NULL;
    if (q_len > 0) {
      long long wait = queue[q_head].due_ns - now_ns();
      if (wait < 0) wait = 0;
      ts.tv_sec = wait / 1000000000LL;
      ts.tv_nsec = wait % 1000000000LL;
      tsp = &ts;
    }
    if (ppoll(fds, n, tsp, NULL) < 0 && errno != EINTR) {
      perror("udp_delay_relay: ppoll");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      if (slot_of[i] < 0) {
        /* Requests: queue each until it is due. */
        for (;;) {
          struct sockaddr_in from;
          socklen_t fl = sizeof from;
          ssize_t len = recvfrom(lfd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
          if (len < 0) break;
          if (q_len == QUEUE_LEN) continue; /* full: drop, as a congested link would */
          int slot = client_slot(&from, &upstream);
          if (slot < 0) continue;
          struct pending *p = &queue[(q_head + q_len) % QUEUE_LEN];
          p->due_ns = now_ns() + delay_ns;
          p->client = slot;
          p->len = (size_t)len;
          memcpy(p->data, buf, (size_t)len);
          ++q_len;
        }
      } else {
        /* Replies: straight back to the client. */
        struct client *c = &clients[slot_of[i]];
        for (;;) {
          ssize_t len = recv(c->fd, buf, sizeof buf, 0);
          if (len < 0) break;
          sendto(lfd, buf, (size_t)len, 0, (const struct sockaddr *)&c->addr, sizeof c->addr);
        }
      }
    }
    long long now = now_ns();
    while (q_len > 0 && queue[q_head].due_ns <= now) {
      struct pending *p = &queue[q_head];
      if (clients[p->client].fd >= 0) send(clients[p->client].fd, p->data, p->len, 0);
      q_head = (q_head + 1) % QUEUE_LEN;
      --q_len;
    }
  }
}
