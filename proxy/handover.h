// Socket handover between two nodedns processes (zero-loss upgrades, docs/operations.md).
//
// A new process started with `--handover PATH` connects to the Unix socket the running one
// listens on at PATH and receives, over SCM_RIGHTS, the very sockets the old one serves on: the
// UDP and TCP listeners of every worker and address, and the HTTP listeners. They are the same
// kernel sockets, so no port is ever unbound and no datagram or connection queued in the kernel
// is lost: whoever reads next gets it. The old process then sends a snapshot of its hottest cache
// entries (cache/snapshot.h), the new one starts its workers on the inherited sockets, confirms,
// and the old one stops reading, answers what it has in flight and exits.
//
// Why descriptors and not SO_REUSEPORT alone: with two processes in one reuseport group the
// kernel hashes each client to one socket, and the datagrams queued on the old process's sockets
// when it closes them are dropped (docs/operations.md, "Upgrades", compares the two). Passing the
// descriptors keeps one set of sockets for the whole upgrade.
//
// The exchange, over SOCK_SEQPACKET (one message per record, each with a Header):
//   new → old  kHello     (the protocol version the new process speaks)
//   old → new  kSockets…  (descriptors, at most kMaxFdsPerMessage per message)
//   old → new  kCache…    (the snapshot, streamed in chunks; may be none)
//   old → new  kEnd
//   new → old  kServing   (the new process's workers read the inherited sockets)
// A version mismatch, a timeout or a closed connection before kServing leaves the old process
// serving as before; the new one binds its own sockets with SO_REUSEPORT next to the old ones.
//
// Thread model: both sides run on the server's main thread. The new side blocks (bounded by its
// deadline) before anything serves; the old side sends from a main-loop callback (bounded by the
// same kind of deadline) and then waits for kServing without blocking.
#ifndef NODEDNS_PROXY_HANDOVER_H_
#define NODEDNS_PROXY_HANDOVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dns/socket_address.h"

namespace nodedns::proxy {

inline constexpr uint8_t kHandoverVersion = 1;
// Snapshot chunks are streamed, one message each, so that neither process ever holds more of the
// snapshot than one chunk: each chunk is a snapshot of its own (cache/snapshot.h).
inline constexpr size_t kMaxSnapshotChunk = 60 * 1024;

namespace internal {

enum class HandoverMessage : uint8_t { kHello = 1, kSockets, kCache, kEnd, kServing };

// Every message starts with this; the payload follows in the same datagram.
struct HandoverHeader {
  char magic[4] = {'N', 'D', 'H', 'O'};
  uint8_t version = kHandoverVersion;
  HandoverMessage type = HandoverMessage::kHello;
  uint16_t reserved = 0;
};

// Linux caps SCM_RIGHTS at 253 descriptors per message (SCM_MAX_FD).
inline constexpr size_t kMaxFdsPerMessage = 64;
// A seqpacket datagram must fit the socket's send buffer (about 208 KiB by default).
inline constexpr size_t kMaxPayload = kMaxSnapshotChunk;

// Sends one message with `payload` and `fds` attached; waits at most until `deadline_ms`
// (CLOCK_MONOTONIC milliseconds) for room.
absl::Status SendMessage(int sock, HandoverMessage type, std::span<const uint8_t> payload,
                         std::span<const int> fds, uint64_t deadline_ms);

struct ReceivedMessage {
  HandoverMessage type;
  std::vector<uint8_t> payload;
  std::vector<int> fds;  // owned by the caller
};
// Receives one message, waiting until `deadline_ms`. A closed connection, a foreign magic or
// another version is an error naming what came.
absl::StatusOr<ReceivedMessage> ReceiveMessage(int sock, uint64_t deadline_ms);

uint64_t MonotonicMs();

}  // namespace internal

// One listening socket as the kernel describes it (getsockname, SO_TYPE, SO_ACCEPTCONN), so that
// a received descriptor is used for what it is, not for what a message says it is.
struct ListeningSocket {
  int fd = -1;
  dns::SocketAddress addr;
  bool tcp = false;  // SOCK_STREAM and listening; otherwise SOCK_DGRAM
};
absl::StatusOr<ListeningSocket> DescribeSocket(int fd);

// The new process's side.
class HandoverClient {
 public:
  enum class Outcome {
    kNoPredecessor,  // nothing listens at PATH (no file, or a stale one: ECONNREFUSED)
    kReceived,       // sockets (and maybe a cache snapshot) received; Confirm() once serving
    kFailed,         // a predecessor answered but the exchange failed: error() says why
  };

