"""Layer 7: a KV cache whose rows are independent requests (continuous batching).

It speaks the model's cache protocol (`length`, `update`, `advance`) so the
unchanged `CausalLM.forward` decodes every active request in one pass. Rows
are kept *right-aligned*: every active row's history ends at the absolute
column `end`, row r occupying columns [start_r, end). That makes the
per-step attention mask a simple "columns from start_r on" test and keeps
relative distances (causality, sliding windows) right.

The model sees only the live window [start, end), start = min_r start_r:
`length` is the window's width, so attention costs what the longest active
request needs, however long the server has been running; columns left of
`start` are stale padding and are never read. When the window would run off
the buffer's right edge it is copied back to column 0 (rare: once per
max_len - longest steps). When every active row starts at `start` (always
so for a single row), no mask is needed at all.

Active rows are packed at the front ([0, active)); retiring a row moves the
last active row into its place, so a decode step only touches live rows.

The storage and the per-step write are the model's (`llmos.model.cache.KVBuffer`,
which `KVCache` is built on too); what is the slot cache's own is the
bookkeeping above: per-row starts, the live window, compaction, and rows joining
and leaving. That is why it is a sibling of `KVCache` rather than a `KVCache`: a
`KVCache` has one `length` for all rows and never drops one.
"""

from __future__ import annotations

import torch

from llmos.config import ModelConfig
from llmos.model.attention import build_attention_mask
from llmos.model.cache import KVBuffer


class SlotCache(KVBuffer):
    def __init__(
        self,
        config: ModelConfig,
        max_batch: int,
        max_len: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(config, max_batch, max_len, dtype, device)
        self.max_batch = max_batch
        self.end = 0  # absolute column where every active row's history ends
        self.start = 0  # leftmost column any active row uses
        self.active = 0  # rows [0, active) are live
        self.row_starts: list[int] = []  # start_r (absolute column) for each active row

    # -- the model's cache protocol -------------------------------------------------
    @property
    def length(self) -> int:
        """Width of the live window: the model's "past" for the next step."""
        return self.end - self.start

    def positions(self, T: int, device: torch.device) -> torch.Tensor:
        """Window-relative columns of the next T tokens (the model's protocol; `update` writes at `end`)."""
        return torch.arange(self.length, self.length + T, device=device)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor,
               cache_position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (active, Hkv, T, D) at the end; return the live window of live rows."""
        rows, end = k.shape[0], self.store(layer, k, v, self.end)
        return self.k[layer][:rows, :, self.start : end], self.v[layer][:rows, :, self.start : end]

    def attention_mask(self, cache_position: torch.Tensor, attention_mask: torch.Tensor | None,
                       sliding_window: int | None) -> torch.Tensor | None:
        """The mask over the live window (see `decode_inputs`), or None when nothing is hidden."""
        return build_attention_mask(attention_mask, self.active, self.length, cache_position.shape[0], True,
                                    sliding_window, cache_position.device)[0]

    def advance(self, n: int) -> None:
        self.end += n

    # -- what the engine needs --------------------------------------------------------
    @property
    def free_rows(self) -> int:
        return self.max_batch - self.active

    @property
    def row_lengths(self) -> list[int]:
        """Tokens of history per active row."""
        return [self.end - s for s in self.row_starts]

    def decode_inputs(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(attention_mask (active, length + 1) or None, position_ids (active, 1)) for one step.

        Narrows the window to the longest active row and makes room for the
        column this step writes. The mask is None when every row spans the
        whole window (nothing to hide).
        """
        self.start = min(self.row_starts, default=self.end)
        if self.end + 1 > self.max_len:
            self.compact()
        device = self.k[0].device
        starts = torch.tensor(self.row_starts, device=device)  # (active,)
        positions = (self.end - starts)[:, None]
        if all(s == self.start for s in self.row_starts):
            return None, positions
        columns = torch.arange(self.start, self.end + 1, device=device)
        mask = columns[None, :] >= starts[:, None]  # own history + the new token
        return mask.long(), positions

    def compact(self) -> None:
        """Copy the live window back to column 0 (the columns left of it are padding)."""
        self.start = min(self.row_starts, default=self.end)
        shift, width, rows = self.start, self.end - self.start, self.active
        if shift <= 0:
            return
        if rows and width:
            self._shift(slice(0, rows), slice(0, width), slice(shift, self.end))
        self.row_starts = [s - shift for s in self.row_starts]
        self.start, self.end = 0, width

    def _shift(self, rows: slice, to: slice, source: slice) -> None:
        """Move columns `source` of `rows` to columns `to`, in every layer (the ranges may overlap)."""
        for buffer in (*self.k, *self.v):
            buffer[rows, :, to] = buffer[rows, :, source].clone()

    def insert(self, prefilled: KVBuffer, source_row: int, columns: slice) -> int:
        """Add a prefilled request: row `source_row`, `columns` of `prefilled`. Returns its row."""
        if self.active >= self.max_batch:
            raise RuntimeError("no free slot")  # the engine checks free_rows first
        n = columns.stop - columns.start
        if n > self.end:  # shift everyone right so the new row fits, still right-aligned
            grow, rows = n - self.end, self.active
            if rows:
                self._shift(slice(0, rows), slice(grow, n), slice(0, self.end))
            self.row_starts = [s + grow for s in self.row_starts]
            self.start, self.end = self.start + grow, n
        row = self.active
        self.copy_from(prefilled, row, slice(self.end - n, self.end), source_row, columns)
        self.active += 1
        self.row_starts.append(self.end - n)
        self.start = min(self.start, self.end - n) if row else self.end - n
        return row

    def remove(self, row: int) -> int | None:
        """Free `row`; the last active row moves into it. Returns the moved row's old index."""
        last = self.active - 1
        moved = None
        if row != last:
            begin = self.row_starts[last]
            self.copy_from(self, row, slice(begin, self.end), last, slice(begin, self.end))
            self.row_starts[row] = begin
            moved = last
        self.row_starts.pop()
        self.active -= 1
        if self.active == 0:
            self.start = self.end = 0
        return moved
