"""fashion_cnn.provenance: what every metrics JSON records about how it was made."""

from __future__ import annotations

import torch

from fashion_cnn.provenance import provenance


def test_a_result_says_which_commit_versions_data_and_cpu_made_it() -> None:
    record = provenance(seed=3, data_checksums={"f": "abc"})
    assert record["seed"] == 3 and record["data_checksums"] == {"f": "abc"}
    assert record["versions"]["torch"] == torch.__version__
    # timings are only comparable on the same vector instructions (AVX2 vs AVX-512 ...)
    assert record["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert {"command", "git_commit", "date"} <= set(record)
