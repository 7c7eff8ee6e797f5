// Weight-only int4 / int8 linears with integer-quantized activations (the design of llama.cpp's
// Q4 x Q8 and Q8 x Q8 dot products and onnxruntime's MatMulNBits), as torch custom ops:
//
//   llmos::int4_linear(x, codes, scales, mins, out_features, isa=-1, adaptive=False) -> y
//                                                                w = scale * c + min, c in 0..15
//   llmos::int8_linear(x, codes, scales, out_features, isa=-1, adaptive=False) -> y
//                                                                w = scale * c, c in -128..127
//   llmos::int_dot_best_isa() -> int        0 scalar, 1 avx2, 2 avx512bw, 3 avx512-vnni
//
// x is (rows, in) float32, in = 32 * blocks. Weights are packed at load time (see int_dot.py) in
// groups of 16 output rows ("lanes"), block by block, so that one SIMD register holds 4
// consecutive codes of each of 16 (AVX-512) or 8 (AVX2) output rows, and a u8 x s8 dot
// instruction against 4 broadcast activation codes adds into one int32 per output row:
//   codes  int4: (groups, blocks * 256) bytes; per (group, block) 4 vectors of 64 bytes, vector t
//               holding the codes of inputs 4t..4t+3 (low nibbles) and 4t+16..4t+19 (high nibbles),
//               lane i = output row 16 * group + i.
//          int8: (groups, blocks * 512) bytes; per (group, block) 8 vectors of 64 bytes (inputs
//               4k..4k+3), each code stored as c + 128 (an unsigned byte).
//   scales, mins: (groups, blocks * 16), the 16 rows of a group side by side; float16 when every
//               value is one (GGUF's are: 2 bytes a block less to read, decoding is memory-bound),
//               otherwise float32. Both are converted to float32 exactly.
// Activations get 16 bits per value from two int8 codes: per block of 32, dx = max|x| / 127,
// hi = round(x / dx) and lo = round((x - hi dx) / (dx / 256)) (|lo| <= 127), so that
// x = (256 hi + lo) dx / 256 within dx / 512 (plain int8 codes, as llama.cpp's Q8 activations,
// flip SmolLM2's greedy answers: a 1% error on its head's logits, against 0.005% here). Both
// halves run through the same u8 x s8 instructions against the weight codes, once unpacked;
// a whole block's products add up in integers, exactly, as 256 sum(c hi) + sum(c lo), and float
// enters once per (block, 16 rows):
//   int4: y += scale * dx/256 * sum(c * q) + min * (dx/256 * sum(q))        q = 256 hi + lo
//   int8: y += scale * dx/256 * (sum((c + 128) * q) - 128 * sum(q))
// With `adaptive`, only the blocks that need them keep their lo codes: those where one value holds
// more than half of the block's energy (max x^2 > sum x^2 / 2), whose other values 8-bit steps of
// max|x| / 127 would blur. Elsewhere lo is 0 (the formulas stand) and the kernels skip its
// products when no row of a tile needs them, so such a block costs half. On SmolLM2 a fifth of
// the blocks keep their lo codes while decoding; its perplexity moves +0.038% from fp32, against
// +0.23% with 8-bit codes everywhere (and 0.000% with 16 everywhere).
// The dot instructions: vpmaddubsw (AVX2, AVX-512BW; int4 sums stay in int16 for a whole block:
// 8 steps x 2 x 15 x 127 < 32768; int8 takes |c| times q with c's sign, since (c + 128) q pairs
// would overflow int16 and |c| q pairs do not) and vpdpbusd (AVX-512 VNNI, int32 sums).
//
// Every SIMD path is compiled with function-level target attributes (the AVX-512 code is included
// twice under two `#pragma GCC target` regions), and the path is chosen at run time by CPUID, so
// one build runs on any x86-64 host. Groups of output rows are split over torch's intra-op
// threads (at::parallel_for); each worker writes its own columns of y.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr int64_t kBlock = 32;
constexpr int64_t kLanes = 16;  // output rows per group

enum Isa : int64_t { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Vnni = 3 };

// Activations quantized per block of 32, computed once per call and shared by every output row.
struct QuantizedRows {
  const int8_t* q;     // (rows, blocks, 64): a block's 32 hi codes, then its 32 lo codes
  const float* d;      // (rows, blocks): dx / 256, the scale of q = 256 hi + lo
  const float* s;      // (rows, blocks): dx / 256 * sum(q)
  const int32_t* sum;  // (rows, blocks): sum(q) = 256 sum(hi) + sum(lo)
  const uint8_t* fine;  // (rows, blocks): 1 where the block's lo codes are not all 0 by choice (see the top)
  int64_t rows, blocks;
};

