"""Wall time of one ``complete()`` call, to compare two checkouts of the package (same outputs expected).

Run it with each checkout's ``src`` on the path and time the whole process, e.g.::

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old/src .venv/bin/python benchmarks/restructure_timing.py dcgan
    .venv/bin/python benchmarks/restructure_timing.py dcgan      # prints the same numbers

``toy``: AIS, 300 steps × 10 leapfrog (3,001 gradient evaluations), 100 chains, on a randomly
initialised toy MLP. ``dcgan``: the default method, 2 images × 16 chains × 300 gradients, on the
shipped Fashion-MNIST DCGAN with a 12×12 hidden box. One thread. It prints the gradient
evaluations and the sum of the estimate, which must agree between checkouts.
"""

import sys

import torch

import cogenerate as cg
from cogenerate.models.pretrained import load_pretrained
from cogenerate.models.toy import ToyGenerator

torch.set_num_threads(1)
which = sys.argv[1] if len(sys.argv) > 1 else "toy"
if which == "dcgan":
    G = load_pretrained("fashion-mnist").modules["generator"].eval()
    x = G(torch.randn(2, 100, generator=torch.Generator().manual_seed(0))).detach()
    mask = torch.ones(1, 1, 28, 28)
    mask[..., 8:20, 8:20] = 0
    out = cg.complete(G, x, mask, chains=16, max_grad_evals=300, seed=0)
else:
    torch.manual_seed(0)
    G = ToyGenerator()
    out = cg.complete(G, torch.zeros(1, 2), torch.tensor([0.0, 1.0]), method="ais", steps=300, chains=100,
                      noise_std=0.05, leapfrog=10)
print(out.grad_evals, float(out.estimate.sum()))
