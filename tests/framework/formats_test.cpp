// File formats: safetensors round trip and malformed input, TensorBoard golden bytes, llm.c
// shards, tokenizers.
#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>

#include <filesystem>

#include <cstring>
#include <fstream>

#include "framework/checkpoint/safetensors.h"
#include "framework/data/gpt2_bpe.h"
#include "framework/data/tokenizer.h"
#include "framework/data/prepare.h"
#include "framework/data/shards.h"
#include "framework/log/tensorboard.h"
#include "tests/common/test_util.h"

namespace attnlab {
namespace {

std::string hex(const std::string& s) {
  std::string out;
  char buf[3];
  for (unsigned char c : s) std::snprintf(buf, sizeof buf, "%02x", c), out += buf;
  return out;
}

TEST(Safetensors, RoundTripKeepsDtypesShapesAndBytes) {
  NamedTensors in = {{"a", at::randn({3, 5})},
                     {"b", at::arange(7, at::kLong)},
                     {"c", at::randn({2, 2}).to(at::kBFloat16)},
                     {"empty", at::randn({0, 4})},
                     {"scalar", at::randn({})}};
  const std::string bytes = encode_safetensors(in, {{"format", "pt"}});
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);  // data starts 8-aligned
  SafetensorsFile out = decode_safetensors(bytes, "mem");
  EXPECT_EQ(out.metadata.at("format"), "pt");
  for (const auto& [name, t] : in) {
    ASSERT_TRUE(out.tensors.count(name)) << name;
    EXPECT_EQ(out.tensors[name].scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(at::equal(out.tensors[name], t)) << name;
  }
}

TEST(Safetensors, MalformedFilesAreClearErrors) {
  const std::string good = encode_safetensors({{"w", at::randn({4})}});
  uint64_t n;
  std::memcpy(&n, good.data(), 8);
  std::string header = good.substr(8, n);
  auto with_header = [&](std::string h) {
    h.append((8 - h.size() % 8) % 8, ' ');
    std::string s(8, '\0');
    uint64_t len = h.size();
    std::memcpy(s.data(), &len, 8);
    return s + h + good.substr(8 + n);
  };
  auto error_of = [](const std::string& bytes) -> std::string {
    try {
      decode_safetensors(bytes, "bad.safetensors");
    } catch (const SafetensorsError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of("abc").find("shorter than the 8-byte"), std::string::npos);
  std::string huge = good;
  uint64_t big = 1ull << 40;
  std::memcpy(huge.data(), &big, 8);
  EXPECT_NE(error_of(huge).find("exceeds the file"), std::string::npos);
  EXPECT_NE(error_of(good.substr(0, good.size() - 4)).find("outside the"), std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"w":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}})")).find("16 bytes for 5 elements"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"w":{"dtype":"Q7","shape":[4],"data_offsets":[0,16]}})")).find("unsupported dtype Q7"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})")).find("hole"),
            std::string::npos);
  EXPECT_NE(error_of(with_header("[1,2]")).find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of(with_header("{nope")).find("not JSON"), std::string::npos);
  EXPECT_EQ(error_of(good), "");
}

