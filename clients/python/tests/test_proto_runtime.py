"""The pairing of the committed generated code (protoc 3.21.12) with the installed protobuf runtime."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import google.protobuf

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def _version_tuple(v: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def test_runtime_within_the_declared_range() -> None:
    text = (HERE.parent / "pyproject.toml").read_text()
    spec = re.search(r'"protobuf>=([\d.]+),<(\d+)"', text)
    assert spec, "pyproject.toml must pin protobuf>=LOW,<MAJOR"
    low, major = _version_tuple(spec.group(1)), int(spec.group(2))
    v = _version_tuple(google.protobuf.__version__)
    assert low <= v and v[0] < major, f"protobuf {google.protobuf.__version__} outside >={spec.group(1)},<{major}"


def test_generated_code_loads_without_warnings() -> None:
    # A fresh interpreter, warnings as errors: old gencode on a newer runtime would warn or fail here.
    code = ("import orchestra_memory._proto.orchestra.memory.v1.service_pb2 as s, "
            "orchestra_memory._proto.orchestra.rpc.v1.rpc_pb2 as r\n"
            "q = s.SemanticSearchRequest(user_id='u', query_embedding=[1.5], top_k=2); q.min_score.value = 0.25\n"
            "b = r.Frame(request=r.Request(id=7, method='m', payload=q.SerializeToString())).SerializeToString()\n"
            "f = r.Frame.FromString(b); q2 = s.SemanticSearchRequest.FromString(f.request.payload)\n"
            "assert q2.HasField('min_score') and q2.min_score.value == 0.25 and list(q2.query_embedding) == [1.5]\n"
            "assert s.DESCRIPTOR.services_by_name['MemoryService'].methods_by_name['Ping']\n")
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, cwd=str(HERE))


def test_no_global_orchestra_package() -> None:
    import orchestra_memory  # noqa: F401
    assert "orchestra" not in sys.modules


@pytest.mark.skipif(shutil.which("protoc") is None or not (REPO / "scripts" / "gen-protos").exists(),
                    reason="protoc or the repository's scripts/gen-protos is not available")
def test_committed_code_matches_protoc() -> None:
    if shutil.which("protoc-c") is None:
        pytest.skip("gen-protos also needs protoc-c")
    r = subprocess.run([str(REPO / "scripts" / "gen-protos"), "--check"], capture_output=True, text=True,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stdout + r.stderr
