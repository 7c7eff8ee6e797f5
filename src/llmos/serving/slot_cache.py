"""Layer 7: a KV cache whose rows are independent requests (continuous batching).

It speaks the model's cache protocol (`length`, `update`, `advance`) so the
unchanged `CausalLM.forward` decodes every active request in one pass. Rows
are kept *right-aligned*: every active row's history ends at the global
column `length`, row r occupying columns [length - n_r, length). That makes
the per-step attention mask a simple "last n_r columns" test, keeps relative
distances (causality, sliding windows) right, and turns compaction into one
slice: columns left of the longest active row hold only padding.

Active rows are packed at the front ([0, active)); retiring a row moves the
last active row into its place, so a decode step only touches live rows.
"""

from __future__ import annotations

import torch

from llmos.config import ModelConfig


class SlotCache:
    def __init__(
        self,
        config: ModelConfig,
        max_batch: int,
        max_len: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        self.max_len = max_len or config.max_seq_len
        self.max_batch = max_batch
        shape = (config.n_layers, max_batch, config.n_kv_heads, self.max_len, config.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0  # global column count: every active row ends here
        self.active = 0  # rows [0, active) are live
        self.row_lengths: list[int] = []  # n_r for each active row

    # -- the model's cache protocol -------------------------------------------------
    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (active, Hkv, T, D) at the global end; return keys/values of live rows."""
        rows, start, end = k.shape[0], self.length, self.length + k.shape[2]
        self.k[layer, :rows, :, start:end] = k
        self.v[layer, :rows, :, start:end] = v
        return self.k[layer, :rows, :, :end], self.v[layer, :rows, :, :end]

    def advance(self, n: int) -> None:
        self.length += n
        self.row_lengths = [n_r + n for n_r in self.row_lengths]

    # -- what the engine needs --------------------------------------------------------
    @property
    def free_rows(self) -> int:
        return self.max_batch - self.active

    def decode_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(attention_mask (active, length + 1), position_ids (active, 1)) for one decode step.

        Makes room first: the step writes column `length`, which must exist.
        """
        if self.length + 1 > self.max_len:
            self.compact()
        device = self.k.device
        n = torch.tensor(self.row_lengths, device=device)  # (active,)
        columns = torch.arange(self.length + 1, device=device)
        mask = columns[None, :] >= (self.length - n)[:, None]  # own history + the new token
        return mask.long(), n[:, None]

    def compact(self) -> None:
        """Drop the columns left of the longest active row: they are padding for everyone."""
        longest = max(self.row_lengths, default=0)
        shift = self.length - longest
        if shift <= 0:
            return
        rows = self.active
        self.k[:, :rows, :, :longest] = self.k[:, :rows, :, shift:self.length].clone()
        self.v[:, :rows, :, :longest] = self.v[:, :rows, :, shift:self.length].clone()
        self.length = longest

    def insert(self, k: torch.Tensor, v: torch.Tensor) -> int:
        """Add a prefilled request; k, v are (n_layers, Hkv, n, D). Returns its row."""
        if self.active >= self.max_batch:
            raise RuntimeError("no free slot")  # the engine checks free_rows first
        n = k.shape[2]
        self.compact()
        if n > self.length:  # shift everyone right so the new row fits, still right-aligned
            grow, rows = n - self.length, self.active
            if rows:
                self.k[:, :rows, :, grow:n] = self.k[:, :rows, :, : self.length].clone()
                self.v[:, :rows, :, grow:n] = self.v[:, :rows, :, : self.length].clone()
            self.length = n
        row = self.active
        self.k[:, row, :, self.length - n : self.length] = k
        self.v[:, row, :, self.length - n : self.length] = v
        self.active += 1
        self.row_lengths.append(n)
        return row

    def remove(self, row: int) -> int | None:
        """Free `row`; the last active row moves into it. Returns the moved row's old index."""
        last = self.active - 1
        moved = None
        if row != last:
            self.k[:, row, :, : self.length] = self.k[:, last, :, : self.length]
            self.v[:, row, :, : self.length] = self.v[:, last, :, : self.length]
            self.row_lengths[row] = self.row_lengths[last]
            moved = last
        self.row_lengths.pop()
        self.active -= 1
        if self.active == 0:
            self.length = 0
        return moved
