// The CPU kernels' thread pool: a few persistent workers that split a job's
// rows with the calling thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mlx_shim::kernels::detail {

// Runs `task(i)` for i in [0, n) on the pool's workers and the calling thread.
// One job at a time: a second caller meanwhile runs its tasks alone.
class Pool {
 public:
  static Pool& get();

  // While one is alive, idle workers and a caller waiting for them spin
  // instead of sleeping: a decoder step is some fifty parallel jobs of tens
  // of microseconds, and each futex wake-up on a virtual machine costs about
  // as much as the job.
  class Hot {
   public:
    Hot() { Pool::get().heat(1); }
    ~Hot() { Pool::get().heat(-1); }
    Hot(const Hot&) = delete;
    Hot& operator=(const Hot&) = delete;
  };

  // Opens (+1) or closes (-1) a hold that keeps the pool hot.
  void heat(int delta) { hot_.fetch_add(delta, std::memory_order_acq_rel); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  bool hot() const { return hot_.load(std::memory_order_acquire) > 0; }
  void run(size_t n, const std::function<void(size_t)>& task);

 private:
  Pool();
  static void pause();
  void work(const std::function<void(size_t)>& task, size_t n);
  void loop();

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(size_t)>* task_ = nullptr;
  size_t count_ = 0;
  std::atomic<size_t> next_{0};
  std::atomic<size_t> active_{0};
  bool open_ = false;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> hot_{0};
};

// Splits [0, rows) into chunks over the pool when the work is worth it
// (`cost` is a rough count of element operations for all rows).
template <class F>
void parallel_rows(size_t rows, double cost, F&& f) {
  // Waking a worker costs some microseconds (much more on a busy machine);
  // a hot pool's workers are spinning already, so smaller jobs pay (such as
  // the projections of a decoder step the size of Whisper tiny's).
  auto& pool = Pool::get();
  double serial_below = pool.hot() ? 2.0e4 : 2.0e5;
  size_t chunks = std::min<size_t>(rows, static_cast<size_t>(pool.size()) * 4);
  if (cost < serial_below || chunks <= 1) {
    f(size_t{0}, rows);
    return;
  }
  pool.run(chunks, [&](size_t c) { f(rows * c / chunks, rows * (c + 1) / chunks); });
}

}  // namespace mlx_shim::kernels::detail
