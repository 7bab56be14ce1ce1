// Test-only socket helpers on 127.0.0.1: free ports, one-shot UDP and TCP exchanges, HTTP GET
// and Prometheus sample lookup. Every wait is bounded so that a broken server fails a test
// instead of hanging it.
#ifndef NODEDNS_TESTS_TESTING_NET_H_
#define NODEDNS_TESTS_TESTING_NET_H_

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nodedns::testing {

using Bytes = std::vector<uint8_t>;

sockaddr_in Loopback(uint16_t port);
// Ports free for both UDP and TCP on 127.0.0.1, chosen at random below the kernel's ephemeral
// range (net.ipv4.ip_local_port_range): a port handed back by FreePorts is closed again until the
// server under test binds it, and inside the ephemeral range any socket bound to port 0 in that
// window (the test's own upstream, a client, nodedns's upstream sockets, a test running beside it)
// could be given it. All sockets stay open until every port is chosen, so that no port is
// returned twice.
std::vector<uint16_t> FreePorts(size_t n);
// A UDP socket connected to 127.0.0.1:port, so that it only sees that server's datagrams.
int UdpSocketTo(uint16_t port);
// ADDRESS (an IPv4 or IPv6 literal) and `port` as a socket address; ss_family is AF_UNSPEC for
// anything else. *length (if given) is the size to pass with it.
sockaddr_storage SocketAddressOf(const std::string& address, uint16_t port = 0,
                                 socklen_t* length = nullptr);
std::optional<Bytes> RecvDatagram(int fd, int timeout_ms);
std::optional<Bytes> UdpExchange(uint16_t port, const Bytes& query, int timeout_ms = 3000);
// The same to ADDRESS:port, an IPv4 or IPv6 literal (nullopt for anything else).
std::optional<Bytes> UdpExchangeTo(const std::string& address, uint16_t port, const Bytes& query,
                                   int timeout_ms = 3000);
int TcpConnect(uint16_t port);  // -1 on failure
bool SendAll(int fd, const Bytes& data);
bool RecvExact(int fd, uint8_t* out, size_t size, std::chrono::steady_clock::time_point deadline);
std::optional<Bytes> RecvTcpMessage(int fd, std::chrono::steady_clock::time_point deadline);
Bytes TcpFrame(const Bytes& msg);
std::optional<Bytes> TcpExchange(uint16_t port, const Bytes& query, int timeout_ms = 5000);
// GET over HTTP/1.0 (the server closes after the response); returns the body of a 200.
std::optional<std::string> HttpGet(uint16_t port, const std::string& path);
// The value of one sample ("name" or "name{labels}") in Prometheus text; -1 if absent.
double MetricValue(const std::string& text, const std::string& sample);

}  // namespace nodedns::testing

#endif  // NODEDNS_TESTS_TESTING_NET_H_
