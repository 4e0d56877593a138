#include "isa.h"

#include <atomic>
#include <cstdlib>

namespace mlx_shim::kernels {
namespace {

bool supports(Isa level) {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
              __builtin_cpu_supports("f16c");
  bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl");
  switch (level) {
    case Isa::Baseline:
      return true;
    case Isa::Avx2:
      return avx2;
    case Isa::AvxVnni:
      return avx2 && __builtin_cpu_supports("avxvnni");
    case Isa::Avx512:
      return avx512;
    case Isa::Avx512Vnni:
      return avx512 && __builtin_cpu_supports("avx512vnni");
  }
  return false;
#else
  return level == Isa::Baseline;
#endif
}

// Per level rather than one number: a CPU may have AVX-512 VNNI without
// AVX-VNNI.
struct Supported {
  bool level[5];
  Supported() {
    for (int i = 0; i < 5; ++i) level[i] = supports(static_cast<Isa>(i));
  }
};

const Supported& supported() {
  static const Supported s;
  return s;
}

struct EnvCap {
  Isa cap = Isa::Avx512Vnni;
  std::string problem;
  EnvCap() {
    const char* v = std::getenv("MLX_ASR_ISA");
    if (v == nullptr || *v == '\0') return;
    if (!isa_from_name(v, cap)) {
      cap = Isa::Baseline;
      problem = std::string("MLX_ASR_ISA=") + v +
                " is not an instruction-set level (baseline, avx2, avx-vnni, avx512, "
                "avx512-vnni)";
    }
  }
};

const EnvCap& env_cap() {
  static const EnvCap e;
  return e;
}

std::atomic<int>& cap_now() {
  static std::atomic<int> c{static_cast<int>(env_cap().cap)};
  return c;
}

}  // namespace

const char* isa_name(Isa level) {
  switch (level) {
    case Isa::Baseline:
      return "baseline";
    case Isa::Avx2:
      return "avx2";
    case Isa::AvxVnni:
      return "avx-vnni";
    case Isa::Avx512:
      return "avx512";
    case Isa::Avx512Vnni:
      return "avx512-vnni";
  }
  return "baseline";
}

bool isa_from_name(const std::string& name, Isa& out) {
  for (int i = 0; i < 5; ++i) {
    if (name == isa_name(static_cast<Isa>(i))) {
      out = static_cast<Isa>(i);
      return true;
    }
  }
  return false;
}

bool isa_supports(Isa level) { return supported().level[static_cast<int>(level)]; }

Isa isa_supported() {
  int best = 0;
  for (int i = 0; i < 5; ++i)
    if (supported().level[i]) best = i;
  return static_cast<Isa>(best);
}

Isa isa_active() {
  int best = 0;
  for (int i = 0; i <= static_cast<int>(isa_cap()); ++i)
    if (supported().level[i]) best = i;
  return static_cast<Isa>(best);
}

Isa isa_cap() { return static_cast<Isa>(cap_now().load(std::memory_order_relaxed)); }

Isa set_isa_cap(Isa cap) {
  return static_cast<Isa>(cap_now().exchange(static_cast<int>(cap), std::memory_order_relaxed));
}

std::string isa_env_problem() { return env_cap().problem; }

namespace detail {
bool isa_allows(Isa level) {
  return supported().level[static_cast<int>(level)] && level <= isa_cap();
}
}  // namespace detail

}  // namespace mlx_shim::kernels
