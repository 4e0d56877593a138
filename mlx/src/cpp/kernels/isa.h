// Which instruction-set level the CPU kernels run at: the best this CPU
// has, capped by `MLX_ASR_ISA` in the environment (read once) or by
// set_isa_cap, so that one machine can run, and test, every path below its
// own. Each kernel asks before choosing a path; a path may only be taken
// when its level is at most the active one.
#pragma once

#include <string>

namespace mlx_shim::kernels {

// Ordered: each level includes the ones before it (AVX-VNNI is the 256-bit
// form of the dot-product instructions, found without AVX-512 on Intel's
// Alder Lake and later and with it on Zen 4; a CPU with AVX-512 VNNI but
// not AVX-VNNI, such as Ice Lake, reports the levels it has).
enum class Isa : int {
  Baseline = 0,    // SSE2: portable loops, vectorized by the compiler
  Avx2 = 1,        // AVX2 + FMA + F16C (x86-64-v3)
  AvxVnni = 2,     // + 256-bit vpdpbusd
  Avx512 = 3,      // + AVX-512F/BW/VL
  Avx512Vnni = 4,  // + 512-bit vpdpbusd
};

// The most this CPU supports.
Isa isa_supported();
// Whether this CPU has `level` (whatever the cap).
bool isa_supports(Isa level);
// The highest supported level within the cap: what the kernels run at.
Isa isa_active();
// The cap now (`MLX_ASR_ISA` or the last set_isa_cap; Avx512Vnni when unset).
Isa isa_cap();
// Sets the cap, returns the previous one. Affects kernels run afterwards.
Isa set_isa_cap(Isa cap);
// Whether `MLX_ASR_ISA` holds a name isa_from_name does not know (the cap
// is then Baseline); empty when it is unset or valid.
std::string isa_env_problem();

// Lower-case names: baseline, avx2, avx-vnni, avx512, avx512-vnni.
const char* isa_name(Isa level);
bool isa_from_name(const std::string& name, Isa& out);

namespace detail {
// Whether a path of `level` may run now: supported and within the cap.
bool isa_allows(Isa level);
}  // namespace detail

}  // namespace mlx_shim::kernels
