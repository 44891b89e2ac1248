"""Record a fixed-seed run for a before/after comparison of a refactor (not a test; pytest does not collect it):

    DEMO_DATA=/tmp/demo python tests/record_run.py SCRIPT OUTDIR [flags...]     # e.g. stw /tmp/before/stw --epochs 2

Runs `SCRIPT.main(["--output", OUTDIR, *flags])` with every micro-batch loss recorded at full precision (the
script's `train_loss`, wrapped), and writes OUTDIR/equiv.json: the losses, the final metrics (without times and
paths) and the sha1 of the final weights. Two runs of the same code give byte-identical files; `cmp` the files of
a run before and after a change that must not change behaviour."""
import hashlib
import importlib
import json
import os
import sys

import torch

sys.path.insert(0, os.getcwd())
name, out = sys.argv[1], sys.argv[2]
module = importlib.import_module(name)
losses, real = [], module.train_loss


def recorded(*args, **kwargs):
    loss, extra = real(*args, **kwargs)
    losses.append(repr(loss.item()))
    return loss, extra


module.train_loss = recorded
final = module.main(["--output", out, *sys.argv[3:]])
weights = torch.load(os.path.join(out, "last.pt"), weights_only=False)["model"]
digest = hashlib.sha1()
for key in sorted(weights):
    digest.update(key.encode())
    digest.update(weights[key].cpu().numpy().tobytes())
final = {k: v for k, v in final.items() if k not in ("seconds", "output")}
with open(os.path.join(out, "equiv.json"), "w") as f:
    json.dump({"losses": losses, "final": final, "weights_sha1": digest.hexdigest()}, f, indent=0)
print("EQUIV", len(losses), digest.hexdigest())
