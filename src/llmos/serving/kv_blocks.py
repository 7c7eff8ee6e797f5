"""Layer 7: the server's KV memory: fixed-size blocks handed out as requests grow, and kept for reuse.

Keys and values live in per-layer pools of `block_size`-token blocks,
(num_blocks, block_size, H_kv, D) each. A request holds a list of blocks (its
block table) and asks for one more only when its last is full, so memory is
taken as requests need it, never max_batch x context up front. The pools are
allocated with `torch.empty`: the operating system backs a page only once it
is written, so the process's memory grows with use up to the budget
(`num_blocks`), which is the one limit.

Prefix reuse, as vLLM's automatic prefix caching: a block whose tokens are
all computed gets a hash of its tokens chained with its predecessors' (so a
hash names the whole prefix up to the block's end). A new request walks its
prompt's full blocks and takes every block already cached under the same
hash instead of computing it. Blocks are reference counted; a cached block
nobody holds stays cached (least recently used first to go) until its memory
is needed for a new block.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque

import torch

from llmos.config import ModelConfig

NO_HASH = b""


def block_hashes(tokens: list[int], block_size: int, parent: bytes = NO_HASH) -> list[bytes]:
    """The chained hash of every full block of `tokens` (a hash names all tokens up to its block's end)."""
    hashes = []
    for start in range(0, len(tokens) - block_size + 1, block_size):
        digest = hashlib.blake2b(parent, digest_size=16)
        digest.update(b",".join(str(t).encode() for t in tokens[start:start + block_size]))
        parent = digest.digest()
        hashes.append(parent)
    return hashes


class KVPool:
    """The per-layer key and value pools: (num_blocks + 1, block_size, H_kv, D) each, written per token
    slot; the last block takes the keys of padding tokens (a batch of prompt chunks of unequal length)."""

    def __init__(self, config: ModelConfig, num_blocks: int, block_size: int, dtype: torch.dtype,
                 device: torch.device | str) -> None:
        self.num_blocks, self.block_size = num_blocks, block_size
        self.scratch_slot = num_blocks * block_size  # one more block, never handed out: padding writes here
        shape = (num_blocks + 1, block_size, config.n_kv_heads, config.head_dim)
        # empty, not zeros: untouched pages are never backed by memory (it grows with use)
        self.k = [torch.empty(shape, dtype=dtype, device=device) for _ in range(config.n_layers)]
        self.v = [torch.empty(shape, dtype=dtype, device=device) for _ in range(config.n_layers)]

    @staticmethod
    def bytes_per_token(config: ModelConfig, dtype: torch.dtype) -> int:
        return 2 * config.n_layers * config.n_kv_heads * config.head_dim * torch.empty(0, dtype=dtype).element_size()


class BlockManager:
    """Which block holds what: free blocks, reference counts, and the prefix cache (hash -> block)."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.num_blocks, self.block_size = num_blocks, block_size
        self.free: deque[int] = deque(range(num_blocks))  # never used, or given back unhashed
        self.refs = [0] * num_blocks
        self.cached: dict[bytes, int] = {}  # prefix hash -> block
        self.hash_of: dict[int, bytes] = {}
        self.idle: OrderedDict[int, None] = OrderedDict()  # cached blocks nobody holds, oldest first

    @property
    def available(self) -> int:
        """Blocks that can be handed out now (free, or cached and idle: evicted when taken)."""
        return len(self.free) + len(self.idle)

    def used(self) -> int:
        """Blocks in use by requests (the rest are free or only cached)."""
        return self.num_blocks - self.available

    def match(self, hashes: list[bytes]) -> list[int]:
        """The cached blocks of the longest cached prefix with these block hashes (not yet held)."""
        found = []
        for h in hashes:
            block = self.cached.get(h)
            if block is None:
                break
            found.append(block)
        return found

    def hold(self, block: int) -> None:
        self.refs[block] += 1
        self.idle.pop(block, None)

    def allocate(self) -> int:
        """A block for new tokens (held once); evicts the least recently used idle cached block when no
        block is free. The caller checks `available` first."""
        if self.free:
            block = self.free.popleft()
        else:
            block, _ = self.idle.popitem(last=False)
            del self.cached[self.hash_of.pop(block)]
        self.refs[block] = 1
        return block

    def release(self, blocks: list[int]) -> None:
        """Drop one hold on each block; a block nobody holds stays cached if hashed, else is freed."""
        for block in reversed(blocks):  # a prefix's tail is evicted before its head
            self.refs[block] -= 1
            if self.refs[block] == 0:
                if block in self.hash_of:
                    self.idle[block] = None
                else:
                    self.free.append(block)

    def register(self, block: int, block_hash: bytes) -> None:
        """`block` now holds the computed tokens of the prefix named `block_hash`: reusable by others."""
        if block in self.hash_of or block_hash in self.cached:
            return  # already known (or the same prefix computed twice at once: keep the first)
        self.cached[block_hash] = block
        self.hash_of[block] = block_hash