constexpr int64_t kRowBytes = 2 * kBlock;  // bytes of activation codes per block

struct PackedWeights {
  const uint8_t* codes;  // (groups, blocks * bytes per block)
  const void* d;         // (groups, blocks, 16) float16 (half) or float32
  const void* m;         // (groups, blocks, 16), like d; int4 only
  bool half;
  int64_t out, blocks;
};

// Scale i of a (d or m) table, in float32.
inline float scale_at(const void* table, bool half, int64_t i) {
  if (half) return static_cast<float>(c10::Half(static_cast<const uint16_t*>(table)[i], c10::Half::from_bits()));
  return static_cast<const float*>(table)[i];
}

// The 4 activation codes at `q` as one int32 (to broadcast to every lane).
inline int32_t four_codes(const int8_t* q) {
  int32_t v;
  __builtin_memcpy(&v, q, 4);
  return v;
}

// ---------------------------------------------------------------- scalar (any CPU; the reference)

void int4_scalar(const QuantizedRows& a, const PackedWeights& w, float* y, int64_t g0, int64_t g1) {
  for (int64_t g = g0; g < g1; ++g) {
    for (int64_t r = 0; r < a.rows; ++r) {
      float acc[kLanes] = {};
      for (int64_t b = 0; b < a.blocks; ++b) {
        const uint8_t* codes = w.codes + (g * a.blocks + b) * 256;
        const int8_t* q = a.q + (r * a.blocks + b) * kRowBytes;
        const int64_t first = (g * a.blocks + b) * kLanes;
        for (int i = 0; i < kLanes; ++i) {
          int32_t sum = 0;
          for (int t = 0; t < 4; ++t) {
            for (int k = 0; k < 4; ++k) {
              const int byte = codes[t * 64 + i * 4 + k], lo = byte & 15, hi = byte >> 4;
              sum += lo * (256 * q[4 * t + k] + q[32 + 4 * t + k]) +
                     hi * (256 * q[4 * t + 16 + k] + q[32 + 4 * t + 16 + k]);
            }
          }
          acc[i] += scale_at(w.d, w.half, first + i) * a.d[r * a.blocks + b] * static_cast<float>(sum) +
                    scale_at(w.m, w.half, first + i) * a.s[r * a.blocks + b];
        }
      }
      for (int64_t i = 0; i < kLanes && g * kLanes + i < w.out; ++i) y[r * w.out + g * kLanes + i] = acc[i];
    }
  }
}

void int8_scalar(const QuantizedRows& a, const PackedWeights& w, float* y, int64_t g0, int64_t g1) {
  for (int64_t g = g0; g < g1; ++g) {
    for (int64_t r = 0; r < a.rows; ++r) {
      float acc[kLanes] = {};
      for (int64_t b = 0; b < a.blocks; ++b) {
        const uint8_t* codes = w.codes + (g * a.blocks + b) * 512;
        const int8_t* q = a.q + (r * a.blocks + b) * kRowBytes;
        const int64_t first = (g * a.blocks + b) * kLanes;
        for (int i = 0; i < kLanes; ++i) {
          int32_t sum = 0;
          for (int k = 0; k < 32; ++k) sum += (codes[(k / 4) * 64 + i * 4 + k % 4] - 128) * (256 * q[k] + q[32 + k]);
          acc[i] += scale_at(w.d, w.half, first + i) * a.d[r * a.blocks + b] * static_cast<float>(sum);
        }
      }
      for (int64_t i = 0; i < kLanes && g * kLanes + i < w.out; ++i) y[r * w.out + g * kLanes + i] = acc[i];
    }
  }
}

// Whether an adaptive quantizer keeps a block's lo codes: one value holds over half its energy.
inline bool needs_lo(float amax, float energy) { return 2.0f * amax * amax > energy; }

// sum x^2 over a block, in one order (every code path decides alike).
inline float block_energy(const float* xb) {
  float energy = 0.0f;
  for (int i = 0; i < kBlock; ++i) energy = std::fma(xb[i], xb[i], energy);
  return energy;
}