TEST(Safetensors, DuplicatesOverflowsAndDeepHeadersAreSafetensorsErrors) {
  auto header_file = [](std::string h, size_t data_bytes) {
    h.append((8 - h.size() % 8) % 8, ' ');
    std::string s(8, '\0');
    uint64_t len = h.size();
    std::memcpy(s.data(), &len, 8);
    return s + h + std::string(data_bytes, '\0');
  };
  auto error_of = [](const std::string& bytes) -> std::string {
    try {
      decode_safetensors(bytes, "bad.safetensors");
    } catch (const SafetensorsError& e) {
      return e.what();
    }  // any other exception type escapes and fails the test
    return "accepted";
  };
  EXPECT_NE(error_of(header_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8))
                .find("duplicate key 'w'"),
            std::string::npos);
  EXPECT_NE(error_of(header_file(R"({"w":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}})", 4))
                .find("duplicate key 'dtype'"),
            std::string::npos);
  // 2^31 x 2^31 x 8 elements of 8 bytes: the byte count wraps to 0 in 64-bit arithmetic.
  EXPECT_NE(error_of(header_file(R"({"w":{"dtype":"F64","shape":[2147483648,2147483648,8],"data_offsets":[0,0]}})", 0))
                .find("overflows"),
            std::string::npos);
  // No elements, but strides of 2^62 x 4 bytes: must not reach at::empty's stride overflow.
  EXPECT_NE(error_of(header_file(R"({"w":{"dtype":"F32","shape":[0,4611686018427387904,4],"data_offsets":[0,0]}})", 0))
                .find("overflows"),
            std::string::npos);
  EXPECT_NE(error_of(header_file(R"({"w":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,0]}})", 0))
                .find("non-negative integers"),
            std::string::npos);
  std::string deep = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":)" + std::string(10000, '[') +
                     std::string(10000, ']') + "}}";
  EXPECT_NE(error_of(header_file(deep, 4)).find("nested deeper"), std::string::npos);
}

TEST(TensorBoard, Crc32cCheckValue) { EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u); }

TEST(TensorBoard, GoldenRecords) {
  // Vectors from docs/formats.md (computed with an independent CRC implementation).
  EXPECT_EQ(hex(tfrecord(event_file_version(1700000000.0))),
            "1800000000000000a37f4b22" "0900000040fc54d9411a0d627261696e2e4576656e743a32" "eced8f9d");
  EXPECT_EQ(hex(tfrecord(event_scalar(1700000000.5, 3, "loss", 2.5f))),
            "1a00000000000000129bd82d" "0900002040fc54d94110032a0d0a0b0a046c6f73731500002040" "8d9f3efa");
}

TEST(Shards, RoundTripNarrowAndWide) {
  const std::string d = testing::temp_dir("shards");
  write_shard(d + "/train_000000.bin", {1, 2, 65535});
  write_shard(d + "/train_000001.bin", {70000, 5});
  Shard a(d + "/train_000000.bin"), b(d + "/train_000001.bin");
  EXPECT_EQ(a.size(), 3);
  EXPECT_EQ(a.token(2), 65535);
  EXPECT_EQ(b.token(0), 70000);
  TokenStream s(d, "train");
  int64_t out[5];
  s.read(0, 5, out);
  EXPECT_EQ(std::vector<int64_t>(out, out + 5), (std::vector<int64_t>{1, 2, 65535, 70000, 5}));
  EXPECT_THROW(s.read(3, 3, out), std::out_of_range);
}

