// Attention of a few queries over a KV cache (a decode step), as a torch custom op:
//
//   llmos::cached_attention(q, k, v, mask, scale, isa=-1, slots=None) -> y
//       q (B, H, T, D), k and v (B, Hkv, S, D), mask (B or 1, 1, T or 1, S) bool: True = may attend;
//       or, with slots (B, S) int64, k and v are pools (N, Hkv, D) and row b's column s is pool row
//       slots[b, s] (a paged cache's layout: read in place, no gather);
//       y (B, H, T, D) = softmax(scale * q k^T, masked) v, laid out as (B, T, H, D) (what the layer's
//       output projection reads, so its transpose back costs no copy).
//       Every tensor is float32 (mask bool) with its last dimension contiguous; D % 16 == 0, D <= 256,
//       H % Hkv == 0. A query that may attend to nothing gets zeros.
//   isa: 0 plain x86-64, 1 avx2, 2 or 3 avx512 (int_dot's numbering, so that LLMOS_INT_DOT_ISA holds
//       both to one path); -1 the best this CPU has.
//
// Why: SDPA's CPU kernel is built for long query blocks. For one query row per head it costs ~30 us a
// layer at 160 cached positions (SmolLM2, 9 heads over 3 key/value heads), most of it set-up, and it
// reads every column, masked or not. Here each (row, query head, query) item scores the columns it
// may see (one dot product a column, summed as a tree), takes the softmax in float32 (a vectorised
// exp) and sums the value rows it weighted, the query and the sum held in registers. Items are split
// over two threads only when there are more than ~256K multiply-adds.
//
// The code is written once on GCC's vector extensions and compiled three times, by inlining it into
// functions with those targets: on 16 floats for AVX-512, 8 for AVX2 + FMA, 4 for plain x86-64 (SSE2);
// the path is chosen at run time by CPUID (or `isa`).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

namespace {

// Vectors of 16, 8 and 4 floats (GCC's vector extensions), loaded and stored unaligned.
typedef float F16 __attribute__((vector_size(64)));
typedef float F8 __attribute__((vector_size(32)));
typedef float F4 __attribute__((vector_size(16)));
typedef int32_t I16 __attribute__((vector_size(64)));
typedef int32_t I8 __attribute__((vector_size(32)));
typedef int32_t I4 __attribute__((vector_size(16)));

template <typename V> struct Lanes;  // per vector type: its width and its integer twin
template <> struct Lanes<F16> { static constexpr int n = 16; using Ints = I16; };
template <> struct Lanes<F8> { static constexpr int n = 8; using Ints = I8; };
template <> struct Lanes<F4> { static constexpr int n = 4; using Ints = I4; };

template <typename V>
inline __attribute__((always_inline)) V load(const float* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

template <typename V>
inline __attribute__((always_inline)) void store(float* p, V v) { __builtin_memcpy(p, &v, sizeof v); }

// The sum of the lanes as a tree (a chain of additions would wait 4 cycles on each).
inline __attribute__((always_inline)) float lane_sum(F4 a) { return (a[0] + a[2]) + (a[1] + a[3]); }
inline __attribute__((always_inline)) float lane_sum(F8 a) {
  return lane_sum(F4(__builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7)));
}
inline __attribute__((always_inline)) float lane_sum(F16 a) {
  return lane_sum(F8(__builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7) +
                     __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15)));
}

// e^x lane by lane for x <= 0, within 2 ulp (0 below -87): Cephes' expf in vector arithmetic.
template <typename V>
inline __attribute__((always_inline)) V exp_nonpositive(V x_in) {
  using Ints = typename Lanes<V>::Ints;
  const V x = x_in < -87.0f ? V{} - 87.0f : x_in;
  const V n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // rounded to an integer (|.| < 2^22)
  const V r = x - n * 0.693359375f + n * 2.12194440e-4f;
  V p = 1.9875691500e-4f * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const Ints bits = (__builtin_convertvector(n, Ints) + 127) << 23;  // 2^n
  return x_in < -87.0f ? V{} : p * reinterpret_cast<V>(bits);
}

