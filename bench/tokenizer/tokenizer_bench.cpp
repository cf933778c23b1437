// tokenizer_bench --tokenizer FILE --text FILE [--repeat N]
// Encodes the whole text file N times on one thread and prints the best throughput:
//   "tokenizer_bench bytes=B tokens=T best_s=S mb_per_s=X"
// (compare_tiktoken.py runs tiktoken on the same text and prints the ratio; docs/tokenizer.md
// records the numbers).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  std::string tokenizer_path, text_path;
  int repeat = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--tokenizer") tokenizer_path = argv[i + 1];
    else if (flag == "--text") text_path = argv[i + 1];
    else if (flag == "--repeat") repeat = std::max(1, std::atoi(argv[i + 1]));
  }
  if (tokenizer_path.empty() || text_path.empty()) {
    std::fprintf(stderr, "usage: tokenizer_bench --tokenizer FILE --text FILE [--repeat N]\n");
    return 2;
  }
  std::ifstream in(text_path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  auto tok = pixtral::tokenizer::Tokenizer::load(tokenizer_path);
  if (!tok.is_ok()) {
    std::fprintf(stderr, "%s\n", tok.status().to_string().c_str());
    return 1;
  }
  double best = 1e30;
  size_t tokens = 0;
  for (int r = 0; r < repeat; ++r) {
    const auto start = std::chrono::steady_clock::now();
    auto ids = (*tok)->encode(text, false, false);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!ids.is_ok()) {
      std::fprintf(stderr, "%s\n", ids.status().to_string().c_str());
      return 1;
    }
    tokens = ids->size();
    best = std::min(best, s);
  }
  std::printf("tokenizer_bench bytes=%zu tokens=%zu best_s=%.6f mb_per_s=%.2f\n", text.size(), tokens, best,
              text.size() / best / 1e6);
  return 0;
}
