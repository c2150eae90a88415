"""What the recursion experiment observes in each job (harness code of the task, not
scored): see :mod:`fwsurvey.kernels.experiments`."""

import statistics

from fwsurvey.kernels.experiments import control_flow_checks
from fwsurvey.kernels.tree_recursion import trees


def padding_waste(spec):
    """Share of the padded post-order positions (2 * max_leaves - 1 per tree) that hold no
    node, over the training trees."""
    length = 2 * spec["max_leaves"] - 1
    train_trees = trees.dataset(spec)["train"][0]
    return 1.0 - statistics.fmean(trees.n_nodes(t) for t in train_trees) / length


def checks(framework, mode, spec, workdir, result):
    return control_flow_checks(
        framework, spec, result, padding_waste(spec),
        static_detail="trees linearised (post-order) and padded to a fixed length, run by a "
                      "scan over a stack",
        dynamic_detail="plain recursion over each tree")