// One query head over S columns of D = L * C dimensions, in vectors V of L floats (C a template
// argument where the compiler should keep the query and the output in registers; 0: `c_runtime`).
// Column s is row `rows[s]` of k and v (rows: nullptr for row s). `scores`: room for S rounded up to 16.
template <typename V, int C>
inline __attribute__((always_inline)) void attend_head(const float* q, const float* k, int64_t k_row, const float* v,
                                                        int64_t v_row, const int64_t* rows, const bool* mask,
                                                        int64_t mask_step, int64_t S, int64_t c_runtime, float scale,
                                                        float* scores, float* y) {
  constexpr int L = Lanes<V>::n;
  const int64_t nc = C > 0 ? C : c_runtime;
  V query[C > 0 ? C : 256 / L];
  for (int64_t c = 0; c < nc; ++c) query[c] = load<V>(q + L * c) * scale;
  const float none = -std::numeric_limits<float>::infinity();
  float best = none;
  for (int64_t s = 0; s < S; ++s) {
    float score = none;
    if (mask[s * mask_step]) {
      const float* key = k + (rows ? rows[s] : s) * k_row;
      V dot = query[0] * load<V>(key);
      for (int64_t c = 1; c < nc; ++c) dot += query[c] * load<V>(key + L * c);
      score = lane_sum(dot);
      best = std::max(best, score);
    }
    scores[s] = score;
  }
  const int64_t padded = (S + L - 1) / L * L;
  for (int64_t s = S; s < padded; ++s) scores[s] = none;
  V totals{};
  const float shift = best == none ? 0.0f : best;  // nothing to attend to: every weight is 0
  for (int64_t s = 0; s < padded; s += L) {
    const V weights = exp_nonpositive(load<V>(scores + s) - shift);
    store(scores + s, weights);
    totals += weights;
  }
  V sums[C > 0 ? C : 256 / L];
  for (int64_t c = 0; c < nc; ++c) sums[c] = V{};
  for (int64_t s = 0; s < S; ++s) {
    if (!mask[s * mask_step]) continue;
    const float* value = v + (rows ? rows[s] : s) * v_row;
    const float weight = scores[s];
    for (int64_t c = 0; c < nc; ++c) sums[c] += weight * load<V>(value + L * c);
  }
  const float total = lane_sum(totals), inverse = total > 0.0f ? 1.0f / total : 0.0f;
  for (int64_t c = 0; c < nc; ++c) store(y + L * c, sums[c] * inverse);
}

using Attend = void (*)(const float*, const float*, int64_t, const float*, int64_t, const int64_t*, const bool*,
                        int64_t, int64_t, int64_t, float, float*, float*);

#define LLMOS_ATTEND(NAME, TARGET, V, C)                                                                         \
  TARGET void NAME(const float* q, const float* k, int64_t k_row, const float* v, int64_t v_row,                 \
                   const int64_t* rows, const bool* mask, int64_t mask_step, int64_t S, int64_t c, float scale,    \
                   float* scores, float* y) {                                                                     \
    attend_head<V, C>(q, k, k_row, v, v_row, rows, mask, mask_step, S, c, scale, scores, y);                     \
  }
#define LLMOS_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))
#define LLMOS_AVX2 __attribute__((target("avx2,fma")))
LLMOS_ATTEND(attend_avx512_64, LLMOS_AVX512, F16, 4)
LLMOS_ATTEND(attend_avx512_128, LLMOS_AVX512, F16, 8)
LLMOS_ATTEND(attend_avx512_any, LLMOS_AVX512, F16, 0)
LLMOS_ATTEND(attend_avx2_64, LLMOS_AVX2, F8, 8)
LLMOS_ATTEND(attend_avx2_128, LLMOS_AVX2, F8, 16)
LLMOS_ATTEND(attend_avx2_any, LLMOS_AVX2, F8, 0)
LLMOS_ATTEND(attend_sse_any, , F4, 0)

// The function for a code path and head size, and the vector width it counts D in.
Attend choose(int64_t path, int64_t D, int64_t* lanes) {
  *lanes = path >= 2 ? 16 : path == 1 ? 8 : 4;
  if (path >= 2) return D == 64 ? attend_avx512_64 : D == 128 ? attend_avx512_128 : attend_avx512_any;
  if (path == 1) return D == 64 ? attend_avx2_64 : D == 128 ? attend_avx2_128 : attend_avx2_any;
  return attend_sse_any;
}

int64_t best_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
  return 0;
}

