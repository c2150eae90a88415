"""Deploying the trained ConvNet the way PyTorch's and ExecuTorch's documentation teach it.

One function per target, each writing its artifact into ``folder`` and returning its path;
``example`` is a batch of inputs (NumPy) the export traces. A toolchain is imported inside
the function that uses it, so a missing one fails only its own target.
"""

import torch

# %% server


def export_server(model, example, folder):
    model.eval()
    path = folder / "model.onnx"
    torch.onnx.export(model, (torch.from_numpy(example),), path, input_names=["pixels"],
                      output_names=["logits"], external_data=False)
    return path


# %% web

# ONNX Runtime Web runs the same ONNX file in the browser.
export_web = export_server

# %% mobile


def export_mobile(model, example, folder):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    model.eval()
    exported = torch.export.export(model, (torch.from_numpy(example),))
    program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    path = folder / "model.pte"
    path.write_bytes(program.to_executorch().buffer)
    return path
