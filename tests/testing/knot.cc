// Knot DNS as a test upstream; see knot.h.
#include "tests/testing/knot.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>

#include "gtest/gtest.h"
#include "tests/testing/dns_builder.h"
#include "tests/testing/net.h"

namespace nodedns::testing {

std::string KnotdPath() {
  const char* path = getenv("NODEDNS_TEST_KNOTD");
  return path ? path : "/usr/sbin/knotd";
}

bool HaveKnot() { return access(KnotdPath().c_str(), X_OK) == 0; }

KnotServer::~KnotServer() { Stop(); }

void KnotServer::Start(const std::string& dir, uint16_t port,
                       const std::map<std::string, std::string>& zones) {
  port_ = port;
  std::filesystem::create_directories(dir + "/run");
  std::filesystem::create_directories(dir + "/storage");
  std::ostringstream c;
  c << "server:\n    listen: 127.0.0.1@" << port << "\n    rundir: \"" << dir
    << "/run\"\n    background-workers: 1\n    udp-workers: 1\n    tcp-workers: 1\n"
    << "database:\n    storage: \"" << dir << "/storage\"\n"
    << "log:\n  - target: stderr\n    any: warning\nzone:\n";
  for (const auto& [origin, text] : zones) {
    const std::string file = dir + "/" + origin + ".zone";
    WriteFile(file, text);
    c << "  - domain: " << origin << "\n    file: \"" << file
      << "\"\n    zonefile-sync: -1\n    journal-content: none\n";
  }
  WriteFile(dir + "/knot.conf", c.str());
  ASSERT_TRUE(process_.Start({KnotdPath(), "-c", dir + "/knot.conf"}, dir + "/knot.log"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (const auto& [origin, text] : zones) {
    MessageSpec spec;
    spec.qname = origin + ".";
    spec.qtype = 6;
    spec.qr = false;
    const Bytes probe = Build(spec);
    for (;;) {
      ASSERT_TRUE(process_.Running()) << "knotd exited:\n" << process_.Log();
      if (auto r = UdpExchange(port, probe, 200); r && r->size() > 3 && ((*r)[3] & 0xf) == 0) {
        break;
      }
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "knotd did not serve " << origin << " within 10 s:\n"
          << process_.Log();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

void KnotServer::Stop() {
  if (process_.pid() <= 0) return;
  const auto st = process_.Stop(std::chrono::milliseconds(5000));
  EXPECT_TRUE(st.has_value()) << "knotd ignored SIGTERM";
}

}  // namespace nodedns::testing