at::Tensor cached_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                            double scale, int64_t isa, const std::optional<at::Tensor>& slots) {
  const bool paged = slots.has_value();
  TORCH_CHECK(q.dim() == 4 && k.dim() == (paged ? 3 : 4) && v.sizes() == k.sizes() && mask.dim() == 4,
              "cached_attention: q (B, H, T, D), k and v (B, Hkv, S, D) or, with slots, (N, Hkv, D), and a 4-D mask; "
              "got ", q.sizes(), k.sizes(), v.sizes(), mask.sizes());
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(1), S = paged ? slots->size(1) : k.size(2);
  TORCH_CHECK(q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat && v.scalar_type() == at::kFloat &&
                  mask.scalar_type() == at::kBool && q.device().is_cpu() && k.device().is_cpu(),
              "cached_attention: float32 q, k, v and a bool mask on the CPU");
  TORCH_CHECK(D % 16 == 0 && D <= 256 && Hkv > 0 && H % Hkv == 0 && k.size(k.dim() - 1) == D &&
                  (paged || k.size(0) == B),
              "cached_attention: head size must be a multiple of 16 up to 256 and H a multiple of Hkv, got q ",
              q.sizes(), " k ", k.sizes());
  TORCH_CHECK(!paged || (slots->dim() == 2 && slots->size(0) == B && slots->scalar_type() == at::kLong &&
                         slots->is_contiguous()),
              "cached_attention: slots must be contiguous int64 (B, S)");
  TORCH_CHECK((mask.size(0) == 1 || mask.size(0) == B) && mask.size(1) == 1 &&
                  (mask.size(2) == 1 || mask.size(2) == T) && mask.size(3) == S,
              "cached_attention: mask must be (B or 1, 1, T or 1, S), got ", mask.sizes());
  TORCH_CHECK(q.stride(3) == 1 && k.stride(k.dim() - 1) == 1 && v.stride(v.dim() - 1) == 1,
              "cached_attention: the head dimension must be contiguous");
  static const int64_t best = best_isa();
  int64_t lanes = 16;
  const Attend attend = choose(isa < 0 ? best : std::min(isa, best), D, &lanes);
  at::Tensor y = at::empty({B, T, H, D}, q.options());
  const int64_t group = H / Hkv, items = B * H * T;
  const float* qp = q.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  const bool* mp = mask.data_ptr<bool>();
  const int64_t* sp = paged ? slots->data_ptr<int64_t>() : nullptr;
  float* yp = y.data_ptr<float>();
  // Per row b and key/value head h: where column 0 is, how far apart columns are (paged: pool rows).
  const int64_t row_stride = paged ? 0 : k.stride(0), head_k = k.stride(1), head_v = v.stride(1);
  const int64_t k_column = paged ? k.stride(0) : k.stride(2), v_column = paged ? v.stride(0) : v.stride(2);
  const int64_t v_row_stride = paged ? 0 : v.stride(0);
  const int64_t mask_row = mask.size(0) == 1 ? 0 : mask.stride(0), mask_query = mask.size(2) == 1 ? 0 : mask.stride(2);
  // Below ~256K multiply-adds (9 heads of 64 over 450 columns) a second thread costs more than it saves.
  const int64_t grain = items * S * D < (1 << 18) ? items : 1;
  at::parallel_for(0, items, grain, [&](int64_t i0, int64_t i1) {
    std::vector<float> scores((S + 15) / 16 * 16);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / (H * T), h = (i / T) % H, t = i % T, kh = h / group;
      attend(qp + b * q.stride(0) + h * q.stride(1) + t * q.stride(2), kp + b * row_stride + kh * head_k, k_column,
             vp + b * v_row_stride + kh * head_v, v_column, paged ? sp + b * S : nullptr,
             mp + b * mask_row + t * mask_query, mask.stride(3), S, D / lanes, static_cast<float>(scale),
             scores.data(), yp + ((b * T + t) * H + h) * D);
    }
  });
  return y.transpose(1, 2);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(llmos, m) {
  m.def("cached_attention(Tensor q, Tensor k, Tensor v, Tensor mask, float scale, int isa=-1, Tensor? slots=None) "
        "-> Tensor");
}

TORCH_LIBRARY_IMPL(llmos, CPU, m) { m.impl("cached_attention", &cached_attention); }
