// Tekken encode / decode. ref: spec/inputs.md §2
#include "tokenizer/tokenizer.h"

#include <fstream>
#include <sstream>

#include "base/check.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer_parts.h"
#include "tokenizer/utf8.h"

namespace pixtral::tokenizer {

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

int64_t Tokenizer::vocab_size() const {
  return num_special_ + static_cast<int64_t>(ranks_ ? ranks_->size() : 0);
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::assemble(TokenizerParts parts) {
  PX_CHECK(parts.ranks != nullptr);
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  tok->num_special_ = static_cast<int64_t>(parts.specials.size());
  for (size_t i = 0; i < parts.specials.size(); ++i) {
    if (!tok->special_by_str_.emplace(parts.specials[i], static_cast<TokenId>(i)).second) {
      return invalid_argument("special token '" + parts.specials[i] + "' (id " + std::to_string(i) +
                              ") appears twice; special token strings must be unique");
    }
  }
  if (parts.ranks->size() < 256) return invalid_argument("the BPE vocabulary has fewer than the 256 single bytes");
  for (int b = 0; b < 256; ++b) {
    if (parts.ranks->find(std::string(1, static_cast<char>(b))) == kNoRank) {
      return invalid_argument("the BPE vocabulary lacks the single byte " + std::to_string(b));
    }
  }
  Result<std::unique_ptr<PreTokenizer>> pre = PreTokenizer::compile(parts.pattern);
  if (!pre.is_ok()) return pre.status().with_context("config.pattern");
  tok->pretokenizer_ = std::move(pre).value();
  tok->special_strs_ = std::move(parts.specials);
  tok->ranks_ = std::move(parts.ranks);
  tok->version_ = std::move(parts.version);
  tok->pattern_ = std::move(parts.pattern);
  tok->image_config_ = parts.image;
  auto id_of = [&](const char* s) { return tok->special_id(s).value_or(-1); };
  tok->unk_id_ = id_of("<unk>");
  tok->bos_id_ = id_of("<s>");
  tok->eos_id_ = id_of("</s>");
  tok->pad_id_ = id_of("<pad>");
  return tok;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(path + ": cannot open tokenizer file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return io_error(path + ": read failed");
  const std::string text = buffer.str();
  // HF tokenizer.json has a "model" object with "type": "BPE"; tekken.json has "config"+"vocab".
  // Look near the start only for the cheap decision; the readers validate fully.
  const std::string_view head = std::string_view(text).substr(0, 4096);
  const bool hf = head.find("\"added_tokens\"") != std::string_view::npos ||
                  (head.find("\"config\"") == std::string_view::npos && text.find("\"model\"") != std::string::npos);
  return hf ? from_hf_tokenizer_json(text, path) : from_tekken_json(text, path);
}

void Tokenizer::bpe_piece(std::string_view piece, std::vector<TokenId>* out_ids) const {
  std::vector<Rank> ranks;
  ranks_->encode_piece(piece, &ranks);
  for (Rank r : ranks) out_ids->push_back(static_cast<TokenId>(r));
}

Result<std::vector<TokenId>> Tokenizer::encode(std::string_view text, bool bos, bool eos) const {
  const size_t bad = find_invalid_utf8(text);
  if (bad != std::string_view::npos) {
    return invalid_argument("text to encode is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  }
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 2);
  if (bos) ids.push_back(bos_id_);
  std::vector<Rank> ranks;
  ranks.reserve(text.size() / 3 + 1);
  PX_RETURN_IF_ERROR(pretokenizer_->split(text, [&](std::string_view piece) { ranks_->encode_piece(piece, &ranks); }));
  const TokenId offset = static_cast<TokenId>(num_special_);
  for (Rank r : ranks) ids.push_back(static_cast<TokenId>(r) + offset);
  if (eos) ids.push_back(eos_id_);
  return ids;
}

// Runs of normal ids are byte-concatenated then decoded leniently; runs of special ids follow the
// policy. Decoding runs separately is what makes a character split by a special id two U+FFFD.
// ref: spec/inputs.md §2.3
Result<std::string> Tokenizer::decode(const std::vector<TokenId>& ids, SpecialTokenPolicy policy) const {
  std::string out, run;
  for (size_t i = 0; i < ids.size(); ++i) {
    const TokenId id = ids[i];
    if (!is_valid(id)) {
      return out_of_range("token id " + std::to_string(id) + " at position " + std::to_string(i) +
                          " is outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
    }
    if (!is_special(id)) {
      run.append(ranks_->bytes(static_cast<Rank>(id - num_special_)));
      continue;
    }
    append_utf8_lenient(run, &out);
    run.clear();
    if (policy == SpecialTokenPolicy::kRaise) {
      return invalid_argument("decoding special token id " + std::to_string(id) + " ('" + special_strs_[id] +
                              "') at position " + std::to_string(i) + " is not allowed by the RAISE policy");
    }
    if (policy == SpecialTokenPolicy::kKeep) out.append(special_strs_[id]);
  }
  append_utf8_lenient(run, &out);
  return out;
}

std::string_view Tokenizer::token_bytes(TokenId id) const {
  if (!is_valid(id)) return {};
  if (is_special(id)) return special_strs_[id];
  return ranks_->bytes(static_cast<Rank>(id - num_special_));
}

std::optional<TokenId> Tokenizer::special_id(std::string_view token_str) const {
  auto it = special_by_str_.find(std::string(token_str));
  if (it == special_by_str_.end()) return std::nullopt;
  return it->second;
}

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, SpecialTokenPolicy policy)
    : tokenizer_(tokenizer), policy_(policy) {}

std::string StreamingDetokenizer::push(TokenId id) {
  std::string out;
  if (!tokenizer_.is_valid(id)) return out;
  if (tokenizer_.is_special(id)) {
    out = flush();  // a special id ends the current run, as in decode()
    if (policy_ == SpecialTokenPolicy::kKeep) out.append(tokenizer_.token_bytes(id));
    return out;
  }
  pending_.append(tokenizer_.token_bytes(id));
  const size_t hold = incomplete_utf8_tail(pending_);
  append_utf8_lenient(std::string_view(pending_).substr(0, pending_.size() - hold), &out);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StreamingDetokenizer::flush() {
  std::string out;
  append_utf8_lenient(pending_, &out);
  pending_.clear();
  return out;
}

}  // namespace pixtral::tokenizer