// hi and lo codes of each block (see the top); quantize_avx2 computes the same bits.
void quantize_scalar(const float* x, int64_t rows, int64_t blocks, bool adaptive, int8_t* q, float* d, float* s,
                     int32_t* sums, uint8_t* fine) {
  for (int64_t rb = 0; rb < rows * blocks; ++rb) {
    const float* xb = x + rb * kBlock;
    int8_t* codes = q + rb * kRowBytes;
    float amax = 0.0f;
    for (int i = 0; i < kBlock; ++i) amax = std::max(amax, std::fabs(xb[i]));
    fine[rb] = !adaptive || needs_lo(amax, block_energy(xb));
    const float dx = amax / 127.0f;
    const float inverse = dx != 0.0f ? 1.0f / dx : 0.0f;
    int32_t sum_hi = 0, sum_lo = 0;
    for (int i = 0; i < kBlock; ++i) {
      const float hi = std::nearbyint(xb[i] * inverse);
      const float lo = fine[rb] ? std::nearbyint(std::fma(-hi, dx, xb[i]) * (256.0f * inverse)) : 0.0f;
      codes[i] = static_cast<int8_t>(hi);
      codes[kBlock + i] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, lo)));
      sum_hi += codes[i];
      sum_lo += codes[kBlock + i];
    }
    const int32_t sum = 256 * sum_hi + sum_lo;
    d[rb] = dx / 256.0f;
    s[rb] = d[rb] * static_cast<float>(sum);
    sums[rb] = sum;
  }
}

// Ask for the weight codes kPrefetchBlocks blocks past `block` (BYTES a block). A decode step reads
// every weight once (~96 MB for SmolLM2), and with the hardware prefetcher alone the kernels waited
// on memory (benchmarks/int_kernels.py, the whole step: 5.0-5.3 ms before, 4.6-4.8 after with VNNI;
// 6.3-6.7 and 5.8-5.9 with AVX2). Reaching past the end is harmless: a prefetch never faults.
constexpr int64_t kPrefetchBlocks = 8;

template <int64_t BYTES>
inline void prefetch_ahead(const uint8_t* block) {
  for (int64_t line = 0; line < BYTES; line += 64) __builtin_prefetch(block + kPrefetchBlocks * BYTES + line);
}

// Whether any of the NR rows from r0 keeps lo codes in block b (else their lo products are all 0).
template <int NR>
inline bool any_fine(const QuantizedRows& a, int64_t r0, int64_t b) {
  bool any = false;
  for (int j = 0; j < NR; ++j) any |= a.fine[(r0 + j) * a.blocks + b] != 0;
  return any;
}

// Output groups [g0, g1) of a SIMD kernel for every activation row, in tiles of up to TILE_ROWS
// rows (TILE<NR, HALF>(a, first row, w, group, y) is a template inlined into each target function).
#define LLMOS_TILES(TILE, TILE_ROWS, HALF)                                                \
  for (int64_t g = g0; g < g1; ++g) {                                                     \
    int64_t r = 0;                                                                        \
    for (; r + TILE_ROWS <= a.rows; r += TILE_ROWS) TILE<TILE_ROWS, HALF>(a, r, w, g, y); \
    switch (a.rows - r) {                                                                 \
      case 3: TILE<3, HALF>(a, r, w, g, y); break;                                        \
      case 2: TILE<2, HALF>(a, r, w, g, y); break;                                        \
      case 1: TILE<1, HALF>(a, r, w, g, y); break;                                        \
      default: break;                                                                     \
    }                                                                                     \
  }
#define LLMOS_FOR_TILES(TILE, TILE_ROWS) \
  if (w.half) {                          \
    LLMOS_TILES(TILE, TILE_ROWS, true)   \
  } else {                               \
    LLMOS_TILES(TILE, TILE_ROWS, false)  \
  }

}  // namespace

#include "int_dot_avx2.inc"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#define ISA_NAME(name) name##_avx512
#include "int_dot_avx512.inc"
#undef ISA_NAME
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma")
#define ISA_NAME(name) name##_avx512_vnni
#define LLMOS_VNNI 1
#include "int_dot_avx512.inc"
#undef LLMOS_VNNI
#undef ISA_NAME
#pragma GCC pop_options

namespace {

int64_t best_isa() {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (avx512 && __builtin_cpu_supports("avx512vnni")) return kAvx512Vnni;
  if (avx512) return kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) return kAvx2;
  return kScalar;
}

int64_t checked_isa(int64_t isa) {
  static const int64_t best = best_isa();
  if (isa < 0) return best;
  TORCH_CHECK(isa <= best, "int_dot: code path ", isa, " is not supported by this CPU (best: ", best,
              "; 0 scalar, 1 avx2, 2 avx512bw, 3 avx512-vnni)");
  return isa;
}

// x quantized per block of 32 into thread-local buffers, reused from call to call.
QuantizedRows quantize_rows(const float* x, int64_t rows, int64_t blocks, bool adaptive, int64_t isa) {
  thread_local std::vector<int8_t> q;
  thread_local std::vector<float> d, s;
  thread_local std::vector<int32_t> sums;
  thread_local std::vector<uint8_t> fine;
  q.resize(rows * blocks * kRowBytes);
  d.resize(rows * blocks);
  s.resize(rows * blocks);
  sums.resize(rows * blocks);
  fine.resize(rows * blocks);
  (isa == kScalar ? quantize_scalar : quantize_avx2)(x, rows, blocks, adaptive, q.data(), d.data(), s.data(),
                                                     sums.data(), fine.data());
  return {q.data(), d.data(), s.data(), sums.data(), fine.data(), rows, blocks};
}

