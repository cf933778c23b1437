#include "base/thread_pool.h"

#include <algorithm>
#include <cstdlib>

namespace pixtral::base {

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) {
    const char* env = std::getenv("PIXTRAL_THREADS");
    num_threads = env ? std::atoi(env) : static_cast<int>(std::thread::hardware_concurrency());
    num_threads = std::max(1, num_threads);
  }
  for (int i = 0; i + 1 < num_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool;
  return pool;
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk) {
  if (n <= 0) return;
  const int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk));
  const int64_t chunks = std::min<int64_t>(max_chunks, static_cast<int64_t>(num_threads()) * 4);
  if (chunks <= 1 || workers_.empty()) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    job_n_ = n;
    num_chunks_ = chunks;
    job_chunk_ = (n + chunks - 1) / chunks;
    next_chunk_ = 0;
    chunks_done_ = 0;
    ++generation_;
  }
  start_cv_.notify_all();
  // The caller works too.
  for (;;) {
    int64_t c;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (next_chunk_ >= num_chunks_) break;
      c = next_chunk_++;
    }
    const int64_t b = c * job_chunk_, e = std::min(n, b + job_chunk_);
    if (b < e) fn(b, e);
    std::lock_guard<std::mutex> lock(mutex_);
    if (++chunks_done_ == num_chunks_) done_cv_.notify_all();
  }
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [&] { return chunks_done_ == num_chunks_; });
  job_ = nullptr;
}

void ThreadPool::worker_loop(int /*index*/) {
  uint64_t seen = 0;
  for (;;) {
    std::unique_lock<std::mutex> lock(mutex_);
    start_cv_.wait(lock, [&] { return stop_ || (generation_ != seen && job_ != nullptr); });
    if (stop_) return;
    seen = generation_;
    while (job_ != nullptr && next_chunk_ < num_chunks_) {
      const int64_t c = next_chunk_++;
      const auto* fn = job_;
      const int64_t n = job_n_, chunk = job_chunk_;
      lock.unlock();
      const int64_t b = c * chunk, e = std::min(n, b + chunk);
      if (b < e) (*fn)(b, e);
      lock.lock();
      if (++chunks_done_ == num_chunks_) done_cv_.notify_all();
    }
  }
}

}  // namespace pixtral::base
