"""One training step on 1 and on 2 devices with each framework's own engine: the gradients.

Run as a script by tests/kernels/test_scaling.py, in processes of their own (N devices must
be set before JAX is imported; PyTorch needs one process per device)::

    python -m tests.kernels.grad_check pytorch OUT.json          # under torchrun, 2 ranks
    python -m tests.kernels.grad_check jax OUT.json              # XLA_FLAGS: 2 host devices
    python -m tests.kernels.grad_check trax OUT.npz N_DEVICES    # XLA_FLAGS: N host devices
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from fwsurvey.kernels.adapters import ADAPTERS
from fwsurvey.kernels.pytorch_adapter import RankSlice
from fwsurvey.kernels.tasks import discover

TASKS = discover()


def check_pytorch(out: str) -> None:
    """DDP over 2 gloo ranks, each on half the global batch, against the full batch in one
    process: the impl's own training step, whose gradients stay in ``p.grad``."""
    from fwsurvey.kernels.mlp_digits import pytorch_impl as impl

    spec = {**TASKS["mlp_digits"].profile("quick"), "device": "cpu"}
    parallel = ADAPTERS["pytorch"].data_parallel(2, "cpu")
    model = parallel.wrap_model(impl.build_model(spec))
    step = impl.make_trainer(model, parallel.shard_data(impl.load_data(spec)), spec)
    local_loss = float(step())
    ddp_grads = [p.grad.detach().clone() for p in model.parameters()]
    mean_loss = parallel.global_losses([local_loss])[0]

    if parallel.reports:
        full = impl.build_model(spec)
        full_loss = float(impl.make_trainer(full, impl.load_data(spec), spec)())
        reference = [p.grad for p in full.parameters()]
        # This rank's half alone, without DDP: what the gradient would be with no all-reduce.
        half = impl.build_model(spec)
        data = impl.load_data(spec)
        impl.make_trainer(half, {**data, "train": RankSlice(data["train"], 0, 2)}, spec)()
        local = [p.grad for p in half.parameters()]
        with open(out, "w") as f:
            json.dump({
                "world": int(os.environ["WORLD_SIZE"]),
                "max_diff": max(float((g - r).abs().max()) for g, r in zip(ddp_grads, reference,
                                                                          strict=True)),
                "scale": max(float(r.abs().max()) for r in reference),
                "local_diff": max(float((g - r).abs().max()) for g, r in zip(local, reference,
                                                                           strict=True)),
                "loss_diff": abs(mean_loss - full_loss),
            }, f)
    parallel.close()


def check_jax(out: str) -> None:
    """The LM's gradient with the batch sharded over 2 devices (parameters replicated)
    against the same batch on one device."""
    import jax

    from fwsurvey.kernels.transformer_lm import jax_impl as impl

    spec = {**TASKS["transformer_lm"].profile("quick"), "device": "cpu"}
    parallel = ADAPTERS["jax"].data_parallel(2, "cpu")
    inputs, targets = next(impl.load_data(spec)["train"])
    params = impl.build_model(spec)
    grad = jax.jit(jax.grad(impl.loss_fn), static_argnums=3)

    sharded_inputs, sharded_targets = next(parallel.shard_data(
        {"train": iter([(inputs, targets)])})["train"])
    replicated = parallel.wrap_model(params)
    two = grad(replicated, sharded_inputs, sharded_targets, spec["n_heads"])
    hlo = grad.lower(replicated, sharded_inputs, sharded_targets,
                     spec["n_heads"]).compile().as_text()

    device = jax.devices()[0]
    one = grad(jax.device_put(params, device), jax.device_put(inputs, device),
               jax.device_put(targets, device), spec["n_heads"])
    pairs = list(zip(jax.tree.leaves(two), jax.tree.leaves(one), strict=True))
    with open(out, "w") as f:
        json.dump({
            "devices": len(jax.devices()),
            "input_devices": len(sharded_inputs.sharding.device_set),
            "input_shard_rows": sharded_inputs.addressable_shards[0].data.shape[0],
            "batch": int(inputs.shape[0]),
            "grad_devices": len(jax.tree.leaves(two)[0].sharding.device_set),
            "all_reduce_in_step": "all-reduce" in hlo,
            "max_diff": max(float(abs(np.asarray(a) - np.asarray(b)).max()) for a, b in pairs),
            "scale": max(float(abs(np.asarray(b)).max()) for _, b in pairs),
        }, f)


def check_trax(out: str, n_devices: int) -> None:
    """One step of the digits MLP through training.Loop(n_devices=N) with plain SGD at
    learning rate 1: the weights move by exactly minus the gradient Loop applied."""
    import trax as trax_lib
    from trax import layers as tl
    from trax.supervised import training

    from fwsurvey.kernels.mlp_digits import trax_impl as impl

    spec = {**TASKS["mlp_digits"].profile("quick"), "device": "cpu"}
    data = impl.load_data(spec)
    task = training.TrainTask(labeled_data=data["train"], loss_layer=tl.CategoryCrossEntropy(),
                              optimizer=trax_lib.optimizers.SGD(1.0))
    loop = training.Loop(impl.build_model(spec), [task], n_devices=n_devices,
                         random_seed=spec["seed"])
    before = [np.array(w) for w in _leaves(loop.model.weights)]
    loop.run(1)
    after = [np.array(w) for w in _leaves(loop.model.weights)]
    import jax

    np.savez(out, n_devices=loop.n_devices, local_devices=jax.local_device_count(),
             jax_version=jax.__version__,
             **{f"grad{i}": b - a for i, (b, a) in enumerate(zip(before, after, strict=True))})


def _leaves(weights):
    import jax

    return jax.tree_util.tree_leaves(weights)


if __name__ == "__main__":
    framework, out = sys.argv[1], sys.argv[2]
    if framework == "trax":
        check_trax(out, int(sys.argv[3]))
    else:
        {"pytorch": check_pytorch, "jax": check_jax}[framework](out)
