// Parsing of --allow; see allow_list.h.
#include "proxy/allow_list.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "proxy/search_path_learner.h"

namespace nodedns::proxy {

namespace {

uint64_t Load64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

uint64_t Mask64(int bits) {
  return bits <= 0 ? 0 : bits >= 64 ? ~uint64_t{0} : ~(~uint64_t{0} >> bits);
}

}  // namespace

AllowList::AllowList() {
  for (absl::string_view cidr : absl::StrSplit(kDefaultAllow, ',')) {
    // The constant is checked by the unit tests; a failure here would leave the list shorter.
    (void)Add(cidr);
  }
}

absl::Status AllowList::Add(absl::string_view cidr) {
  uint8_t family = 0;
  uint8_t addr[16];
  int bits = 0;
  if (absl::Status s = internal::ParseCidr(cidr, family, addr, bits); !s.ok()) return s;
  if (family == 4) {
    const uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
    const uint32_t net = static_cast<uint32_t>(Load64(addr) >> 32);
    v4_.push_back({.net = net & mask, .mask = mask});
    all_v4_ |= bits == 0;
  } else {
    const uint64_t mh = Mask64(bits), ml = Mask64(bits - 64);
    v6_.push_back({.net_hi = Load64(addr) & mh,
                   .net_lo = Load64(addr + 8) & ml,
                   .mask_hi = mh,
                   .mask_lo = ml});
    all_v6_ |= bits == 0;
  }
  text_.emplace_back(cidr);
  return absl::OkStatus();
}

absl::StatusOr<AllowList> AllowList::Parse(absl::string_view spec) {
  AllowList list;
  list.v4_.clear();
  list.v6_.clear();
  list.text_.clear();
  list.all_v4_ = list.all_v6_ = false;
  if (absl::AsciiStrToLower(spec) == "any") {
    list.all_v4_ = list.all_v6_ = true;
    list.text_.push_back("any");
    return list;
  }
  for (absl::string_view cidr : absl::StrSplit(spec, ',')) {
    cidr = absl::StripAsciiWhitespace(cidr);
    if (cidr.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("'", spec, "' has an empty element"));
    }
    if (cidr == "default") {
      const AllowList d;
      list.v4_.insert(list.v4_.end(), d.v4_.begin(), d.v4_.end());
      list.v6_.insert(list.v6_.end(), d.v6_.begin(), d.v6_.end());
      list.text_.insert(list.text_.end(), d.text_.begin(), d.text_.end());
      continue;
    }
    if (absl::Status s = list.Add(cidr); !s.ok()) return s;
  }
  return list;
}

absl::StatusOr<AllowList> AllowList::ParseAll(const std::vector<std::string>& specs) {
  if (specs.empty()) return AllowList();
  AllowList all;
  all.v4_.clear();
  all.v6_.clear();
  all.text_.clear();
  for (const std::string& spec : specs) {
    absl::StatusOr<AllowList> one = Parse(spec);
    if (!one.ok()) return one.status();
    all.v4_.insert(all.v4_.end(), one->v4_.begin(), one->v4_.end());
    all.v6_.insert(all.v6_.end(), one->v6_.begin(), one->v6_.end());
    all.all_v4_ |= one->all_v4_;
    all.all_v6_ |= one->all_v6_;
    all.text_.insert(all.text_.end(), one->text_.begin(), one->text_.end());
  }
  return all;
}

std::string AllowList::ToString() const { return absl::StrJoin(text_, ","); }

}  // namespace nodedns::proxy
