"""Layer 5: a compiled decode step's graph called again directly, without Dynamo in between.

Every call of a `torch.compile`d step first goes through Dynamo: it checks its guards (the
model's ~430 tensors among them) and walks the model's attributes to gather those tensors as the
graph's inputs. For SmolLM2 that is ~1 ms of a ~9 ms token, paid again at every token of a
generation although nothing it checks can change between two steps of one generation.

So a step is replayed within a scope (a generation's KV cache, the server's pool): the scope's
first step of each kind goes through Dynamo, which checks its guards, compiles if it must and
runs a graph; `recording_backend` notes that graph and the flat inputs Dynamo gave it. The
scope's later steps call the same graph with the same inputs, except that the step's own
arguments (tensors, or the lengths read off their shapes) are put in their places.

A replay is only set up when every input of the graph is accounted for: one of the step's
arguments, one of their sizes, or a parameter or buffer of the model; and when the graph's one
output is what the step returned. Otherwise the scope's steps keep going through Dynamo.
Within a scope the model must stay as it was at its first step (the decode loops and the
server do not change it between steps; LoRA steps never compile).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

_seen = threading.local()  # `calls`: this thread's recorded graph runs (see `recorded`), else None


class Graph:
    """One compiled graph: the callable and, for each input that is a size, where that size is
    found (the index of a tensor input that has it, and the dimension)."""

    def __init__(self, compiled: Callable[..., Any], sizes: dict[int, tuple[int, int]]) -> None:
        self.compiled, self.sizes = compiled, sizes

    def __call__(self, *inputs: Any) -> Any:
        outputs = self.compiled(*inputs)
        calls = getattr(_seen, "calls", None)
        if calls is not None:
            calls.append((self, inputs, outputs))
        return outputs


def recording_backend(options: dict[str, Any]) -> Callable[..., Graph]:
    """A torch.compile backend: Inductor with `options`, its graphs wrapped in `Graph`."""
    from torch._inductor.compile_fx import compile_fx

    def backend(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> Graph:
        compiled = compile_fx(gm, list(example_inputs), config_patches=options)
        placeholders = [n.meta.get("example_value") for n in gm.graph.nodes if n.op == "placeholder"]
        where: dict[str, tuple[int, int]] = {}
        for i, value in enumerate(placeholders):
            if isinstance(value, torch.Tensor):
                for dim, size in enumerate(value.shape):
                    if isinstance(size, torch.SymInt):
                        where.setdefault(str(size.node.expr), (i, dim))
        sizes = {i: where.get(str(value.node.expr), (-1, -1))
                 for i, value in enumerate(placeholders) if isinstance(value, torch.SymInt)}
        return Graph(compiled, sizes)

    return backend


class recorded:
    """`with recorded() as calls:` the graphs run in the block, with their inputs and outputs."""

    def __enter__(self) -> list[tuple[Graph, tuple, Any]]:
        _seen.calls = []
        return _seen.calls

    def __exit__(self, *exc: object) -> None:
        _seen.calls = None


class Replay:
    """The graph a step ran, ready to run again for new arguments of the same shapes' kind."""

    def __init__(self, graph: Graph, template: list[Any], slots: list[tuple[int, int, int, int | None]]) -> None:
        self.graph, self.template, self.slots = graph, template, slots

    @classmethod
    def of(cls, calls: list[tuple[Graph, tuple, Any]], args: tuple, out: Any,
           model: torch.nn.Module) -> Replay | None:
        """The replay of a step that ran one graph (`calls`) on `args` and returned `out`, or None
        when something is not accounted for (see the top)."""
        if len(calls) != 1:
            return None
        graph, inputs, outputs = calls[0]
        if not (isinstance(outputs, (list, tuple)) and len(outputs) == 1 and outputs[0] is out):
            return None
        paths: dict[int, tuple[int, int]] = {}  # id of an argument tensor -> (argument, item or -1)
        for k, arg in enumerate(args):
            for j, item in enumerate(arg) if isinstance(arg, (list, tuple)) else ((-1, arg),):
                if isinstance(item, torch.Tensor):
                    paths.setdefault(id(item), (k, j))
        own = {id(t) for t in itertools.chain(model.parameters(), model.buffers())}
        slots: list[tuple[int, int, int, int | None]] = []  # (input, argument, item, dimension or None)
        for i, value in enumerate(inputs):
            if i in graph.sizes:
                holder, dim = graph.sizes[i]
                if holder < 0 or id(inputs[holder]) not in paths:
                    return None
                slots.append((i, *paths[id(inputs[holder])], dim))
            elif isinstance(value, torch.Tensor) and id(value) in paths:
                slots.append((i, *paths[id(value)], None))
            elif not (isinstance(value, torch.Tensor) and id(value) in own):
                return None
        replay = cls(graph, list(inputs), slots)
        rebuilt = replay._inputs(args)  # must give back what Dynamo passed
        same = all(a is b or (not isinstance(a, torch.Tensor) and a == b) for a, b in zip(rebuilt, inputs, strict=True))
        return replay if same else None

    def _inputs(self, args: tuple) -> list[Any]:
        inputs = self.template.copy()
        for i, k, j, dim in self.slots:
            tensor = args[k] if j < 0 else args[k][j]
            inputs[i] = tensor if dim is None else tensor.shape[dim]
        return inputs

    def __call__(self, args: tuple) -> torch.Tensor:
        return self.graph.compiled(*self._inputs(args))[0]
