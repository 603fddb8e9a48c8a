"""Read trtexec's exported JSON files and group layer time by CaiT block kind.

Schemas (samples/common/sampleReporting.cpp, identical at v10.3.0 and v11.1):
- `--exportProfile`: `[{"count": N}, {"name", "timeMs", "averageMs", "medianMs", "percentage"}, …]`
- `--exportTimes`: `[{"startEnqMs", "endEnqMs", "startH2dMs", …, "computeMs", "latencyMs"}, …]`
- `--exportLayerInfo` (IEngineInspector JSON): `{"Layers": [...], "Bindings": [...]}`; a layer is a
  bare name with `layer_names_only` verbosity, or a dict with "Name", "LayerType" and "Metadata"
  (ONNX node names as `[ONNX Layer: …]`) with `detailed`.

A TensorRT layer name is the ONNX node name, several names joined by " + " when fused, or
`{ForeignNode[first...last]}` for a Myelin region spanning ONNX nodes first…last. Node → kind comes
from the ONNX graph when it is given (segmentation by LayerNormalization order, see
`node_kinds`), else from names. A region whose nodes span several kinds is reported as "mixed"
rather than guessed.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np

from pipeline.contract import CLASS_ATTENTION, CLASS_BLOCKS, TALKING_HEADS
from pipeline.errors import UserError

KINDS = (
    "patch_embed",
    "talking_heads",
    "class_attention",
    "mlp",
    "layernorm",
    "head",
    "reformat",
    "mixed",
    "other",
)
PLUGIN_KINDS = {TALKING_HEADS: "talking_heads", CLASS_ATTENTION: "class_attention"}

_FOREIGN = re.compile(r"\{ForeignNode\[(.+?)\.\.\.(.+?)\]\}")
_ONNX_META = re.compile(r"\[ONNX Layer: ([^\]]+)\]")


def load_json(path: str | Path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} not found: did trtexec run with the export flags?") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e}); re-run the profile") from None


def read_profile(data) -> list[dict]:
    """exportProfile JSON → list of {"name", "averageMs", …} (the leading {"count"} entry dropped)."""
    return [e for e in data if isinstance(e, dict) and "name" in e]


def read_layer_info(data) -> dict[str, dict]:
    """exportLayerInfo JSON → {layer name: layer dict} (bare names become {"Name": name})."""
    layers = data.get("Layers", []) if isinstance(data, dict) else []
    out = {}
    for layer in layers:
        if isinstance(layer, str):
            layer = {"Name": layer}
        out[layer.get("Name", "")] = layer
    return out


# ---- ONNX node → kind -------------------------------------------------------------------------


def node_kinds(model) -> tuple[dict[str, str], list[str]]:
    """Kind of every ONNX node of a CaiT graph, and the node names in graph order.

    CaiT is a chain: patch embedding, then per talking-heads block LN → attention → LN → MLP, then
    per class-attention block LN → class attention → LN → MLP, then the final LN and the head. So
    the LayerNormalization nodes in graph (topological) order cut the graph into segments whose
    kind follows from their index. Nodes placed early by the exporter (constants, the class token)
    may land in a neighbouring segment; their time is negligible.
    """
    nodes = list(model.graph.node)
    order = [n.name for n in nodes]
    ln_idx = [i for i, n in enumerate(nodes) if n.op_type == "LayerNormalization"]
    n_th_plugins = sum(n.op_type == TALKING_HEADS for n in nodes)
    n_ca_plugins = sum(n.op_type == CLASS_ATTENTION for n in nodes)
    kinds: dict[str, str] = {}
    n_ln = len(ln_idx)
    # 2 LN per block, CLASS_BLOCKS class-attention blocks, one final norm (the contract's counts).
    fixed = 2 * CLASS_BLOCKS + 1
    depth = n_th_plugins or (
        (n_ln - fixed) // 2 if n_ln >= fixed and (n_ln - fixed) % 2 == 0 else None
    )
    n_cls = n_ca_plugins or CLASS_BLOCKS
    for i, n in enumerate(nodes):
        if n.op_type in PLUGIN_KINDS:
            kinds[n.name] = PLUGIN_KINDS[n.op_type]
            continue
        if n.op_type == "LayerNormalization":
            kinds[n.name] = "layernorm"
            continue
        if depth is None or not ln_idx:
            kinds[n.name] = _kind_from_name(n.name, n.op_type)
            continue
        seg = sum(1 for j in ln_idx if j < i)  # how many LNs precede this node
        if seg == 0:
            kinds[n.name] = "patch_embed"
        elif seg >= n_ln:
            kinds[n.name] = "head"
        else:
            k = seg - 1
            block, sub = divmod(k, 2)
            if sub == 1:
                kinds[n.name] = "mlp"
            elif block < depth:
                kinds[n.name] = "talking_heads"
            elif block < depth + n_cls:
                kinds[n.name] = "class_attention"
            else:
                kinds[n.name] = "other"
    return kinds, order


_NAME_RULES = [
    (re.compile(rf"{TALKING_HEADS}|talking|proj_[lw]", re.I), "talking_heads"),
    (re.compile(rf"{CLASS_ATTENTION}|blocks_token_only.*attn|cls_attn", re.I), "class_attention"),
    (re.compile(r"patch_embed|Conv", re.I), "patch_embed"),
    (re.compile(r"layer_?norm|LayerNormalization|norm[12]?\b", re.I), "layernorm"),
    (re.compile(r"mlp|fc[12]|gelu|Erf", re.I), "mlp"),
    (re.compile(r"\bhead\b|/head/|head\.", re.I), "head"),
    (re.compile(r"reformat|CopyNode", re.I), "reformat"),
]


def _kind_from_name(name: str, op_type: str = "") -> str:
    for rx, kind in _NAME_RULES:
        if rx.search(name) or (op_type and rx.search(op_type)):
            return kind
    return "other"


# ---- TensorRT layer → kind --------------------------------------------------------------------


def layer_onnx_nodes(name: str, info: dict | None, order: list[str]) -> list[str]:
    """ONNX node names a TensorRT layer came from (empty if unknown)."""
    if info and isinstance(info.get("Metadata"), str):
        found = _ONNX_META.findall(info["Metadata"])
        if found:
            return found
    m = _FOREIGN.search(name)
    if m and order:
        first, last = m.group(1), m.group(2)
        if first in order and last in order:
            a, b = order.index(first), order.index(last)
            return order[min(a, b) : max(a, b) + 1]
        return [n for n in (first, last) if n in order]
    return [p.strip() for p in name.split(" + ") if p.strip() in set(order)] if order else []


def classify_layer(
    name: str,
    info: dict | None = None,
    kinds: dict[str, str] | None = None,
    order: list[str] | None = None,
) -> str:
    layer_type = (info or {}).get("LayerType", "")
    for plugin, kind in PLUGIN_KINDS.items():
        if plugin in name or plugin in str((info or {}).get("Metadata", "")):
            return kind
    if "Reformat" in layer_type or "reformat" in name.lower():
        return "reformat"
    if kinds:
        found = {kinds[n] for n in layer_onnx_nodes(name, info, order or []) if n in kinds}
        if len(found) == 1:
            return found.pop()
        if len(found) > 1:
            return "mixed"
    return _kind_from_name(name, layer_type)


def _plugin_of(name: str, info: dict | None, ops: dict[str, str], order: list[str]) -> str | None:
    """The plugin op a layer runs, if it is a plugin layer (by name, metadata or ONNX node)."""
    text = name + str((info or {}).get("Metadata", ""))
    for plugin in PLUGIN_KINDS:
        if plugin in text:
            return plugin
    nodes = layer_onnx_nodes(name, info, order) or ([name] if name in ops else [])
    found = {ops.get(n) for n in nodes} & set(PLUGIN_KINDS)
    return found.pop() if len(found) == 1 and len(nodes) == 1 else None


def group_layers(profile, layer_info=None, model=None) -> dict:
    """Average time per inference grouped by kind.

    Returns {"groups": {kind: {"ms": float, "layers": int, "percent": float}},
             "plugins": {plugin op: ms}, "total_ms": float}.
    """
    entries = read_profile(profile)
    infos = read_layer_info(layer_info) if layer_info is not None else {}
    kinds, order = node_kinds(model) if model is not None else ({}, [])
    ops = {n.name: n.op_type for n in model.graph.node} if model is not None else {}
    groups: dict[str, dict] = OrderedDict((k, {"ms": 0.0, "layers": 0}) for k in KINDS)
    plugins: dict[str, float] = {}
    for e in entries:
        name = e["name"]
        kind = classify_layer(name, infos.get(name), kinds, order)
        ms = float(e.get("averageMs", 0.0))
        groups[kind]["ms"] += ms
        groups[kind]["layers"] += 1
        plugin = _plugin_of(name, infos.get(name), ops, order)
        if plugin:
            plugins[plugin] = plugins.get(plugin, 0.0) + ms
    total = sum(g["ms"] for g in groups.values())
    for g in groups.values():
        g["percent"] = 100.0 * g["ms"] / total if total else 0.0
    return {
        "groups": {k: v for k, v in groups.items() if v["layers"]},
        "plugins": plugins,
        "total_ms": total,
    }


# ---- whole-run figures ------------------------------------------------------------------------

_THROUGHPUT = re.compile(r"Throughput:\s*([0-9.eE+-]+)\s*qps")


def parse_qps(stdout: str) -> float | None:
    """trtexec's "Throughput: X qps" line (one query = one batch, per trtexec's own help)."""
    found = _THROUGHPUT.findall(stdout)
    return float(found[-1]) if found else None


def compute_percentiles(times, q=(50, 90, 95, 99)) -> dict[str, float]:
    """GPU compute time percentiles (ms) from `--exportTimes` JSON."""
    compute = [float(t["computeMs"]) for t in times if isinstance(t, dict) and "computeMs" in t]
    if not compute:
        raise UserError("the exported times hold no computeMs values; was --exportTimes passed?")
    arr = np.asarray(compute)
    out = {f"p{p}": float(np.percentile(arr, p)) for p in q}
    out["mean"] = float(arr.mean())
    out["n"] = len(compute)
    return out


def summarize(
    *, batch: int, qps: float | None, times, profile, layer_info=None, model=None
) -> dict:
    summary = {
        "batch": batch,
        "qps": qps,
        "images_per_s": qps * batch if qps is not None else None,
        "gpu_compute_ms": compute_percentiles(times),
        "layers": group_layers(profile, layer_info, model),
    }
    return summary


def format_summary(s: dict) -> str:
    lines = []
    if s["images_per_s"] is not None:
        lines.append(
            f"throughput: {s['images_per_s']:.1f} images/s "
            f"({s['qps']:.2f} qps × batch {s['batch']})"
        )
    c = s["gpu_compute_ms"]
    lines.append(
        "GPU compute ms: "
        + ", ".join(f"{k} {c[k]:.3f}" for k in c if k.startswith("p"))
        + f", mean {c['mean']:.3f} (n={c['n']})"
    )
    lines.append(f"{'layer group':<16} {'ms':>9} {'%':>6} {'layers':>7}")
    for kind, g in s["layers"]["groups"].items():
        lines.append(f"{kind:<16} {g['ms']:>9.3f} {g['percent']:>6.1f} {g['layers']:>7}")
    for plugin, ms in s["layers"]["plugins"].items():
        lines.append(f"  of which plugin {plugin}: {ms:.3f} ms")
    return "\n".join(lines)
