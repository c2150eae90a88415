"""Real data that ships on every machine, shared by the implementations of a task.

Only the raw data lives here; batching, streams and tensors are each framework's own
business and stay in its implementation file.
"""

from __future__ import annotations

import numpy as np

#: Byte-level vocabulary: id 0 is padding, byte b is id b + 1.
VOCAB_SIZE = 257
PAD_ID = 0


def text_corpus() -> np.ndarray:
    """Python's own reference documentation (``pydoc_data.topics``) as token ids.

    About 0.7 MB of real English prose and code that ships with CPython itself, so it is
    there offline on every machine.
    """
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key] for key in sorted(topics))
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32) + 1


def split(ids: np.ndarray, eval_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Train on the head of the corpus, evaluate on its tail."""
    cut = int(len(ids) * (1 - eval_fraction))
    return ids[:cut], ids[cut:]


def text_lines(min_len: int, max_len: int) -> list[np.ndarray]:
    """The lines of :func:`text_corpus`, as token ids, those of ``min_len``..``max_len`` bytes.

    Lines keep the corpus order, so :func:`split` keeps the held-out lines from its tail.
    """
    from pydoc_data.topics import topics

    lines = []
    for key in sorted(topics):
        for line in topics[key].splitlines():
            data = line.strip().encode("utf-8")
            if min_len <= len(data) <= max_len:
                lines.append(np.frombuffer(data, dtype=np.uint8).astype(np.int32) + 1)
    return lines
