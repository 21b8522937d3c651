// ConfigError: every problem found while loading a recipe, each line naming the file, the
// line:column, the dotted YAML path and what was expected. The CLI maps it to exit code 2.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

namespace attnlab {

class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

/// Closest candidate by edit distance, or "" when nothing is close enough to suggest.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace attnlab
