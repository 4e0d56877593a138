#include "pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <cstdlib>

namespace mlx_shim::kernels::detail {

Pool& Pool::get() {
  // Never destroyed: workers block on the condition variable until exit.
  static Pool* pool = new Pool();
  return *pool;
}

void Pool::run(size_t n, const std::function<void(size_t)>& task) {
  if (n == 0) return;
  std::unique_lock<std::mutex> busy(run_mutex_, std::defer_lock);
  if (n == 1 || workers_.empty() || !busy.try_lock()) {
    for (size_t i = 0; i < n; ++i) task(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &task;
    count_ = n;
    next_.store(0, std::memory_order_relaxed);
    open_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  work(task, n);
  // Workers that have not joined by now never will (a busy machine may not
  // schedule them soon): close the job and wait only for those inside.
  std::unique_lock<std::mutex> lock(mutex_);
  open_ = false;
  if (hot()) {
    lock.unlock();
    while (active_.load(std::memory_order_acquire) != 0) pause();
    lock.lock();
  } else {
    done_.wait(lock, [&] { return active_.load() == 0; });
  }
  task_ = nullptr;
}

Pool::Pool() {
  int n = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* v = std::getenv("MLX_ASR_THREADS")) n = std::atoi(v);
  n = std::clamp(n, 1, 64);
  for (int i = 1; i < n; ++i) workers_.emplace_back([this] { loop(); });
}

void Pool::pause() {
#if defined(__x86_64__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

void Pool::work(const std::function<void(size_t)>& task, size_t n) {
  for (size_t i = next_.fetch_add(1); i < n; i = next_.fetch_add(1)) task(i);
}

void Pool::loop() {
  uint64_t seen = 0;
  for (;;) {
    while (hot() && generation_.load(std::memory_order_acquire) == seen) pause();
    const std::function<void(size_t)>* task;
    size_t n;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      bool fresh = generation_.load() != seen && open_;
      if (!fresh && hot()) {
        // A job that closed before this worker came: skip it, keep spinning.
        seen = generation_.load();
        continue;
      }
      wake_.wait(lock, [&] { return generation_.load() != seen && open_; });
      seen = generation_.load();
      task = task_;
      n = count_;
      active_.fetch_add(1, std::memory_order_acq_rel);
    }
    work(*task, n);
    std::lock_guard<std::mutex> lock(mutex_);
    if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.notify_one();
  }
}

}  // namespace mlx_shim::kernels::detail
