"""Plain data in and out of the sandbox: the only thing an answer's result can become.

The grader sends each answer its inputs as JSON-ready data, and the sandbox sends back what
the answer returned, also as data. An answer's result is turned into data by code that looks
only at exact built-in types (``type(x) is list``, ``type(x) is torch.Tensor``, ...) through
references taken before any student code ran, so an object that lies about equality, a
``Tensor`` subclass with ``__torch_function__`` or a patched ``tolist`` never reaches the
comparison: it becomes ``{"unsupported": "TypeName"}``.

Data format: None, bool, int, float and str stand for themselves; everything else is a dict
with one tag: ``{"list": [...]}``, ``{"tuple": [...]}``, ``{"dict": [[key, value], ...]}``,
``{"set": [...]}`` (inputs only),
``{"array": base64, "dtype": "float32", "shape": [2, 3], "kind": "tensor" | "ndarray"}``,
``{"callable": name, "args": [...]}`` (inputs only: a function the sandbox builds, such as the
sub-layer given to a pre-norm block), ``{"unsupported": "TypeName"}``.

``make_driver`` calls an answer on a case; a named driver instead sets up the objects an
answer acts on (a model, an optimizer) and sends back what the answer did to them.
"""

from __future__ import annotations

import base64
import collections

import numpy as np

MAX_ELEMENTS = 5_000_000  # numbers in one result; more is reported, not sent


class TooLarge(ValueError):
    pass


def _callables(torch):
    """The functions an input can name: ``{"callable": name, "args": [tensors]}``."""
    return {
        # tanh(x W^T + b): a sub-layer
        "tanh_linear": lambda W, b: lambda x: torch.tanh(x @ W.T.to(x.dtype) + b.to(x.dtype)),
        # (x - mean) * g + h: a stand-in normalisation that does not commute with the sub-layer
        "center_scale": lambda g, h: (
            lambda x: (x - x.mean(dim=-1, keepdim=True)) * g.to(x.dtype) + h.to(x.dtype)
        ),
    }


def make_driver():
    """``drive(name, answer, args, kwargs)``: call an answer on one case, built before any
    student code runs. Without a name the answer is called on the arguments; with one, a
    harness sets up the objects the answer acts on and returns what it did to them, as data
    (for answers that return nothing, such as a training step)."""
    import torch

    from llmcourse.exercises.ch08 import grading_drivers as ch08_drivers
    from llmcourse.exercises.ch15 import SyncCounter

    linear, sgd = torch.nn.Linear, torch.optim.SGD
    no_grad, ones_like, list_ = torch.no_grad, torch.ones_like, list

    def fixed_step(answer, weight, bias, micro_batches):
        """One step on ``nn.Linear`` with stale gradients, SGD at lr 1, behind a stand-in for
        DDP: (each forward's all-reduce flag, optimizer steps, the weight and bias after)."""
        net = linear(weight.shape[1], weight.shape[0]).to(weight.dtype)
        with no_grad():
            net.weight.copy_(weight)
            net.bias.copy_(bias)
        for p in net.parameters():
            p.grad = ones_like(p)  # left over from the previous step
        model, optimizer = SyncCounter(net), sgd(net.parameters(), lr=1.0)
        steps, step = [0], optimizer.step

        def counted_step(*args, **kwargs):
            steps[0] += 1
            return step(*args, **kwargs)

        optimizer.step = counted_step
        answer(model, list_(micro_batches), optimizer)
        return list_(model.syncs), steps[0], net.weight.detach().clone(), net.bias.detach().clone()

    drivers = {"fixed_step": fixed_step, **ch08_drivers()}

    def drive(name, answer, args, kwargs):
        if not name:
            return answer(*args, **kwargs)
        return drivers[name](answer, *args, **kwargs)

    return drive


