/* A getaddrinfo() client for the integration tests and the search-rewrite benchmark. Built at
 * test time against glibc (cc) and against musl (musl-gcc -static), so that both libcs' stub
 * resolvers are exercised by the same program.
 *
 *   getaddrinfo_client [--time] [--addrconfig] [--family unspec|inet|inet6] NAME...
 *
 * For each NAME: one getaddrinfo(NAME, NULL, hints) call with ai_socktype = SOCK_STREAM (one
 * result per address), ai_family as given (default AF_UNSPEC) and ai_flags = AI_ADDRCONFIG only
 * with --addrconfig. Without AI_ADDRCONFIG both libcs always ask A and AAAA, whatever addresses
 * the host has. Prints one line per NAME:
 *
 *   NAME STATUS [us=MICROSECONDS] [ADDRESS...]
 *
 * STATUS is "ok" or the symbolic EAI_* error. us= (with --time) is the duration of the
 * getaddrinfo() call alone on CLOCK_MONOTONIC. Addresses are printed in getaddrinfo's order.
 * Exit status: 0 if every NAME resolved, 2 if any did not (as getent), 1 on a usage error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static const char *eai_name(int rc) {
  switch (rc) {
    case EAI_NONAME: return "EAI_NONAME";
    case EAI_AGAIN: return "EAI_AGAIN";
    case EAI_FAIL: return "EAI_FAIL";
    case EAI_FAMILY: return "EAI_FAMILY";
    case EAI_MEMORY: return "EAI_MEMORY";
    case EAI_SERVICE: return "EAI_SERVICE";
    case EAI_SOCKTYPE: return "EAI_SOCKTYPE";
    case EAI_SYSTEM: return "EAI_SYSTEM";
#ifdef EAI_NODATA
    case EAI_NODATA: return "EAI_NODATA";
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY: return "EAI_ADDRFAMILY";
#endif
    default: return "EAI_OTHER";
  }
}

static long long now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static int usage(void) {
  fprintf(stderr,
          "usage: getaddrinfo_client [--time] [--addrconfig] [--family unspec|inet|inet6] "
          "NAME...\n");
  return 1;
}

int main(int argc, char **argv) {
  int timing = 0, flags = 0, family = AF_UNSPEC, i = 1, failed = 0;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; ++i) {
    if (strcmp(argv[i], "--time") == 0) {
      timing = 1;
    } else if (strcmp(argv[i], "--addrconfig") == 0) {
      flags |= AI_ADDRCONFIG;
    } else if (strcmp(argv[i], "--family") == 0 && i + 1 < argc) {
      const char *f = argv[++i];
      if (strcmp(f, "unspec") == 0) family = AF_UNSPEC;
      else if (strcmp(f, "inet") == 0) family = AF_INET;
      else if (strcmp(f, "inet6") == 0) family = AF_INET6;
      else return usage();
    } else if (strcmp(argv[i], "--") == 0) {
      ++i;
      break;
    } else {
      return usage();
    }
  }
  if (i >= argc) return usage();
  for (; i < argc; ++i) {
    struct addrinfo hints, *res = NULL, *ai;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags;
    long long t0 = now_us();
    int rc = getaddrinfo(argv[i], NULL, &hints, &res);
    long long t1 = now_us();
    printf("%s %s", argv[i], rc == 0 ? "ok" : eai_name(rc));
    if (timing) printf(" us=%lld", t1 - t0);
    for (ai = rc == 0 ? res : NULL; ai; ai = ai->ai_next) {
      char buf[INET6_ADDRSTRLEN];
      const void *a = ai->ai_family == AF_INET
                          ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                          : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
      if (inet_ntop(ai->ai_family, a, buf, sizeof buf)) printf(" %s", buf);
    }
    printf("\n");
    if (rc != 0) failed = 1;
    if (res) freeaddrinfo(res);
  }
  return failed ? 2 : 0;
}
