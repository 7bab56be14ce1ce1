// Starting and stopping the nodedns binary under test, with gtest assertions: started means it
// printed "serving on"; stopped means SIGTERM ended it with exit 0 and, in a sanitized build,
// nothing in its log from the sanitizers. Call both through ASSERT_NO_FATAL_FAILURE.
#ifndef NODEDNS_TESTS_TESTING_NODEDNS_PROCESS_H_
#define NODEDNS_TESTS_TESTING_NODEDNS_PROCESS_H_

#include <string>
#include <vector>

#include "tests/testing/process.h"

namespace nodedns::testing {

// `argv` is the whole command line, the binary first. Waits up to 20 s.
void StartNodedns(Process& process, const std::vector<std::string>& argv, const std::string& log);
// SIGTERM, up to 10 s.
void StopNodedns(Process& process);

}  // namespace nodedns::testing

#endif  // NODEDNS_TESTS_TESTING_NODEDNS_PROCESS_H_
