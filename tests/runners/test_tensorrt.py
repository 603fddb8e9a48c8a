"""The TensorRT runner's CUDA-graph policy: one graph per (input shape, buffers), re-captured
whenever they change — never a graph replayed after the context's input shape moved on.

The policy is plain Python (`GraphSlot`), tested here with recorded capture/destroy calls; the
runner itself needs a GPU and is exercised by tests/gpu."""

from pipeline.runners.tensorrt import GraphSlot


def _slot():
    log = []
    counter = iter(range(100))

    def capture():
        g = f"graph{next(counter)}"
        log.append(("capture", g))
        return g

    def destroy(g):
        log.append(("destroy", g))

    return GraphSlot(capture, destroy), log


def test_same_shape_replays_the_captured_graph():
    slot, log = _slot()
    key = ((8, 3, 224, 224), 1, 2)
    assert slot.get(key) == slot.get(key) == "graph0"
    assert log == [("capture", "graph0")]


def test_a_new_shape_destroys_and_recaptures():
    slot, log = _slot()
    a, b = ((8, 3, 224, 224), 1, 2), ((1, 3, 224, 224), 1, 2)
    assert slot.get(a) == "graph0"
    assert slot.get(b) == "graph1"
    assert slot.get(a) == "graph2"  # back to the first shape: captured again, not replayed
    assert log == [
        ("capture", "graph0"),
        ("destroy", "graph0"),
        ("capture", "graph1"),
        ("destroy", "graph1"),
        ("capture", "graph2"),
    ]
    assert slot.captures == 3


def test_moved_buffers_recapture():
    slot, _ = _slot()
    assert slot.get(((8, 3, 32, 32), 1, 2)) == "graph0"
    assert slot.get(((8, 3, 32, 32), 5, 2)) == "graph1"  # the input buffer was reallocated


def test_reset_destroys_once():
    slot, log = _slot()
    slot.get("k")
    slot.reset()
    slot.reset()
    assert log == [("capture", "graph0"), ("destroy", "graph0")] and slot.graph is None
