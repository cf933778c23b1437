// StopChecker: stop strings across token boundaries and inside one token, held-back text and its
// release, several stop strings, unicode, include_stop_str_in_output, EOS / stop ids / ignore_eos,
// max_tokens, min_tokens; and the result never depends on how the text was split into tokens.
#include "engine/stop_checker.h"

#include <gtest/gtest.h>

#include <random>

namespace pixtral::engine {
namespace {

constexpr int32_t kText = 100;  // an ordinary token id
constexpr int32_t kEos = 2;

struct Fed {
  std::vector<std::string> released;  // per token
  std::string text;                   // everything released
  StopStep last;
  int64_t tokens = 0;
};

// Appends (kText, piece) for each piece until the checker finishes.
Fed feed(StopConfig config, const std::vector<std::string>& pieces) {
  StopChecker checker(std::move(config));
  Fed run;
  for (const auto& piece : pieces) {
    run.last = checker.append(kText, piece);
    run.released.push_back(run.last.text);
    run.text += run.last.text;
    ++run.tokens;
    if (run.last.finished()) break;
  }
  EXPECT_EQ(run.text, checker.released_text());
  return run;
}

StopConfig stops(std::vector<std::string> s, int64_t max_tokens = 100) {
  return {.max_tokens = max_tokens, .eos_id = kEos, .stop = std::move(s)};
}

TEST(StopChecker, StopStringAcrossTokensIsCutAndNeverShown) {
  const Fed r = feed(stops({"END"}), {"Hello ", "E", "ND", " more"});
  EXPECT_EQ(r.text, "Hello ");
  EXPECT_EQ(r.released, (std::vector<std::string>{"Hello ", "", ""}));
  EXPECT_EQ(r.last.finish, FinishKind::kStop);
  EXPECT_EQ(r.last.stop_string, "END");
  EXPECT_FALSE(r.last.stop_token.has_value());
  EXPECT_STREQ(finish_kind_name(r.last.finish), "stop");
}

TEST(StopChecker, StopStringInsideOneTokenCutsMidToken) {
  const Fed r = feed(stops({"END"}), {"ab", "xxENDyy", "zz"});
  EXPECT_EQ(r.text, "abxx");
  EXPECT_EQ(r.tokens, 2);
  // Ending inside a token and starting in an earlier one.
  EXPECT_EQ(feed(stops({"END"}), {"aE", "Nb", "Dyy"}).text, "aENbDyy");
  EXPECT_EQ(feed(stops({"END"}), {"aEN", "Dyy"}).text, "a");
}

TEST(StopChecker, HeldTextIsReleasedWhenItTurnsOutNotToBeAStop) {
  const Fed r = feed(stops({"END"}), {"ab", "E", "N", "X", "!"});
  EXPECT_EQ(r.released, (std::vector<std::string>{"ab", "", "", "ENX", "!"}));
  EXPECT_EQ(r.last.finish, FinishKind::kNone);
  // Only what can still become a stop string is held: "xE" holds "E", not "x".
  EXPECT_EQ(feed(stops({"END"}), {"xE"}).released, (std::vector<std::string>{"x"}));
}

TEST(StopChecker, OverlappingPrefixesOfAStopString) {
  // "aab" inside "aaab": the held "aa" slides by one.
  const Fed r = feed(stops({"aab"}), {"a", "a", "a", "b"});
  EXPECT_EQ(r.released, (std::vector<std::string>{"", "", "a", ""}));
  EXPECT_EQ(r.text, "a");
  EXPECT_EQ(r.last.stop_string, "aab");
}

TEST(StopChecker, SeveralStopStringsFirstCompletedWins) {
  EXPECT_EQ(feed(stops({"foo", "bar"}), {"x", "bar", "foo"}).last.stop_string, "bar");
  // In one piece: "b" completes before "abc" does, whatever the list order.
  const Fed r = feed(stops({"abc", "b"}), {"abc"});
  EXPECT_EQ(r.text, "a");
  EXPECT_EQ(r.last.stop_string, "b");
  // Two completing at the same byte: the longer one, which started first.
  const Fed same_end = feed(stops({"c", "bc"}), {"abcd"});
  EXPECT_EQ(same_end.text, "a");
  EXPECT_EQ(same_end.last.stop_string, "bc");
  // Held text is the longest suffix any stop string could still grow from.
  EXPECT_EQ(feed(stops({"xyz", "yzw"}), {"axy"}).released, (std::vector<std::string>{"a"}));
}

TEST(StopChecker, Unicode) {
  const Fed r = feed(stops({"世界"}), {"こんにちは", "世", "界!"});
  EXPECT_EQ(r.text, "こんにちは");
  EXPECT_EQ(r.released, (std::vector<std::string>{"こんにちは", "", ""}));
  EXPECT_EQ(feed(stops({"世界"}), {"こんにちは", "世", "間"}).text, "こんにちは世間");
  EXPECT_EQ(feed(stops({"é"}), {"caf", "é au lait"}).text, "caf");
  EXPECT_EQ(feed(stops({"🙂!"}), {"ok 🙂", "?", "🙂", "!x"}).text, "ok 🙂?");
}

TEST(StopChecker, IncludeStopStringInOutput) {
  StopConfig config = stops({"END"});
  config.include_stop_str_in_output = true;
  const Fed r = feed(config, {"Hello E", "ND yy"});
  EXPECT_EQ(r.text, "Hello END");
  // Nothing is held back: the stop string is shown anyway.
  EXPECT_EQ(r.released, (std::vector<std::string>{"Hello E", "ND"}));
}

TEST(StopChecker, EosAndStopTokenIds) {
  StopChecker eos({.max_tokens = 10, .eos_id = kEos, .stop_token_ids = {7}, .stop = {"zz"}});
  EXPECT_EQ(eos.append(kText, "ab z").text, "ab ");
  const StopStep end = eos.append(kEos, "</s>");
  EXPECT_EQ(end.finish, FinishKind::kStop);
  EXPECT_EQ(end.text, "z");  // the held text is released, the EOS text dropped
  EXPECT_FALSE(end.stop_token.has_value());
  EXPECT_FALSE(end.stop_string.has_value());

  StopChecker id({.max_tokens = 10, .eos_id = kEos, .stop_token_ids = {7}});
  id.append(kText, "x");
  const StopStep by_id = id.append(7, "<stop>");
  EXPECT_EQ(by_id.finish, FinishKind::kStop);
  EXPECT_EQ(by_id.stop_token, 7);
  EXPECT_EQ(id.released_text(), "x");

  StopChecker kept({.max_tokens = 10, .stop_token_ids = {7}, .include_stop_str_in_output = true});
  kept.append(7, "<stop>");
  EXPECT_EQ(kept.released_text(), "<stop>");
}

TEST(StopChecker, IgnoreEosRunsToTheLength) {
  StopChecker c({.max_tokens = 3, .eos_id = kEos, .ignore_eos = true});
  EXPECT_FALSE(c.ends_on(kEos));
  EXPECT_FALSE(c.append(kEos, "").finished());
  EXPECT_FALSE(c.append(kEos, "").finished());
  EXPECT_TRUE(c.ends_on(kEos));
  const StopStep last = c.append(kEos, "");
  EXPECT_EQ(last.finish, FinishKind::kLength);
  EXPECT_STREQ(finish_kind_name(last.finish), "length");
}

TEST(StopChecker, MaxTokensReleasesHeldTextAndAStopOnTheLastTokenWins) {
  const Fed r = feed(stops({"END"}, 3), {"a", "b", "EN", "D"});
  EXPECT_EQ(r.last.finish, FinishKind::kLength);
  EXPECT_EQ(r.released, (std::vector<std::string>{"a", "b", "EN"}));
  EXPECT_EQ(r.text, "abEN");
  const Fed stop_last = feed(stops({"END"}, 3), {"a", "E", "ND"});
  EXPECT_EQ(stop_last.last.finish, FinishKind::kStop);
  EXPECT_EQ(stop_last.text, "a");
  // EOS as the last allowed token: "stop".
  StopChecker eos_last({.max_tokens = 2, .eos_id = kEos});
  eos_last.append(kText, "a");
  EXPECT_EQ(eos_last.append(kEos, "").finish, FinishKind::kStop);
}

TEST(StopChecker, MinTokens) {
  StopChecker c({.max_tokens = 10, .min_tokens = 2, .eos_id = kEos, .stop_token_ids = {7}});
  EXPECT_FALSE(c.ends_on(kEos));
  EXPECT_FALSE(c.append(kEos, "").finished());
  EXPECT_FALSE(c.ends_on(7));
  EXPECT_FALSE(c.append(7, "s").finished());
  EXPECT_TRUE(c.ends_on(7));
  EXPECT_EQ(c.append(7, "s").stop_token, 7);
  EXPECT_EQ(c.released_text(), "s");
  // Stop strings completed within the first min_tokens tokens are ignored (vLLM: min_tokens 5,
  // stop "e", " is Lee, and I'm a student" -> " is Lee, and I'm a stud").
  StopConfig config = stops({"e"});
  config.min_tokens = 5;
  EXPECT_EQ(feed(config, {" is", " Lee", ",", " and", " I", "'m", " a", " student", " of"}).text,
            " is Lee, and I'm a stud");
  // One completing after min_tokens counts even when it began before.
  StopConfig straddle = stops({"END"});
  straddle.min_tokens = 2;
  EXPECT_EQ(feed(straddle, {"xEND", "E", "ND"}).text, "xEND");
}

TEST(StopChecker, EndsOnPredictsTokenEnds) {
  StopChecker c({.max_tokens = 4, .eos_id = kEos, .stop_token_ids = {5}});
  EXPECT_TRUE(c.ends_on(kEos));
  EXPECT_TRUE(c.ends_on(5));
  EXPECT_FALSE(c.ends_on(kText));
  for (int i = 0; i < 3; ++i) c.append(kText, "x");
  EXPECT_TRUE(c.ends_on(kText));
}

// The same text split into tokens at random: the answer and the stop string never change, and no
// released piece ever ends inside a stop string that then completes.
TEST(StopChecker, TheSplitIntoTokensDoesNotMatter) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"the quick brown fox jumps over", {"fox", "own f", "quick!"}},
      {"aaaabaaab", {"aab", "ab"}},
      {"no stop string here at all", {"xyz", "herex"}},
      {"ünïcödé ストップ done", {"ストップ", "dé!"}},
  };
  std::mt19937 gen(5);
  for (const auto& [text, stop] : cases) {
    const Fed whole = feed(stops(stop), {text});
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<std::string> pieces;
      for (size_t pos = 0; pos < text.size();) {
        const size_t len = std::min(text.size() - pos, static_cast<size_t>(gen() % 5));
        pieces.push_back(text.substr(pos, len));
        pos += len;
      }
      const Fed r = feed(stops(stop), pieces);
      ASSERT_EQ(r.text, whole.text) << text;
      ASSERT_EQ(r.last.stop_string, whole.last.stop_string) << text;
    }
  }
  EXPECT_EQ(feed(stops({"own f", "fox"}), {"the quick brown fox"}).text, "the quick br");
}

TEST(StopCheckerDeathTest, AppendAfterTheEndIsABug) {
  StopChecker c({.max_tokens = 1});
  c.append(kText, "a");
  EXPECT_DEATH(c.append(kText, "b"), "finished");
}

TEST(StopConfig, FromSamplingParams) {
  const SamplingParams p{.max_tokens = 9, .min_tokens = 2, .ignore_eos = true, .stop_token_ids = {4},
                         .stop = {"x"}, .include_stop_str_in_output = true};
  const StopConfig c = StopConfig::from(p, kEos, 9);
  EXPECT_EQ(c.max_tokens, 9);
  EXPECT_EQ(c.min_tokens, 2);
  EXPECT_EQ(c.eos_id, kEos);
  EXPECT_TRUE(c.ignore_eos);
  EXPECT_EQ(c.stop_token_ids, std::vector<int32_t>{4});
  EXPECT_EQ(c.stop, std::vector<std::string>{"x"});
  EXPECT_TRUE(c.include_stop_str_in_output);
}

}  // namespace
}  // namespace pixtral::engine