  // Connects to PATH and receives the sockets, waiting at most `timeout_ms` in all (the same
  // deadline bounds ReceiveSnapshot).
  static std::unique_ptr<HandoverClient> Request(const std::string& path, uint32_t timeout_ms);
  ~HandoverClient();  // closes every socket not taken, and the connection
  HandoverClient(const HandoverClient&) = delete;
  HandoverClient& operator=(const HandoverClient&) = delete;

  Outcome outcome() const { return outcome_; }
  const std::string& error() const { return error_; }
  // Takes (the caller owns them from now on) every received socket bound to `addr` of this kind.
  std::vector<int> Take(const dns::SocketAddress& addr, bool tcp);
  // Received sockets nobody took yet (the old process listened where the new one does not).
  size_t untaken() const { return sockets_.size(); }
  size_t received() const { return received_; }
  // After Request (kReceived): hands each snapshot chunk that follows the sockets to `consume`,
  // up to the end of the exchange, within Request's deadline. An error (timeout, a closed
  // connection) leaves the sockets received usable.
  absl::Status ReceiveSnapshot(const std::function<void(std::span<const uint8_t>)>& consume);
  // Tells the old process that this one serves: it stops reading, drains and exits.
  absl::Status Confirm();

 private:
  HandoverClient() = default;
  Outcome outcome_ = Outcome::kNoPredecessor;
  std::string error_;
  int conn_ = -1;
  std::vector<ListeningSocket> sockets_;
  size_t received_ = 0;
  uint64_t deadline_ms_ = 0;
  // The message that ended Request's reading: the first snapshot chunk, or kEnd.
  std::vector<uint8_t> first_chunk_;
  bool ended_ = false;
};

// The old process's side: listens at PATH for the next process.
class HandoverListener {
 public:
  // Binds a Unix seqpacket socket at PATH, atomically replacing whatever is there (a stale socket
  // of a killed process, or the socket of the process this one took over from).
  static absl::StatusOr<std::unique_ptr<HandoverListener>> Listen(const std::string& path);
  ~HandoverListener();  // closes; removes PATH only while it is still this listener's
  HandoverListener(const HandoverListener&) = delete;
  HandoverListener& operator=(const HandoverListener&) = delete;

  int fd() const { return fd_; }
  // Sends one snapshot chunk (at most kMaxSnapshotChunk bytes); false: the successor is gone,
  // produce no more.
  using ChunkSink = std::function<bool(std::span<const uint8_t>)>;
  // Accepts one successor and sends it `sockets` (not closed: this process keeps serving on them
  // until the successor confirms), then what `produce_snapshot` hands its sink, waiting at most
  // `timeout_ms` in all. Returns the connection on which kServing will arrive (owned by the
  // caller), or why the exchange failed.
  absl::StatusOr<int> Serve(std::span<const int> sockets,
                            const std::function<void(const ChunkSink&)>& produce_snapshot,
                            uint32_t timeout_ms);
  // After Serve: reads what arrived on `conn` (readable). true: kServing; false: the successor
  // went away or spoke out of turn (this process keeps serving); either way `conn` is done with.
  static bool ReadServing(int conn);
  // The successor owns PATH now: do not remove it on exit.
  void Release() { owns_path_ = false; }

 private:
  HandoverListener() = default;
  int fd_ = -1;
  std::string path_;
  bool owns_path_ = true;
  uint64_t dev_ = 0, ino_ = 0;  // of the file at path_, to tell it from a successor's
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_HANDOVER_H_