using Kernel = void (*)(const QuantizedRows&, const PackedWeights&, float*, int64_t, int64_t);

at::Tensor run(const at::Tensor& x_in, const at::Tensor& codes, const at::Tensor& scales, const void* mins,
               int64_t out, int64_t isa, bool adaptive, int64_t bytes_per_block, const Kernel (&kernels)[4]) {
  TORCH_CHECK(x_in.dim() == 2 && x_in.scalar_type() == at::kFloat && x_in.device().is_cpu(),
              "int_dot: x must be a 2-D float32 CPU tensor, got ", x_in.sizes(), " ", x_in.scalar_type());
  const int64_t rows = x_in.size(0), in = x_in.size(1), blocks = in / kBlock, groups = (out + kLanes - 1) / kLanes;
  TORCH_CHECK(in % kBlock == 0, "int_dot: in_features must be a multiple of 32, got ", in);
  TORCH_CHECK(codes.dim() == 2 && codes.is_contiguous() && codes.element_size() == 1 && codes.size(0) == groups &&
                  codes.size(1) == blocks * bytes_per_block,
              "int_dot: codes must be contiguous bytes (", groups, ", ", blocks * bytes_per_block, ") for ", out,
              " x ", in, ", got ", codes.sizes());
  const bool half = scales.scalar_type() == at::kHalf;
  TORCH_CHECK((half || scales.scalar_type() == at::kFloat) && scales.is_contiguous() &&
                  scales.numel() == groups * blocks * kLanes,
              "int_dot: scales must be contiguous float16 or float32 (", groups, ", ", blocks * kLanes, ")");
  isa = checked_isa(isa);
  const at::Tensor x = x_in.contiguous();
  at::Tensor y = at::empty({rows, out}, x.options());
  if (rows == 0 || out == 0) return y;
  const QuantizedRows a = quantize_rows(x.data_ptr<float>(), rows, blocks, adaptive, isa);
  const PackedWeights w{codes.data_ptr<uint8_t>(), scales.data_ptr(), mins, half, out, blocks};
  const Kernel kernel = kernels[isa];
  float* yp = y.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, 512 / std::max<int64_t>(blocks * rows, 1));  // >= ~256K MACs a task
  at::parallel_for(0, groups, grain, [&](int64_t g0, int64_t g1) { kernel(a, w, yp, g0, g1); });
  return y;
}

at::Tensor int4_linear(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, const at::Tensor& mins,
                       int64_t out, int64_t isa, bool adaptive) {
  TORCH_CHECK(codes.scalar_type() == at::kByte, "int_dot: int4 codes must be uint8");
  TORCH_CHECK(mins.sizes() == scales.sizes() && mins.scalar_type() == scales.scalar_type() && mins.is_contiguous(),
              "int_dot: mins must be contiguous and shaped and typed like scales");
  static const Kernel kernels[4] = {int4_scalar, int4_avx2, int4_avx512, int4_avx512_vnni};
  return run(x, codes, scales, mins.data_ptr(), out, isa, adaptive, 256, kernels);
}

at::Tensor int8_linear(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, int64_t out,
                       int64_t isa, bool adaptive) {
  TORCH_CHECK(codes.scalar_type() == at::kByte, "int_dot: int8 codes must be stored as uint8 (code + 128)");
  static const Kernel kernels[4] = {int8_scalar, int8_avx2, int8_avx512, int8_avx512_vnni};
  return run(x, codes, scales, nullptr, out, isa, adaptive, 512, kernels);
}

int64_t int_dot_best_isa() { return checked_isa(-1); }

}  // namespace

TORCH_LIBRARY_FRAGMENT(llmos, m) {
  m.def("int4_linear(Tensor x, Tensor codes, Tensor scales, Tensor mins, int out_features, int isa=-1, "
        "bool adaptive=False) -> Tensor");
  m.def("int8_linear(Tensor x, Tensor codes, Tensor scales, int out_features, int isa=-1, "
        "bool adaptive=False) -> Tensor");
  m.def("int_dot_best_isa() -> int", &int_dot_best_isa);
}

TORCH_LIBRARY_IMPL(llmos, CPU, m) {
  m.impl("int4_linear", &int4_linear);
  m.impl("int8_linear", &int8_linear);
}