def make_encoder():
    """A function turning an answer's result into data, built from references taken now:
    call this before any student code runs."""
    import torch

    tensor_type, ndarray_type = torch.Tensor, np.ndarray
    detach, cpu, contiguous = torch.Tensor.detach, torch.Tensor.cpu, torch.Tensor.contiguous
    to_numpy, to_dtype = torch.Tensor.numpy, torch.Tensor.to
    float32, bfloat16, float16 = torch.float32, torch.bfloat16, torch.float16
    nd_copy, nd_tobytes = np.ndarray.copy, np.ndarray.tobytes
    dict_items, list_iter, tuple_iter = dict.items, list.__iter__, tuple.__iter__
    b64 = base64.b64encode
    plain = (type(None), bool, int, float, str)
    dict_types = (dict, collections.Counter, collections.OrderedDict, collections.defaultdict)
    scalar_types = {
        np.float64,
        np.float32,
        np.float16,
        np.int64,
        np.int32,
        np.int16,
        np.int8,
        np.uint8,
        np.bool_,
    }
    float_, int_, str_, type_ = float, int, str, type
    list_, tuple_, isinstance_ = list, tuple, isinstance

    def encode(obj, budget=None):
        budget = budget if budget is not None else [MAX_ELEMENTS]
        kind = type_(obj)
        if kind in plain:
            if kind is int_ and (obj > 2**63 or obj < -(2**63)):
                return {"bigint": str_(obj)}
            return obj
        if kind in scalar_types:
            value = obj.item()
            return {
                "scalar": value if type_(value) in plain else float_(value),
                "dtype": str_(obj.dtype),
            }
        if kind is tensor_type or kind is ndarray_type:
            if kind is tensor_type:
                t = detach(obj)
                if t.dtype in (bfloat16, float16):
                    t = to_dtype(t, float32)
                array = to_numpy(contiguous(cpu(t)))
                array = nd_copy(array)
            else:
                array = nd_copy(obj)  # a copy is a plain, C-contiguous ndarray
            budget[0] -= array.size
            if budget[0] < 0:
                raise TooLarge(f"more than {MAX_ELEMENTS:,} numbers")
            return {
                "array": b64(nd_tobytes(array)).decode(),
                "dtype": str_(array.dtype),
                "shape": list_(array.shape),
                "kind": "tensor" if kind is tensor_type else "ndarray",
            }
        if kind is list_ or kind is tuple_:
            items = list_iter(obj) if kind is list_ else tuple_iter(obj)
            values = []
            for item in items:
                budget[0] -= 1
                if budget[0] < 0:
                    raise TooLarge(f"more than {MAX_ELEMENTS:,} items")
                values.append(encode(item, budget))
            return {"list" if kind is list_ else "tuple": values}
        if kind in dict_types:
            pairs = []
            for key, value in dict_items(obj):
                budget[0] -= 1
                if budget[0] < 0:
                    raise TooLarge(f"more than {MAX_ELEMENTS:,} items")
                pairs.append([encode(key, budget), encode(value, budget)])
            return {"dict": pairs}
        name = getattr(kind, "__qualname__", "?") if isinstance_(kind, type_) else "?"
        return {"unsupported": str_(name)}

    return encode


def encode_input(obj):
    """Grader side: a test case's argument (tensors, arrays, numbers, lists, ...) as data."""
    import torch

    if isinstance(obj, Callable):
        return {"callable": obj.name, "args": [encode_input(a) for a in obj.args]}
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        array = obj.numpy() if isinstance(obj, torch.Tensor) else obj
        array = np.ascontiguousarray(array)
        return {
            "array": base64.b64encode(array.tobytes()).decode(),
            "dtype": str(array.dtype),
            "shape": list(array.shape),
            "kind": "tensor" if isinstance(obj, torch.Tensor) else "ndarray",
        }
    if isinstance(obj, tuple):
        return {"tuple": [encode_input(x) for x in obj]}
    if isinstance(obj, list):
        return {"list": [encode_input(x) for x in obj]}
    if isinstance(obj, dict):
        return {"dict": [[encode_input(k), encode_input(v)] for k, v in obj.items()]}
    if isinstance(obj, (set, frozenset)):
        return {"set": [encode_input(x) for x in sorted(obj)]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot send a {type(obj).__name__} to the sandbox")


class Callable:
    """A function given to an answer as an argument, named so that both sides can build it."""

    def __init__(self, name: str, *args):
        self.name, self.args = name, args

    def build(self):
        import torch

        return _callables(torch)[self.name](*self.args)

    def __repr__(self) -> str:
        return f"<{self.name}>"


def decode(data, tensors: bool = False):
    """Data -> Python values. Arrays become NumPy arrays, or with ``tensors`` (inside the
    sandbox, for the answer's inputs) torch tensors; callables are built (``tensors`` only)."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if "list" in data:
        return [decode(x, tensors) for x in data["list"]]
    if "tuple" in data:
        return tuple(decode(x, tensors) for x in data["tuple"])
    if "dict" in data:
        return {_hashable(decode(k, tensors)): decode(v, tensors) for k, v in data["dict"]}
    if "set" in data:
        return {_hashable(decode(x, tensors)) for x in data["set"]}
    if "bigint" in data:
        return int(data["bigint"])
    if "scalar" in data:
        return np.dtype(data["dtype"]).type(data["scalar"])
    if "array" in data:
        raw = base64.b64decode(data["array"])
        array = np.frombuffer(raw, dtype=np.dtype(data["dtype"])).reshape(data["shape"]).copy()
        if tensors and data.get("kind") == "tensor":
            import torch

            return torch.from_numpy(array)
        return array
    if "callable" in data:
        args = [decode(a, tensors) for a in data["args"]]
        return (
            Callable(data["callable"], *args).build()
            if tensors
            else Callable(data["callable"], *args)
        )
    if "unsupported" in data:
        return Unsupported(data["unsupported"])
    raise ValueError(f"not data: {str(data)[:80]}")


def _hashable(value):
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, np.ndarray):
        return tuple(value.tolist())
    return value


class Unsupported:
    """What the grader sees of a result that was not plain data."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<a {self.type_name}, not plain data>"
