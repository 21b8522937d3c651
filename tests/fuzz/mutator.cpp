#include "tests/fuzz/mutator.h"

namespace attnlab::fuzz {

std::vector<std::string> boundary_numbers() {
  return {"0", "-1", "1", "-0", "255", "65536", "2147483647", "2147483648", "-2147483649",
          "4294967296", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
          "18446744073709551615", "18446744073709551616", "1e30", "1e309", "-1e309", "5.0",
          "0.1", "NaN", "nan", ".inf", "-.inf", "0x10", "1_000"};
}

std::string Mutator::mutate(std::string s, const std::string& other) {
  const int edits = 1 + static_cast<int>(below(8));
  for (int i = 0; i < edits; ++i) {
    const size_t n = s.size();
    const size_t at = static_cast<size_t>(below(n + 1));
    switch (below(8)) {
      case 0:  // flip one bit
        if (n) s[at % n] = static_cast<char>(s[at % n] ^ (1 << below(8)));
        break;
      case 1:  // random byte
        if (n) s[at % n] = static_cast<char>(below(256));
        break;
      case 2:  // insert random bytes
        s.insert(at, std::string(1 + below(8), static_cast<char>(below(256))));
        break;
      case 3: {  // delete a range
        const size_t len = std::min<size_t>(n - std::min(at, n), 1 + below(16));
        s.erase(std::min(at, n), len);
        break;
      }
      case 4: {  // duplicate a range
        if (!n) break;
        const size_t from = at % n, len = std::min<size_t>(n - from, 1 + below(64));
        s.insert(static_cast<size_t>(below(n + 1)), s.substr(from, len));
        break;
      }
      case 5: {  // splice: our head + the other seed's tail
        const size_t cut = other.empty() ? 0 : static_cast<size_t>(below(other.size()));
        s = s.substr(0, std::min(at, n)) + other.substr(cut);
        break;
      }
      default:  // an interesting token, inserted or overwriting
        if (!tokens_.empty()) {
          const std::string& t = tokens_[below(tokens_.size())];
          if (below(2) || at + t.size() > n) s.insert(std::min(at, n), t);
          else s.replace(at, t.size(), t);
        }
        break;
    }
    if (s.size() > (1u << 20)) s.resize(1u << 20);  // keep inputs small and fast
  }
  return s;
}

}  // namespace attnlab::fuzz
