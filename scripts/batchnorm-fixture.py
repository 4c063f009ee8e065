"""Reference data for batch normalization, from PyTorch (torch.nn.BatchNorm2d / BatchNorm1d).

Writes test/fixtures/batchnorm-torch.json, read by test/passes/train-eval.test.ts; the tests never
run Python. Each case: an input x, the affine weight and bias, the running statistics before the
step, and fixed upstream weights r; in training mode, the output y, the gradients of
loss = sum(y * r) with respect to x, weight and bias, and the running statistics after the step;
in eval mode (from the same starting running statistics), the output. Computed in float64.

    python3 scripts/batchnorm-fixture.py
"""
import json

import numpy as np
import torch

rng = np.random.default_rng(16)


def case(name, module, shape, momentum, eps):
    c = shape[1]
    x = rng.uniform(-2, 2, size=shape)
    r = rng.uniform(-1, 1, size=shape)
    weight = rng.uniform(0.5, 1.5, size=c)
    bias = rng.uniform(-0.5, 0.5, size=c)
    mean0 = rng.uniform(-0.3, 0.3, size=c)
    var0 = rng.uniform(0.5, 2.0, size=c)

    def make():
        bn = module(c, momentum=momentum, eps=eps).double()
        with torch.no_grad():
            bn.weight.copy_(torch.tensor(weight))
            bn.bias.copy_(torch.tensor(bias))
            bn.running_mean.copy_(torch.tensor(mean0))
            bn.running_var.copy_(torch.tensor(var0))
        return bn

    bn = make().train()
    xt = torch.tensor(x, requires_grad=True)
    y = bn(xt)
    (y * torch.tensor(r)).sum().backward()
    ev = make().eval()
    with torch.no_grad():
        y_eval = ev(torch.tensor(x))
    flat = lambda t: [float(v) for v in np.asarray(t.detach() if torch.is_tensor(t) else t).reshape(-1)]
    return {
        "name": name, "module": module.__name__, "shape": list(shape), "momentum": momentum, "eps": eps,
        "x": flat(x), "r": flat(r), "weight": flat(weight), "bias": flat(bias),
        "running_mean": flat(mean0), "running_var": flat(var0),
        "train": {
            "y": flat(y), "dx": flat(xt.grad), "dweight": flat(bn.weight.grad), "dbias": flat(bn.bias.grad),
            "running_mean": flat(bn.running_mean), "running_var": flat(bn.running_var),
        },
        "eval": {"y": flat(y_eval)},
    }


cases = [
    case("nchw", torch.nn.BatchNorm2d, (4, 3, 5, 5), 0.1, 1e-5),
    case("features", torch.nn.BatchNorm1d, (8, 5), 0.3, 1e-3),
]
out = {"source": f"torch {torch.__version__}, scripts/batchnorm-fixture.py", "cases": cases}
with open("test/fixtures/batchnorm-torch.json", "w") as f:
    json.dump(out, f, separators=(",", ":"))
    f.write("\n")
print("wrote test/fixtures/batchnorm-torch.json")