TEST(Shards, CorruptFilesAreRejectedWithTheirName) {
  const std::string d = testing::temp_dir("shards");
  write_shard(d + "/x.bin", {1, 2, 3});
  std::string bytes;
  {
    std::ifstream f(d + "/x.bin", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  auto expect_error = [&](const std::string& content, const std::string& what) {
    std::ofstream(d + "/y.bin", std::ios::binary) << content;
    try {
      Shard s(d + "/y.bin");
      ADD_FAILURE() << "no error for " << what;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(d + "/y.bin"), std::string::npos);
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_error(bytes.substr(0, 100), "shorter than the 1024-byte");
  expect_error(bytes.substr(0, bytes.size() - 2), "header says 3 tokens");
  std::string bad = bytes;
  bad[0] = 'X';
  expect_error(bad, "bad magic");
  expect_error(std::string(1024, '\0'), "bad magic 0");
  // Header alone with a count of -1: the size matches "0 tokens", so only the sign check stops it.
  std::string negative = bytes.substr(0, 1024);
  const int32_t minus_one = -1;
  std::memcpy(negative.data() + 8, &minus_one, 4);
  expect_error(negative, "header says -1 tokens");
  EXPECT_THROW(Shard{d}, ShardError);  // a folder
  EXPECT_THROW(TokenStream(d, "val"), ShardError);
}

TEST(Prepare, SplitsDocumentsDeterministically) {
  const std::string d = testing::temp_dir("prep");
  const std::string corpus = testing::write_corpus(d, 200);
  ByteTokenizer tok;
  auto s1 = prepare_shards({corpus}, tok, d + "/a", 0.1, 3);
  auto s2 = prepare_shards({corpus}, tok, d + "/b", 0.1, 3);
  EXPECT_EQ(s1.documents, 200);
  EXPECT_EQ(s1.train_tokens, s2.train_tokens);
  EXPECT_GT(s1.val_tokens, 0);
  TokenStream train(d + "/a", "train");
  EXPECT_EQ(train.size(), s1.train_tokens);
  EXPECT_EQ(train.max_token(), 256);  // EOT after every document
}

TEST(Tokenizer, ByteRoundTrip) {
  ByteTokenizer t;
  const std::string s = "héllo\n\t!";
  EXPECT_EQ(t.decode(t.encode(s)), s);
  EXPECT_EQ(t.encode("A")[0], 65);
}

TEST(Tokenizer, Gpt2PreTokenizerMatchesThePattern) {
  auto parts = Gpt2Tokenizer::split("Hello world's  end 42x!?\n\nok");
  std::vector<std::string> want = {"Hello", " world", "'s", " ", " end", " 42", "x", "!?", "\n", "\n", "ok"};
  EXPECT_EQ(parts, want);
}

TEST(Tokenizer, Gpt2BpeWithASmallVocabulary) {
  const std::string d = testing::temp_dir("bpe");
  // Byte alphabet for "a b" plus merges "a a" -> "aa", "Ġ aa" -> "Ġaa"; Ġ is the space byte.
  std::ofstream(d + "/vocab.json") << R"({"a":0,"b":1,"Ġ":2,"aa":3,"Ġaa":4,"<|endoftext|>":5})";
  std::ofstream(d + "/merges.txt") << "#version: 0.2\na a\nĠ aa\n";
  Gpt2Tokenizer t(d);
  EXPECT_EQ(t.encode("aa aab"), (std::vector<int32_t>{3, 4, 1}));
  EXPECT_EQ(t.decode({3, 4, 1, 5}), "aa aab");
  EXPECT_EQ(t.eot_id(), 5);
  std::ofstream(d + "/merges.txt") << "#version: 0.2\nbroken\n";
  EXPECT_THROW(Gpt2Tokenizer{d}, std::runtime_error);
}

TEST(Tokenizer, SentencePieceModelRoundTrips) {
  // Trains a tiny unigram model with Debian's spm_train (package `sentencepiece`) on the test
  // corpus, then loads it through the same interface `data prepare` uses.
  const std::string d = testing::temp_dir("spm");
  const std::string corpus = testing::write_corpus(d, 200);
  const std::string cmd = "spm_train --input=" + corpus + " --model_prefix=" + d +
                          "/tiny --vocab_size=40 --hard_vocab_limit=false --model_type=unigram"
                          " --minloglevel=2 >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto t = make_tokenizer("sentencepiece", d + "/tiny.model");
  EXPECT_GT(t->vocab_size(), 3);
  EXPECT_LE(t->vocab_size(), 40);
  const std::string text = "the old dog sat in the garden";
  std::vector<int32_t> ids = t->encode(text);
  EXPECT_FALSE(ids.empty());
  EXPECT_LT(ids.size(), text.size()) << "pieces should span more than one character";
  for (int32_t id : ids) EXPECT_LT(id, t->vocab_size());
  EXPECT_EQ(t->decode(ids), text);
  EXPECT_EQ(t->eot_id(), 2);  // spm_train's default </s> id
  try {
    make_tokenizer("sentencepiece", d + "/missing.model");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.model"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_tokenizer("sentencepiece", ""), std::invalid_argument);
}

}  // namespace
}  // namespace attnlab
