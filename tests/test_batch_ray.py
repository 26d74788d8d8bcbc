"""Archive labelling on a real two-node Ray cluster on 127.0.0.1 (``ray.cluster_utils.Cluster``):
its table equals the one a single process writes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Every node of the test cluster on the loopback interface: Ray's own switch for that (its
# default on macOS and Windows), read when ray is imported, and inherited by the nodes.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import _batch_faults  # noqa: E402
from _inference_helpers import train_tiny_model  # noqa: E402
from escnet.batch import label  # noqa: E402
from escnet.export.onnx import export_model  # noqa: E402
from test_batch import read_table, write_archive  # noqa: E402

#: Each node: one CPU (so the two actors land on different nodes) and a small object store.
NODE = {"num_cpus": 1, "object_store_memory": 100 * 1024**2}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # The nodes' workers import the fault decoders of tests/_batch_faults.py by name.
    before = os.environ.get("PYTHONPATH")
    paths = [str(Path(__file__).parent), before or ""]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    c = Cluster(
        initialize_head=True,
        head_node_args={**NODE, "include_dashboard": False},
    )
    c.add_node(**NODE)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def test_two_nodes_write_the_single_process_table(cluster: Cluster, tmp_path: Path) -> None:
    model = train_tiny_model(tmp_path / "model")
    exported = export_model(model, tmp_path / "onnx", onnx=True, check_clips=0).directory
    write_archive(tmp_path / "a", 40)
    (tmp_path / "a" / "part1" / "broken.flac").write_bytes(b"fLaC but nothing else")
    single = tmp_path / "single.csv"
    label(exported, [tmp_path / "a"], output=single, workers=0)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert len(nodes) == 2 and {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}
    out = tmp_path / "ray.csv"
    summary = label(exported, [tmp_path / "a"], output=out, ray=cluster.address, ray_actors=2)
    assert (summary.labelled, summary.skip_count) == (40, 1)
    assert read_table(out) == read_table(single)
    # a resumed Ray job labels only what is missing, and the table is the same again
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:21]))
    summary = label(exported, [tmp_path / "a"], output=out, ray=cluster.address, resume=True)
    assert (summary.already, summary.labelled + summary.skip_count) == (20, 21)
    assert read_table(out) == read_table(single)


def test_a_decoder_that_crashes_or_hangs_costs_its_file_not_the_job(
    cluster: Cluster, tmp_path: Path
) -> None:
    model = train_tiny_model(tmp_path / "model")
    exported = export_model(model, tmp_path / "onnx", onnx=True, check_clips=0).directory
    files = write_archive(tmp_path / "a", 6)
    crash = files[0].rename(files[0].with_name("crash-" + files[0].name))
    hang = files[1].rename(files[1].with_name("hang-" + files[1].name))
    summary = label(
        exported, [tmp_path / "a"], output=tmp_path / "ray.csv", ray=cluster.address,
        ray_actors=2, decode_timeout=3, decoder=_batch_faults.faulty_decoder,
    )  # fmt: skip
    reasons = dict(summary.skipped)
    assert "worker died on it (signal SIGKILL)" in reasons[str(crash)]
    assert "no progress for 3 s" in reasons[str(hang)]
    assert summary.labelled == 4 and len(read_table(tmp_path / "ray.csv")) == 6
