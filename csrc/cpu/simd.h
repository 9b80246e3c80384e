// SIMD helpers of the CPU kernels: 8-wide float vectors (GCC vector extensions) with polynomial exp/log, a
// one-lane double counterpart with the same interface, and the run-time AVX2+FMA check.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#define RL_INLINE inline __attribute__((always_inline))

// 32-byte vectors in the baseline build: GCC notes that their ABI differs without AVX; every function that takes or
// returns one is inlined (and the note comes at the end of the file, so it is silenced for the whole file).
#pragma GCC diagnostic ignored "-Wpsabi"

namespace robustfast {
namespace simd {

// ---------------------------------------------------------------------------------------------------------------
// Vector abstraction. float: 8 lanes of a GCC vector (AVX2 registers in the AVX2 build, SSE pairs otherwise),
// polynomial exp/log (Cephes, ~1-2 ulp). double: one lane, libm.

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

struct SimdF {
  using T = float;
  using V = v8f;
  using M = v8i;  // lane mask: -1 true, 0 false
  static constexpr int W = 8;

  static RL_INLINE V splat(float x) { return V{x, x, x, x, x, x, x, x}; }
  static RL_INLINE M splat_i(int32_t x) { return M{x, x, x, x, x, x, x, x}; }
  static RL_INLINE V select(M m, V a, V b) { return m ? a : b; }
  static RL_INLINE M iota() { return M{0, 1, 2, 3, 4, 5, 6, 7}; }
  static RL_INLINE M lanes_below(int64_t n) { return iota() < splat_i(static_cast<int32_t>(n)); }
  // Lanes of the chunk at i that hold element y.
  static RL_INLINE M lane_is(int64_t i, int64_t y) {
    return (iota() + splat_i(static_cast<int32_t>(i))) == splat_i(static_cast<int32_t>(y));
  }
  static RL_INLINE M all_true() { return splat_i(-1); }
  static RL_INLINE M mnot(M m) { return ~m; }
  static RL_INLINE V vmax(V a, V b) { return a > b ? a : b; }
  static RL_INLINE float hsum(V v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
  }
  static RL_INLINE float hmax(V v) {
    float r = v[0];
    for (int i = 1; i < W; ++i) r = v[i] > r ? v[i] : r;
    return r;
  }

  // e^x for finite x; 0 below about -87.5 (no denormals).
  static RL_INLINE V exp(V x) {
    x = x < splat(-88.0f) ? splat(-88.0f) : x;
    x = x > splat(88.0f) ? splat(88.0f) : x;
    const V magic = splat(12582912.0f);  // 1.5 * 2^23: (t + magic) - magic rounds t to the nearest integer
    const V r = (x * 1.44269504088896341f + magic) - magic;
    V g = x - r * 0.693359375f;
    g = g - r * -2.12194440e-4f;
    V y = splat(1.9875691500e-4f);
    y = y * g + 1.3981999507e-3f;
    y = y * g + 8.3334519073e-3f;
    y = y * g + 4.1665795894e-2f;
    y = y * g + 1.6666665459e-1f;
    y = y * g + 5.0000001201e-1f;
    y = y * (g * g) + g + 1.0f;
    const M n = __builtin_convertvector(r, M);  // in [-127, 127]; -127 gives the bit pattern of +0
    const M bits = (n + 127) << 23;
    return y * __builtin_bit_cast(V, bits);
  }

  // ln x for finite normal x > 0.
  static RL_INLINE V log(V x) {
    const M bits = __builtin_bit_cast(M, x);
    M e = ((bits >> 23) & 0xff) - 126;
    V f = __builtin_bit_cast(V, (bits & 0x007fffff) | 0x3f000000);  // x = f * 2^e, f in [0.5, 1)
    const M small = f < splat(0.707106781186547524f);
    e = e + small;  // small is -1 where true
    f = small ? (f + f) - 1.0f : f - 1.0f;
    const V ef = __builtin_convertvector(e, V);
    const V z = f * f;
    V y = splat(7.0376836292e-2f);
    y = y * f + -1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f + -1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f + -1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f + -2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z;
    y = y + ef * -2.12194440e-4f;
    y = y - 0.5f * z;
    return (f + y) + ef * 0.693359375f;
  }

  template <typename S>
  static RL_INLINE V load(const S* p) {
    V v;
    if constexpr (std::is_same_v<S, float>) {
      std::memcpy(&v, p, sizeof(V));
    } else {
      float t[W];
      for (int i = 0; i < W; ++i) t[i] = static_cast<float>(p[i]);
      std::memcpy(&v, t, sizeof(V));
    }
    return v;
  }
  template <typename S>
  static RL_INLINE V load_partial(const S* p, int64_t n, float fill) {
    float t[W];
    for (int i = 0; i < W; ++i) t[i] = i < n ? static_cast<float>(p[i]) : fill;
    V v;
    std::memcpy(&v, t, sizeof(V));
    return v;
  }
  template <typename S>
  static RL_INLINE void store(S* p, V v) {
    if constexpr (std::is_same_v<S, float>) {
      std::memcpy(p, &v, sizeof(V));
    } else {
      for (int i = 0; i < W; ++i) p[i] = static_cast<S>(v[i]);
    }
  }
  template <typename S>
  static RL_INLINE void store_partial(S* p, V v, int64_t n) {
    for (int i = 0; i < n; ++i) p[i] = static_cast<S>(v[i]);
  }
};

struct SimdD {
  using T = double;
  using V = double;
  using M = bool;
  static constexpr int W = 1;

  static RL_INLINE V splat(double x) { return x; }
  static RL_INLINE V select(M m, V a, V b) { return m ? a : b; }
  static RL_INLINE M lanes_below(int64_t n) { return n > 0; }
  static RL_INLINE M lane_is(int64_t i, int64_t y) { return i == y; }
  static RL_INLINE M all_true() { return true; }
  static RL_INLINE M mnot(M m) { return !m; }
  static RL_INLINE V vmax(V a, V b) { return a > b ? a : b; }
  static RL_INLINE double hsum(V v) { return v; }
  static RL_INLINE double hmax(V v) { return v; }
  static RL_INLINE V exp(V x) { return std::exp(x); }
  static RL_INLINE V log(V x) { return std::log(x); }
  template <typename S>
  static RL_INLINE V load(const S* p) { return static_cast<double>(*p); }
  template <typename S>
  static RL_INLINE V load_partial(const S* p, int64_t, double) { return static_cast<double>(*p); }
  template <typename S>
  static RL_INLINE void store(S* p, V v) { *p = static_cast<S>(v); }
  template <typename S>
  static RL_INLINE void store_partial(S* p, V v, int64_t) { *p = static_cast<S>(v); }
};

template <typename T>
using SimdFor = std::conditional_t<std::is_same_v<T, double>, SimdD, SimdF>;

#if defined(__GNUC__) && defined(__x86_64__)
inline bool cpu_has_avx2_fma() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
}
#endif

}  // namespace simd
}  // namespace robustfast
