// MissAdmission: the worker's cap on waiting clients, the per-client share, the client key
// (IPv4 address, IPv6 /64, IPv4-mapped folded), and the top list of shed misses for GET /audit.
#include "proxy/miss_admission.h"

#include <arpa/inet.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/net.h"

namespace nodedns::proxy {
namespace {

using V = MissAdmission::Verdict;

sockaddr_storage Addr(const std::string& text) {
  const sockaddr_storage s = testing::SocketAddressOf(text);
  EXPECT_NE(s.ss_family, AF_UNSPEC) << text;
  return s;
}

TEST(MissAdmissionTest, ClientMissLimitIsTheShareOfTheCapAtLeastOne) {
  EXPECT_EQ(ClientMissLimit(10'000, 25), 2500u);
  EXPECT_EQ(ClientMissLimit(10, 5), 1u);
  EXPECT_EQ(ClientMissLimit(10, 100), 0u);  // no per-client limit
  EXPECT_EQ(ClientMissLimit(0, 25), 0u);
}

TEST(MissAdmissionTest, WorkerCapAdmitsUpToItAndAgainAfterARelease) {
  MissAdmission a;
  std::vector<uint16_t> slots;
  for (int i = 0; i < 5; ++i) {  // five clients, one each: the per-client share plays no part
    uint16_t slot = 0;
    ASSERT_EQ(a.Admit(Addr("10.0.0." + std::to_string(i + 1)), 5, 100, slot), V::kAdmit) << i;
    slots.push_back(slot);
  }
  EXPECT_EQ(a.waiting(), 5u);
  uint16_t slot = 0;
  EXPECT_EQ(a.Admit(Addr("10.0.0.9"), 5, 100, slot), V::kWorkerFull);
  EXPECT_EQ(a.waiting(), 5u);  // a refusal holds nothing
  a.Release(slots[0]);
  EXPECT_EQ(a.waiting(), 4u);
  EXPECT_EQ(a.WaitingFrom(Addr("10.0.0.1")), 0u);
  EXPECT_EQ(a.Admit(Addr("10.0.0.9"), 5, 100, slot), V::kAdmit);
  EXPECT_EQ(a.WaitingFrom(Addr("10.0.0.9")), 1u);
}

TEST(MissAdmissionTest, OneClientGetsItsShareAndOthersTheRest) {
  MissAdmission a;
  std::vector<uint16_t> flooder;
  uint16_t slot = 0;
  // Cap 100, share 25%: the flooder keeps 25; the rest stays for the others.
  for (int i = 0; i < 25; ++i) {
    ASSERT_EQ(a.Admit(Addr("10.1.1.1"), 100, 25, slot), V::kAdmit) << i;
    flooder.push_back(slot);
  }
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.Admit(Addr("10.1.1.1"), 100, 25, slot), V::kClientShare);
  EXPECT_EQ(a.WaitingFrom(Addr("10.1.1.1")), 25u);
  for (int i = 0; i < 75; ++i) {
    ASSERT_EQ(a.Admit(Addr("10.2.0." + std::to_string(i % 5)), 100, 25, slot), V::kAdmit) << i;
  }
  EXPECT_EQ(a.waiting(), 100u);
  EXPECT_EQ(a.Admit(Addr("10.3.0.1"), 100, 25, slot), V::kWorkerFull);
  // The flooder's share is checked first: its verdict names the reason that applies to it.
  EXPECT_EQ(a.Admit(Addr("10.1.1.1"), 100, 25, slot), V::kClientShare);
  a.Release(flooder.back());
  EXPECT_EQ(a.WaitingFrom(Addr("10.1.1.1")), 24u);
  EXPECT_EQ(a.Admit(Addr("10.1.1.1"), 100, 25, slot), V::kAdmit);
  // With share 100 a client may take the whole cap.
  MissAdmission b;
  for (int i = 0; i < 100; ++i) ASSERT_EQ(b.Admit(Addr("10.1.1.1"), 100, 100, slot), V::kAdmit);
  EXPECT_EQ(b.Admit(Addr("10.1.1.1"), 100, 100, slot), V::kWorkerFull);
  // No cap (0): neither limit applies.
  MissAdmission c;
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(c.Admit(Addr("10.1.1.1"), 0, 25, slot), V::kAdmit);
}

TEST(MissAdmissionTest, ClientsAreIpv4AddressesAndIpv6Slash64s) {
  MissAdmission a;
  uint16_t slot = 0;
  ASSERT_EQ(a.Admit(Addr("2001:db8:1:2::1"), 100, 2, slot), V::kAdmit);
  ASSERT_EQ(a.Admit(Addr("2001:db8:1:2:ffff::9"), 100, 2, slot), V::kAdmit);  // same /64
  EXPECT_EQ(a.Admit(Addr("2001:db8:1:2::77"), 100, 2, slot), V::kClientShare);
  EXPECT_EQ(a.WaitingFrom(Addr("2001:db8:1:2::5")), 2u);
  EXPECT_EQ(a.Admit(Addr("2001:db8:1:3::1"), 100, 2, slot), V::kAdmit);  // the next /64
  // An IPv4-mapped client is its IPv4 address.
  ASSERT_EQ(a.Admit(Addr("192.0.2.1"), 100, 2, slot), V::kAdmit);
  ASSERT_EQ(a.Admit(Addr("::ffff:192.0.2.1"), 100, 2, slot), V::kAdmit);
  EXPECT_EQ(a.Admit(Addr("192.0.2.1"), 100, 2, slot), V::kClientShare);
  EXPECT_EQ(a.Admit(Addr("192.0.2.2"), 100, 2, slot), V::kAdmit);
}

TEST(MissAdmissionTest, ManyClientsAllCountedAndAllReleased) {
  MissAdmission a;
  std::vector<uint16_t> slots;
  uint16_t slot = 0;
  // More clients than slots: the ones that find no slot are counted in the total only.
  const int n = static_cast<int>(MissAdmission::kSlots) + 1000;
  for (int i = 0; i < n; ++i) {
    sockaddr_storage s{};
    auto& v4 = reinterpret_cast<sockaddr_in&>(s);
    v4.sin_family = AF_INET;
    v4.sin_addr.s_addr = htonl(0x0a000000u + static_cast<uint32_t>(i));
    ASSERT_EQ(a.Admit(s, 1'000'000, 1, slot), V::kAdmit) << i;
    slots.push_back(slot);
  }
  EXPECT_EQ(a.waiting(), static_cast<size_t>(n));
  size_t without = 0;
  for (uint16_t s : slots) without += s == MissAdmission::kNoSlot;
  EXPECT_GE(without, 1000u);
  for (uint16_t s : slots) a.Release(s);
  EXPECT_EQ(a.waiting(), 0u);
  // Every slot is free again: a client gets its full share.
  for (int i = 0; i < 10'000; ++i)
    ASSERT_EQ(a.Admit(Addr("10.0.0.5"), 1'000'000, 1, slot), V::kAdmit);
  EXPECT_EQ(a.Admit(Addr("10.0.0.5"), 1'000'000, 1, slot), V::kClientShare);
}

TEST(MissAdmissionTest, TopShedListKeepsTheLargestAndRendersThem) {
  MissAdmission a;
  for (int i = 0; i < 30; ++i) a.NoteShed(Addr("10.9.9.9"), V::kClientShare);
  for (int i = 0; i < 5; ++i) a.NoteShed(Addr("10.9.9.9"), V::kWorkerFull);
  for (int i = 0; i < 7; ++i) a.NoteShed(Addr("2001:db8:5:6::1"), V::kWorkerFull);
  // More distinct clients than the list holds, one miss each: they replace each other.
  for (size_t i = 0; i < 2 * MissAdmission::kTopShed; ++i) {
    a.NoteShed(Addr("192.0.2." + std::to_string(i + 1)), V::kWorkerFull);
  }
  EXPECT_TRUE(a.Snapshot().empty());  // nothing published yet
  a.Publish();
  const auto top = a.Snapshot();
  EXPECT_EQ(top.size(), MissAdmission::kTopShed);
  const std::string json = RenderShedJson({top, top});  // two workers: summed per client
  EXPECT_EQ(json.rfind(
                "\"shed\":[{\"client\":\"10.9.9.9\",\"misses\":70,\"client_share\":60,\"error\":0},"
                "{\"client\":\"2001:db8:5:6::/64\",\"misses\":14,\"client_share\":0,\"error\":0},",
                0),
            0u)
      << json;
  const std::string table = RenderShedTable({top});
  EXPECT_NE(table.find("10.9.9.9"), std::string::npos) << table;
  EXPECT_NE(table.find("2001:db8:5:6::/64"), std::string::npos) << table;
  EXPECT_EQ(RenderShedJson({}), "\"shed\":[]");
  EXPECT_NE(RenderShedTable({}).find("no misses shed yet"), std::string::npos);
}

}  // namespace
}  // namespace nodedns::proxy
