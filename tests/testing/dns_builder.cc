// ldns-backed message builder for tests; see dns_builder.h.
#include "tests/testing/dns_builder.h"

#include <cstdio>
#include <cstdlib>

namespace nodedns::testing {

namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "dns_builder: %s\n", what.c_str());
  std::abort();
}

ldns_rdf* Dname(std::string_view name) {
  ldns_rdf* d = ldns_dname_new_frm_str(std::string(name).c_str());
  if (d == nullptr) Die("bad name " + std::string(name));
  return d;
}

void Push(ldns_pkt* pkt, ldns_pkt_section section, const std::vector<std::string>& rrs) {
  for (const auto& text : rrs) {
    ldns_rr* rr = nullptr;
    if (ldns_rr_new_frm_str(&rr, text.c_str(), 3600, nullptr, nullptr) != LDNS_STATUS_OK) {
      Die("bad RR " + text);
    }
    ldns_pkt_push_rr(pkt, section, rr);
  }
}

}  // namespace

std::vector<uint8_t> Build(const MessageSpec& spec) {
  ldns_pkt* pkt = ldns_pkt_new();
  ldns_pkt_set_id(pkt, spec.id);
  ldns_pkt_set_qr(pkt, spec.qr);
  ldns_pkt_set_tc(pkt, spec.tc);
  ldns_pkt_set_rd(pkt, spec.rd);
  ldns_pkt_set_cd(pkt, spec.cd);
  ldns_pkt_set_ra(pkt, spec.qr);
  ldns_pkt_set_rcode(pkt, spec.rcode);
  ldns_rr* q = ldns_rr_new();
  ldns_rr_set_owner(q, Dname(spec.qname));
  ldns_rr_set_type(q, static_cast<ldns_rr_type>(spec.qtype));
  ldns_rr_set_class(q, LDNS_RR_CLASS_IN);
  ldns_rr_set_question(q, true);
  ldns_pkt_push_rr(pkt, LDNS_SECTION_QUESTION, q);
  Push(pkt, LDNS_SECTION_ANSWER, spec.answer);
  Push(pkt, LDNS_SECTION_AUTHORITY, spec.authority);
  Push(pkt, LDNS_SECTION_ADDITIONAL, spec.additional);
  if (spec.edns) {
    ldns_pkt_set_edns_udp_size(pkt, spec.udp_size);
    ldns_pkt_set_edns_do(pkt, spec.do_bit);
    // The options' wire form (code, length, data each), as the OPT record's raw RDATA.
    std::vector<uint8_t> rdata;
    for (const EdnsOption& o : spec.edns_options) {
      for (uint16_t v : {o.code, static_cast<uint16_t>(o.data.size())}) {
        rdata.push_back(static_cast<uint8_t>(v >> 8));
        rdata.push_back(static_cast<uint8_t>(v));
      }
      rdata.insert(rdata.end(), o.data.begin(), o.data.end());
    }
    if (!rdata.empty()) {
      ldns_pkt_set_edns_data(
          pkt, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_UNKNOWN, rdata.size(), rdata.data()));
    }
  } else if (!spec.edns_options.empty()) {
    Die("EDNS options without edns");
  }
  uint8_t* wire = nullptr;
  size_t size = 0;
  if (ldns_pkt2wire(&wire, pkt, &size) != LDNS_STATUS_OK) Die("ldns_pkt2wire failed");
  std::vector<uint8_t> out(wire, wire + size);
  LDNS_FREE(wire);
  ldns_pkt_free(pkt);
  return out;
}

std::vector<uint8_t> BuildQuery(std::string_view qname, uint16_t qtype, bool edns, bool do_bit,
                                uint16_t id) {
  MessageSpec spec;
  spec.qname = std::string(qname);
  spec.qtype = qtype;
  spec.qr = false;
  spec.id = id;
  spec.edns = edns;
  spec.do_bit = do_bit;
  return Build(spec);
}

LdnsPkt Parse(std::span<const uint8_t> wire) {
  ldns_pkt* pkt = nullptr;
  if (ldns_wire2pkt(&pkt, wire.data(), wire.size()) != LDNS_STATUS_OK) return nullptr;
  return LdnsPkt(pkt);
}

std::vector<EdnsOption> EdnsOptions(std::span<const uint8_t> wire) {
  LdnsPkt pkt = Parse(wire);
  if (!pkt) Die("EdnsOptions: message does not parse");
  std::vector<EdnsOption> out;
  const ldns_rdf* data = ldns_pkt_edns_data(pkt.get());
  if (data == nullptr) return out;
  const uint8_t* p = ldns_rdf_data(data);
  const size_t size = ldns_rdf_size(data);
  for (size_t off = 0; off + 4 <= size;) {
    EdnsOption o;
    o.code = static_cast<uint16_t>(p[off] << 8 | p[off + 1]);
    const size_t len = static_cast<size_t>(p[off + 2] << 8 | p[off + 3]);
    if (off + 4 + len > size) Die("EdnsOptions: option overruns the OPT record");
    o.data.assign(p + off + 4, p + off + 4 + len);
    out.push_back(std::move(o));
    off += 4 + len;
  }
  return out;
}

std::vector<uint8_t> WireName(std::string_view name) {
  ldns_rdf* d = Dname(name);
  std::vector<uint8_t> out(ldns_rdf_data(d), ldns_rdf_data(d) + ldns_rdf_size(d));
  ldns_rdf_deep_free(d);
  return out;
}

std::vector<uint32_t> AllTtls(const ldns_pkt* pkt) {
  std::vector<uint32_t> ttls;
  for (ldns_rr_list* list :
       {ldns_pkt_answer(pkt), ldns_pkt_authority(pkt), ldns_pkt_additional(pkt)}) {
    for (size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
      ttls.push_back(ldns_rr_ttl(ldns_rr_list_rr(list, i)));
    }
  }
  return ttls;
}

std::vector<std::string> AnswerAddresses(std::span<const uint8_t> reply) {
  std::vector<std::string> out;
  LdnsPkt p = Parse(reply);
  if (!p) return out;
  const ldns_rr_list* an = ldns_pkt_answer(p.get());
  for (size_t i = 0; i < ldns_rr_list_rr_count(an); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(an, i);
    if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_A && ldns_rr_get_type(rr) != LDNS_RR_TYPE_AAAA) {
      continue;
    }
    char* s = ldns_rdf2str(ldns_rr_rdf(rr, 0));
    out.emplace_back(s);
    free(s);
  }
  return out;
}

}  // namespace nodedns::testing
