"""shared.runtime: device choice, thread scope, run log files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from shared.errors import InputError
from shared.runtime import log_to_file, resolve_device, torch_threads


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(InputError, match="--device gpu0"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_resolve_device_without_cuda() -> None:
    with pytest.raises(InputError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_torch_threads_restores_on_error() -> None:
    before = torch.get_num_threads()
    seen = []

    def fail() -> None:
        with torch_threads(1):
            seen.append(torch.get_num_threads())
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail()
    assert seen == [1]
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_log_to_file_levels_and_no_duplicates(tmp_path: Path) -> None:
    parent = logging.getLogger("contrasuite_test_rt")
    child = logging.getLogger("contrasuite_test_rt.child")
    parent.setLevel(logging.WARNING)
    path = tmp_path / "run" / "log.txt"
    with log_to_file(path, [parent.name]):
        child.info("once")
        with log_to_file(path, [child.name]):  # already written through the parent
            child.info("nested")
        child.debug("hidden")
    child.info("after")
    lines = path.read_text().splitlines()
    assert [line.rsplit(": ", 1)[1] for line in lines] == ["once", "nested"]
    assert " INFO contrasuite_test_rt.child: " in lines[0]
    assert parent.level == logging.WARNING
    assert not parent.handlers
    assert not child.handlers
