"""The eval's reader process: the same items in the same order, and the same replay."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from geoloc_ros.errors import BagError
from geoloc_ros.eval.readahead import converted, read_ahead, reader_process_available
from geoloc_ros.eval.replay import BAG_INPUTS, replay_fusion
from geoloc_ros.eval.report import fusion_config
from geoloc_ros.io import topics
from geoloc_ros.io.bag import BagReader, BagWriter
from geoloc_ros.sim.quickdrive_bag import write_quickdrive_bag

needs_fork = pytest.mark.skipif(
    not reader_process_available(), reason="no fork start method or a single core"
)


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    """The figure-eight drive with some IMU samples and one fix made NaN (rejections)."""
    tmp = tmp_path_factory.mktemp("readahead")
    clean = tmp / "clean.mcap"
    write_quickdrive_bag(clean, duration_s=30.0, seed=5, progress=False)
    path = tmp / "dirty.mcap"
    n_imu = n_fix = 0
    with BagReader(clean) as src, BagWriter(path) as out:
        for info in src.topics():
            out.add_topic(info.topic, info.msgtype)
        for m in src.messages():
            if m.topic == topics.IMU:
                n_imu += 1
                if n_imu % 97 == 0:
                    m.msg.linear_acceleration.x = math.nan
            if m.topic == topics.FIX:
                n_fix += 1
                if n_fix == 40:
                    m.msg.latitude = math.nan
            out.write(m.topic, m.t_log_s, m.msg)
    return path


def _wanted(bag: Path) -> list[str]:
    with BagReader(bag) as b:
        present = {t.topic for t in b.topics()}
    return [t for t in (*BAG_INPUTS, topics.GROUND_TRUTH) if t in present]


@needs_fork
def test_reader_process_hands_over_the_same_items_in_order(bag):
    wanted = _wanted(bag)
    with BagReader(bag) as b:
        inline = list(converted(b.messages(wanted), BAG_INPUTS, topics.GROUND_TRUTH))
    ahead = list(read_ahead(bag, wanted, BAG_INPUTS, topics.GROUND_TRUTH))
    assert len(ahead) == len(inline) > 3000
    assert [(a.topic, a.stamp_s, a.rejected) for a in ahead] == [
        (i.topic, i.stamp_s, i.rejected) for i in inline
    ]
    reasons = {a.rejected[0] for a in ahead if a.rejected}
    assert reasons == {"nan"}
    imu = [(a.item, i.item) for a, i in zip(ahead, inline, strict=True) if a.topic == topics.IMU]
    for a, i in imu[:: len(imu) // 50]:
        if a is not None:
            np.testing.assert_array_equal(a.accel_mps2, i.accel_mps2)
            assert a.t_s == i.t_s


@needs_fork
def test_replay_is_the_same_with_and_without_the_reader_process(bag):
    cfg = fusion_config(None)
    runs = [replay_fusion(bag, cfg, progress=False, reader_process=rp) for rp in (True, False)]
    ahead, inline = runs
    assert len(ahead.fusion) == len(inline.fusion) > 100
    np.testing.assert_array_equal(ahead.fusion_trajectory().p_m, inline.fusion_trajectory().p_m)
    assert [(r.t_s, r.input, r.reason) for r in ahead.rejections] == [
        (r.t_s, r.input, r.reason) for r in inline.rejections
    ]
    assert {r.input for r in ahead.rejections} == {"imu", "fix"}
    assert len(ahead.published) == len(inline.published)
    assert len(ahead.ground_truth) == len(inline.ground_truth) > 100
    assert len(ahead.fixes_enu) == len(inline.fixes_enu)


@needs_fork
def test_an_unreadable_bag_is_a_bag_error_from_the_reader_process(tmp_path):
    broken = tmp_path / "broken.mcap"
    broken.write_bytes(b"\x89MCAP0\r\n" + b"\x00" * 64)
    with pytest.raises(BagError, match=r"broken\.mcap"):
        list(read_ahead(broken, [topics.IMU], BAG_INPUTS, topics.GROUND_TRUTH))
