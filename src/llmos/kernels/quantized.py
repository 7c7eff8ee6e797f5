"""Layer 2b (kernels): weight-only quantized linears, int8 per output channel, int4 and int8 in groups of 32.

A few-row input (decoding) runs on one of two kernels, whichever `choice.int_kernel_for`
measured faster on this machine (LLMOS_INT_KERNEL=int_dot|torch forces one):

- `int_dot` (csrc/int_dot.cpp, see `llmos.kernels.int_dot`): the input is quantized to int8 per
  block of 32 and multiplied with the codes in exact integer dot products (llama.cpp's Q4 x Q8 and
  Q8 x Q8, onnxruntime's MatMulNBits), AVX2 / AVX-512 / VNNI chosen by CPUID. The input's codes
  have 16 bits; with `adaptive_activations` (set by `swap.adapt_activations`, which `use_kernels`
  runs: every quantized linear but the output head) only the blocks that need them do, the others 8. It reads its own
  packed copy of the codes (same values, another byte order) and float32 scales, so GGUF's f16
  scales count exactly. 576 x 1536 int4 mat-vec, 1 thread: 15 us on the AVX2 path against 72 us
  for torch's AVX2 int4 kernel (Xeon with AVX-512 here, torch forced to AVX2).
- torch's own CPU kernels, the ones gpt-fast and torchao use: `_weight_int8pack_mm` and
  `_weight_int4pack_mm_for_cpu`. Those are fast only with bfloat16 activations (on the Zen 3, a
  576 x 1536 int4 mat-vec: ~30 us in bf16, ~960 us in fp32) and take their scales in the
  activation dtype, so the input is rounded to bf16 on the way in and the scales too.
  They serve when the extension cannot be built, or where they measure faster.

A many-row input (prefill, scoring a text) stays on int_dot up to the row count where it still
beats a float GEMM here (`choice.int_dot_rows_limit`, measured: 1024 rows on a Xeon with VNNI);
past it, or on torch's kernels, the weight is dequantized to fp32 (exactly: codes times scales)
and multiplied through oneDNN. `kernel` (also in the repr) names what serves the few-row inputs.

Stored layout (what `state_dict()` holds and `llmos quantize` writes); scales and zeros are bf16
when quantized here (`from_float` rounds them to bf16 first and picks the codes for that), float32
when they come from a GGUF file (its f16 values, exactly):

- Int8Linear: `qweight` int8 (out, in); `scales` (out,). w = qweight * scale.
- Int4Linear: `qweight` uint8 (out, in/2), two 4-bit codes per byte, element
  2j in the low nibble and 2j+1 in the high one; `scales` and `zeros`
  (out, in/32). w = (code - 8) * scale + zero, for each group of 32 inputs.
- GroupInt8Linear: `qweight` int8 (out, in); `scales` (out, in/32).
  w = qweight * scale per group of 32 (GGUF's Q8_0). On torch's kernels it runs on the int4 one
  (torch has no grouped int8 kernel): code = 16 * hi + lo with hi in [-8, 7] and lo in [0, 15]
  makes two 4-bit planes, (hi + 8) with scale 16 d and (lo) with scale d and zero 8 d, over the
  input given twice: exactly d * code per weight.

The kernels' own packed copies are built at load time and never saved.

Shapes the kernels cannot take (int4: out % 16 or in % 32 not 0) stay float;
`quantizable` says which. int_dot needs in % 32 == 0; an int8 layer without it uses torch's kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmos.kernels import int_dot
from llmos.kernels.choice import int_dot_rows_limit, int_kernel_for
from llmos.kernels.onednn import inner_product, usable

GROUP_SIZE = 32
KERNEL_DTYPE = torch.bfloat16  # torch's kernels: activations and scales
FEW_ROWS = 16  # up to this many rows (decode steps) use the quantized kernel; more go dequantized
METHODS = ("int8", "int4")


def float_scales(t: torch.Tensor) -> torch.Tensor:
    """Scales as given when they are floats (bf16 from `from_float`, float32 from GGUF's f16)."""
    return (t if t.is_floating_point() else t.float()).contiguous()


class QuantizedLinear(nn.Module):
    """What the quantized linears share: sizes, an optional float bias, the few/many-rows split, and
    the packed copy for the kernel chosen on this machine (built at init and after every load)."""

    method: str
    torch_kernel: str  # the torch op this class falls back to

    def __init__(self, in_features: int, out_features: int, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.bias = nn.Parameter(bias.detach().float(), requires_grad=False) if bias is not None else None
        self.kernel = "none"  # what serves few-row inputs: "int_dot:<isa>" or "torch:<op>"
        self.uses_int_dot, self.isa = False, -1
        self.adaptive_activations = False  # int_dot: 16-bit activation codes only where needed (`adapt_activations`)
        self.int_dot_rows = 0  # int_dot also serves inputs of up to this many rows (`int_dot_rows_limit`)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, method={self.method}, "
                f"kernel={self.kernel}")

    def _keep_packed_copy(self) -> None:
        for name in ("packed", "packed_scales", "packed_mins"):
            self.register_buffer(name, None, persistent=False)
        self._pack()
        self.register_load_state_dict_post_hook(lambda module, _: module._pack())

    def _pack(self) -> None:
        """Choose the few-row kernel and build its copy of the codes and scales."""
        if self.qweight.device.type == "meta":
            return
        self.uses_int_dot = int_kernel_for(self.method, self.in_features) == "int_dot"
        self.int_dot_rows = int_dot_rows_limit() if self.uses_int_dot else 0
        self.packed = self.packed_scales = self.packed_mins = None
        if self.uses_int_dot:
            self.isa = int_dot.isa_index()
            self.kernel = f"int_dot:{int_dot.isa_name()}"
            self._pack_int_dot()
        else:
            self.kernel = f"torch:{self.torch_kernel}"
            self._pack_torch()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        x2 = x.reshape(rows, x.shape[-1])
        if rows <= FEW_ROWS or rows <= self.int_dot_rows:  # a handful of ops around the kernel
            if self.uses_int_dot:
                y = self._int_dot(x2.float()).to(x.dtype)
            else:
                y = self._torch_kernel(x2.to(KERNEL_DTYPE).contiguous()).to(x.dtype)
            if self.bias is not None:
                y += self.bias
        else:
            y = self._dequantized(x2)
        return y.view(*x.shape[:-1], self.out_features)

    def _dequantized(self, x2: torch.Tensor) -> torch.Tensor:
        """(rows, in) -> (rows, out) through the float weight: one GEMM (the many-rows path)."""
        weight = self.dequantize().to(x2.dtype)
        bias = self.bias.to(x2.dtype) if self.bias is not None else None
        return inner_product(x2.contiguous(), weight, bias) if usable(x2, weight) else F.linear(x2, weight, bias)

    def _pack_int_dot(self) -> None:
        raise NotImplementedError

    def _pack_torch(self) -> None:
        raise NotImplementedError

    def _int_dot(self, x2: torch.Tensor) -> torch.Tensor:
        """(rows, in) float32 -> (rows, out) float32 through int_dot's int8 op (int4 overrides it)."""
        return int_dot.int8_linear(x2, self.packed, self.packed_scales, self.out_features, self.isa,
                                   self.adaptive_activations)

    def _torch_kernel(self, x2: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dequantize(self) -> torch.Tensor:
        """The float32 weight (out, in) these codes and scales stand for."""
        raise NotImplementedError


def aligned(t: torch.Tensor) -> torch.Tensor:
    """`t`, or a copy in torch's own (64-byte aligned) memory: `_weight_int8pack_mm` crashes the
    process (SIGSEGV) on int8 codes at an odd address, as a tensor read from an arbitrary
    offset of a memory-mapped file can be."""
    return t if t.device.type == "meta" or t.data_ptr() % 64 == 0 else t.clone()


class Int8Linear(QuantizedLinear):
    method = "int8"
    torch_kernel = "_weight_int8pack_mm"

    def __init__(self, qweight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__(qweight.shape[1], qweight.shape[0], bias)
        self.register_buffer("qweight", qweight.to(torch.int8).contiguous())
        self.register_buffer("scales", float_scales(scales))
        self._keep_packed_copy()

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None = None) -> Int8Linear:
        """Symmetric per-output-channel int8: scale = max|w| / 127 (rounded to bf16 first, so the
        codes are the nearest ones for the scale torch's kernel will really use)."""
        w = weight.detach().float()
        scales = (w.abs().amax(dim=1) / 127).clamp(min=1e-12).to(KERNEL_DTYPE)
        qweight = torch.round(w / scales.float()[:, None]).clamp(-127, 127).to(torch.int8)
        return cls(qweight, scales, bias)

    def _pack_int_dot(self) -> None:
        self.packed, self.packed_scales = int_dot.pack_int8(self.qweight, self.scales)

    def _pack_torch(self) -> None:
        self.packed, self.packed_scales = aligned(self.qweight), aligned(self.scales.to(KERNEL_DTYPE).contiguous())

    def _torch_kernel(self, x2: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten._weight_int8pack_mm(x2, self.packed, self.packed_scales)

    def dequantize(self) -> torch.Tensor:
        return self.qweight.float() * self.scales.float()[:, None]


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """(out, in) codes 0..15 -> (out, in/2) uint8, element 2j low nibble, 2j+1 high nibble."""
    codes = codes.to(torch.uint8)
    return codes[:, 0::2] | (codes[:, 1::2] << 4)


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """(out, in/2) uint8 -> (out, in) codes 0..15 (uint8)."""
    return torch.stack([packed & 15, packed >> 4], dim=-1).flatten(1)


class GroupedLinear(QuantizedLinear):
    """A linear with a scale per group of 32 inputs; torch's int4 kernel needs out % 16 == 0."""

    def __init__(self, in_features: int, out_features: int, bias: torch.Tensor | None) -> None:
        super().__init__(in_features, out_features, bias)
        if not quantizable(out_features, in_features, "int4"):
            raise ValueError(f"{self.method} needs out % 16 == 0 and in % {GROUP_SIZE} == 0; got "
                             f"({out_features}, {in_features})")


class Int4Linear(GroupedLinear):
    method = "int4"
    torch_kernel = "_weight_int4pack_mm_for_cpu"

    def __init__(self, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                 bias: torch.Tensor | None = None) -> None:
        super().__init__(qweight.shape[1] * 2, qweight.shape[0], bias)
        self.register_buffer("qweight", qweight.to(torch.uint8).contiguous())
        self.register_buffer("scales", float_scales(scales))
        self.register_buffer("zeros", float_scales(zeros))
        self._keep_packed_copy()

    def _pack_int_dot(self) -> None:
        self.packed, self.packed_scales, self.packed_mins = int_dot.pack_int4(self.qweight, self.scales, self.zeros)

    def _pack_torch(self) -> None:
        """torch's own layout: its packed codes and a (in/32, out, 2) bf16 scale/zero table."""
        codes = unpack_nibbles(self.qweight).to(torch.int32)
        self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1)
        self.packed_scales = torch.stack([self.scales.t(), self.zeros.t()], dim=-1).to(KERNEL_DTYPE).contiguous()

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None = None) -> Int4Linear:
        """Asymmetric int4 per group of 32 inputs: the group's [min, max] spread over codes 0..15."""
        w = weight.detach().float()
        groups = w.view(w.shape[0], -1, GROUP_SIZE)
        low, high = groups.amin(dim=-1), groups.amax(dim=-1)
        scales = ((high - low) / 15).clamp(min=1e-12).to(KERNEL_DTYPE)
        zeros = (low + 8 * scales.float()).to(KERNEL_DTYPE)
        codes = torch.round((groups - zeros.float()[..., None]) / scales.float()[..., None] + 8).clamp(0, 15)
        return cls(pack_nibbles(codes.view_as(w)), scales, zeros, bias)

    def _int_dot(self, x2: torch.Tensor) -> torch.Tensor:
        return int_dot.int4_linear(x2, self.packed, self.packed_scales, self.packed_mins, self.out_features,
                                   self.isa, self.adaptive_activations)

    def _torch_kernel(self, x2: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x2, self.packed, GROUP_SIZE, self.packed_scales)

    def dequantize(self) -> torch.Tensor:
        codes = unpack_nibbles(self.qweight).float().view(self.out_features, -1, GROUP_SIZE)
        w = (codes - 8) * self.scales.float()[..., None] + self.zeros.float()[..., None]
        return w.view(self.out_features, self.in_features)


class GroupInt8Linear(GroupedLinear):
    method = "int8-group32"
    torch_kernel = "_weight_int4pack_mm_for_cpu"

    def __init__(self, qweight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__(qweight.shape[1], qweight.shape[0], bias)
        self.register_buffer("qweight", qweight.to(torch.int8).contiguous())
        self.register_buffer("scales", float_scales(scales))
        self._keep_packed_copy()

    def _pack_int_dot(self) -> None:
        self.packed, self.packed_scales = int_dot.pack_int8(self.qweight, self.scales)

    def _pack_torch(self) -> None:
        """Two 4-bit planes for the int4 kernel: [hi + 8 | lo] codes, [(16 d, 0) | (d, 8 d)] per group."""
        q = self.qweight.to(torch.int32)
        hi, lo = q >> 4, q & 15  # q = 16 * hi + lo
        self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(torch.cat([hi + 8, lo], dim=1), 1)
        d = self.scales.float().t()  # (in/32, out)
        high = torch.stack([d * 16, torch.zeros_like(d)], dim=-1)
        low = torch.stack([d, d * 8], dim=-1)
        self.packed_scales = torch.cat([high, low], dim=0).to(KERNEL_DTYPE).contiguous()

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None = None) -> GroupInt8Linear:
        """Symmetric int8 per group of 32 inputs (as GGUF's Q8_0): scale = max|w| / 127."""
        w = weight.detach().float()
        groups = w.view(w.shape[0], -1, GROUP_SIZE)
        scales = (groups.abs().amax(dim=-1) / 127).clamp(min=1e-12).to(KERNEL_DTYPE)
        codes = torch.round(groups / scales.float()[..., None]).clamp(-127, 127).to(torch.int8)
        return cls(codes.view_as(w), scales, bias)

    def _torch_kernel(self, x2: torch.Tensor) -> torch.Tensor:
        doubled = torch.cat([x2, x2], dim=1)
        return torch.ops.aten._weight_int4pack_mm_for_cpu(doubled, self.packed, GROUP_SIZE, self.packed_scales)

    def dequantize(self) -> torch.Tensor:
        groups = self.qweight.float().view(self.out_features, -1, GROUP_SIZE) * self.scales.float()[..., None]
        return groups.view(self.out_features, self.in_features)


def quantizable(out_features: int, in_features: int, method: str) -> bool:
    """Whether a (out, in) weight fits `method`'s kernel."""
    if method == "int4":
        return out_features % 16 == 0 and in_features % GROUP_SIZE == 0
    return True


def quantize_linear(layer: nn.Linear, method: str) -> nn.Module:
    """`layer` as an Int8Linear / Int4Linear, or unchanged when its shape does not fit the kernel."""
    if method not in METHODS:
        raise ValueError(f"quantization {method!r} is not known; expected one of {list(METHODS)}")
    if not quantizable(layer.out_features, layer.in_features, method):
        return layer
    cls = Int8Linear if method == "int8" else Int4Linear
    return cls.from_float(layer.weight, layer.bias)
