"""Paired reference trainings: one folder per task, one file per framework.

The harness that times them lives apart from the task files, so the files the analyzers
score contain only what a user of that framework would write. What differs between
frameworks (modes, step, compile counter, memory, data-parallel engine) lives in one adapter
per framework (:mod:`fwsurvey.kernels.adapters`).
"""
