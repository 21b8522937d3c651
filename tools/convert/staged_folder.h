// A folder that appears complete or not at all: `fill` writes into <out><suffix>, which is
// renamed to `out` when it returns and removed when it throws (the error propagates). A
// leftover staging folder of a process that died is removed first.
#pragma once
#include <functional>
#include <string>

namespace attnlab::convert {

void write_staged_folder(const std::string& out, const std::string& suffix,
                         const std::function<void(const std::string& staging)>& fill);

}  // namespace attnlab::convert
