#include <fmt/format.h>
#include "framework/model/language_model.h"
int main() {
  for (auto& n : attnlab::MixerRegistry::instance().names()) fmt::print("{}\n", n);
}
