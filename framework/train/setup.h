// Shared run plumbing for train, eval, generate and bench: device choice, data preparation on
// first use, model construction and loading weights from a checkpoint by name.
#pragma once
#include <c10/core/Device.h>

#include <memory>
#include <string>

#include "framework/checkpoint/safetensors.h"
#include "framework/config/run_config.h"
#include "framework/data/shards.h"
#include "framework/data/source.h"
#include "framework/data/tokenizer.h"
#include "framework/model/language_model.h"

namespace attnlab {

c10::Device resolve_device(const TrainConfig& cfg);
/// train.threads must not exceed this machine's cores (oversubscription only slows a run down).
void check_thread_count(const TrainConfig& cfg);
std::unique_ptr<Tokenizer> make_tokenizer(const DataConfig& cfg);
/// Ensures data.dir holds shards (tokenizing data.prepare_from into it if it is empty) and
/// opens one split. Preparation writes to a temp folder and renames, so it is never half done.
std::shared_ptr<const TokenStream> open_split(const RunConfig& cfg, const std::string& split);
/// data.source's batches for `split` ("train" or "val") of data-parallel rank `rank` of `world`
/// (framework/data/source.h); the validation order does not depend on the rank.
std::unique_ptr<DataSource> make_data_source(const RunConfig& cfg, const std::string& split,
                                             int64_t rank = 0, int64_t world = 1);
/// Builds the model with weights drawn from run.seed.
LanguageModel build_model(const RunConfig& cfg, c10::Device device);
NamedTensors named_parameters(const LanguageModel& model);
/// Copies weights by name: exactly the model's tensor set, shapes and dtypes (tensor_copy.h).
void load_weights(LanguageModel& model, const SafetensorsFile& file, const std::string& origin);

}  // namespace attnlab
