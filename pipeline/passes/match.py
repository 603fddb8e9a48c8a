"""Structural matching helpers: walk a graph by op type, constants and consumers, never by names.

A matcher asks questions such as "is this tensor produced by a Transpose with perm (0, 2, 3, 1)?"
(`producer`), "is this input a constant, and what is it?" (`const`), "which input of this
commutative node is the constant?" (`split_const`). Each answer is `None` when the structure does
not hold, so a matcher reads as a chain of guards. `private_chain` implements the safety rule of
every fusion: an intermediate tensor may be fused away only if nothing outside the subgraph reads
it (another node or a graph output).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
import onnx_graphsurgeon as gs


class Refused(Exception):
    """The structure matched but fusing would be unsafe (e.g. an intermediate read elsewhere)."""


def producer(t, op: str | tuple[str, ...], **attrs):
    """The node producing tensor `t` if its op type is `op` and its attributes equal `attrs`."""
    if not isinstance(t, gs.Variable) or len(t.inputs) != 1:
        return None
    node = t.inputs[0]
    ops = (op,) if isinstance(op, str) else op
    if node.op not in ops:
        return None
    for k, v in attrs.items():
        got = node.attrs.get(k)
        if isinstance(v, (list, tuple)):
            if got is None or list(got) != list(v):
                return None
        elif got != v:
            return None
    return node


def const(t) -> np.ndarray | None:
    """The value of a constant tensor (initializer), else None."""
    if isinstance(t, gs.Constant):
        return np.asarray(t.values)
    return None


def scalar(t) -> float | None:
    """A constant holding exactly one number (any rank), else None."""
    v = const(t)
    if v is None or v.size != 1:
        return None
    return float(v.reshape(()))


def split_const(node) -> tuple[np.ndarray | None, object]:
    """For a binary node with one constant input: (constant value, the other input)."""
    a, b = node.inputs
    if const(b) is not None and const(a) is None:
        return const(b), a
    if const(a) is not None and const(b) is None:
        return const(a), b
    return None, None


def linear(t):
    """`t = x @ W (+ b)`, W (K, M) and b (M,) constant: (x, W, b or None, matmul, add or None).

    Accepts the bias on either side of the Add (timm puts it first, paddle2onnx second).
    """
    add = producer(t, "Add")
    if add is not None:
        b, y = split_const(add)
        mm = producer(y, "MatMul") if b is not None else None
        if mm is None or const(mm.inputs[1]) is None or b.ndim != 1:
            return None
        if len(y.outputs) != 1:
            return None
        return mm.inputs[0], const(mm.inputs[1]), b, mm, add
    mm = producer(t, "MatMul")
    if mm is not None and const(mm.inputs[1]) is not None:
        return mm.inputs[0], const(mm.inputs[1]), None, mm, None
    return None


def private_chain(graph, interior: Iterable, nodes: Iterable) -> None:
    """Raise Refused if a tensor of `interior` is a graph output or read outside `nodes`."""
    nodes = {id(n) for n in nodes}
    outputs = {id(t) for t in graph.outputs}
    for t in interior:
        if id(t) in outputs:
            raise Refused(f"intermediate tensor {t.name!r} is a graph output")
        for c in t.outputs:
            if id(c) not in nodes:
                raise Refused(
                    f"intermediate tensor {t.name!r} is also read by {c.op} node "
                    f"{c.name!r} outside the attention subgraph"
                )


def static_dims(t) -> list | None:
    """The tensor's inferred shape (ints or symbolic strings), or None when unknown."""
    shape = getattr(t, "shape", None)
    return list(shape) if shape is not None else None


def dim(t, axis: int):
    s = static_dims(t)
    if s is None or not -len(s) <= axis < len(s):
        return None
    d = s[axis]
    return d if isinstance(d, (int, np.integer)) and d > 0 else None


def rank(t) -> int | None:
    s = static_dims(t)
    return None if s is None else len(s)


_serial = itertools.count()


def new_const(name: str, values: np.ndarray) -> gs.Constant:
    """A new constant with a graph-unique name (inlined nodes have empty names to derive from)."""
    return gs.Constant(
        f"{name}_{next(_serial)}", np.array(values, copy=True, order="C")
    )  # keeps 0-d scalars 0-d


def reroute(old, new) -> None:
    """Every node reading `old` reads `new` instead (onnx-graphsurgeon lists need index writes)."""
    for c in list(old.outputs):
        for i, t in enumerate(c.inputs):
            if t is old:
                c.inputs[i] = new


def refresh_shapes(graph: gs.Graph) -> None:
    """Re-run ONNX shape inference on `graph` in place (after folding exposed static shapes)."""
    import onnx

    model = gs.export_onnx(graph.cleanup())
    del model.graph.value_info[:]
    fresh = gs.import_onnx(onnx.shape_inference.infer_shapes(model, data_prop=True))
    graph.nodes, graph.inputs, graph.outputs = fresh.nodes, fresh.inputs, fresh.outputs


def shape_dims(node) -> tuple[list, bool] | None:
    """(dims, scalar) of X that `Gather(Shape(X), i)` or `Slice(Shape(X), a, b)` selects — ints,
    or names where X's dims are symbolic — with `scalar` for a Gather of a 0-d index; None when
    the structure does not hold (another producer, unknown shape, steps or axes other than 0/1)."""
    if node is None or node.op not in ("Gather", "Slice") or not node.inputs:
        return None
    shp = producer(node.inputs[0], "Shape")
    if shp is None or shp.attrs or shp.inputs[0].shape is None:
        return None
    dims = list(shp.inputs[0].shape)
    if node.op == "Gather":
        idx = const(node.inputs[1])
        return None if idx is None else ([dims[int(i)] for i in idx.reshape(-1)], idx.ndim == 0)
    bounds = [const(t) for t in node.inputs[1:]]
    if (
        len(bounds) < 2
        or any(b is None or b.size != 1 for b in bounds)
        or any(int(b.reshape(())) != v for b, v in zip(bounds[2:], (0, 1)))
    ):
        return None
    start, end = (int(b.reshape(())) for b in bounds[:2])
    return dims[start:end], False
