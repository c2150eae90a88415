"""What the adaptive-depth experiment observes in each job (harness code of the task, not
scored): see :mod:`fwsurvey.kernels.experiments`."""

from fwsurvey.kernels.adaptive_depth import steps
from fwsurvey.kernels.experiments import control_flow_checks


def padding_waste(spec):
    """Share of the max_depth steps run per example that it does not need, over the
    training examples."""
    k = steps.dataset(spec)["train"][1]
    return 1.0 - float(k.mean()) / spec["max_depth"]


def checks(framework, mode, spec, workdir, result):
    return control_flow_checks(
        framework, spec, result, padding_waste(spec),
        static_detail="a fixed max_depth steps for every example, finished ones masked",
        dynamic_detail="a Python while loop; each step only on the examples still running")
