"""Replay a bag through the fusion offline: the same FusionPipeline fusion_node runs, no DDS.

Messages go in log-time order, as they would arrive on the vehicle. What comes out is
the causal estimate at every keyframe (what the node publishes at that moment, not a
smoothed afterthought), the raw fixes, every gating decision and every rejection.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoloc_ros.errors import BagError, InputRejected
from geoloc_ros.eval.readahead import Item, converted, read_ahead, reader_process_available
from geoloc_ros.eval.trajectory import Trajectory
from geoloc_ros.fusion.config import FusionConfig
from geoloc_ros.fusion.pipeline import FusionPipeline, Rejection
from geoloc_ros.io import topics
from geoloc_ros.io.bag import BagReader
from geoloc_ros.types import Decision, GnssFix, NavState

log = logging.getLogger(__name__)

BAG_INPUTS = {
    topics.IMU: "imu",
    topics.FIX: "fix",
    topics.WHEEL_ODOM: "wheel_odom",
    "/map_localizer/fix": "map_localizer/fix",
    "/posenet/fix": "posenet/fix",
}
"""Bag topic -> fusion input (DESIGN.md's bag contract)."""


@dataclass
class ReplayResult:
    """Everything one replay produced, in the run's map frame (local ENU)."""

    bag_start_s: float
    fusion: list[NavState] = field(default_factory=list)  # keyframes, as each was when newest
    # odometry/global as fusion_node publishes it: the IMU-rate state at output_rate_hz,
    # (t, p, q) only (a 1-hour drive holds 180 000)
    published: list[tuple[float, np.ndarray, np.ndarray]] = field(default_factory=list)
    fixes_enu: list[tuple[float, np.ndarray]] = field(default_factory=list)  # antenna, raw
    ground_truth: list[NavState] = field(default_factory=list)  # as in the bag
    decisions: list[Decision] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    withheld_fixes: int = 0  # dropped by --gnss-outage / --no-gnss
    outage_s: tuple[float, float] | None = None  # absolute stamps
    latency_s: float = 0.0  # GNSS decisions are stamped at fix stamp - latency
    datum: tuple[float, float, float] | None = None
    wall_s: float = 0.0
    duration_s: float = 0.0
    resets: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def fusion_trajectory(self) -> Trajectory:
        return Trajectory.from_states(self.fusion)

    def published_trajectory(self) -> Trajectory:
        """What fusion_node would have published on odometry/global over the bag."""
        if not self.published:
            return Trajectory(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 4)))
        t, p, q = zip(*self.published, strict=True)
        return Trajectory(np.array(t), np.array(p), np.array(q))

    def gnss_trajectory(self) -> Trajectory:
        t = np.array([f[0] for f in self.fixes_enu])
        p = np.array([f[1] for f in self.fixes_enu]).reshape(-1, 3)
        return Trajectory(t, p, np.tile([0.0, 0.0, 0.0, 1.0], (len(t), 1)))


def replay_fusion(
    bag_path: str | Path,
    cfg: FusionConfig,
    gnss_outage_s: tuple[float, float] | None = None,
    no_gnss: bool = False,
    progress: bool = True,
    sources: Sequence = (),
    reader_process: bool | None = None,
) -> ReplayResult:
    """Run the fusion over a bag; `gnss_outage_s` = (start from bag start, duration) withheld.

    `sources` (eval.sources) compute visual fixes in the loop from the bag's images with
    the fusion's current state as prior; a recorded topic of the same input is then ignored.
    `reader_process` decodes and converts the bag in a forked process (eval.readahead);
    None: when there are no sources and a second core.
    """
    import time  # noqa: PLC0415

    from tqdm import tqdm  # noqa: PLC0415

    pipeline = FusionPipeline(cfg)
    with BagReader(bag_path) as bag:
        present = {t.topic: t.count for t in bag.topics()}
        if topics.IMU not in present:
            raise BagError(f"{bag_path}: no {topics.IMU} topic; the fusion needs an IMU")
        live = {"/" + src.input_name for src in sources}
        source_topics = frozenset(t for src in sources for t in src.topics)
        wanted = [t for t in (*BAG_INPUTS, topics.GROUND_TRUTH, *sorted(source_topics))
                  if t in present and t not in live]  # fmt: skip
        wanted = list(dict.fromkeys(wanted))
        res = ReplayResult(bag.start_s, duration_s=bag.end_s - bag.start_s)
        res.latency_s = cfg.gnss_latency_s
        if gnss_outage_s is not None:
            a = bag.start_s + gnss_outage_s[0]
            res.outage_s = (a, a + gnss_outage_s[1])
        if reader_process is None:
            reader_process = not sources and reader_process_available()
        if reader_process and sources:
            raise ValueError("visual sources need the raw images: no reader process")
        inputs = {t: n for t, n in BAG_INPUTS.items() if t not in live}
        items = (
            read_ahead(bag_path, wanted, inputs, topics.GROUND_TRUTH)
            if reader_process
            else converted(bag.messages(wanted), inputs, topics.GROUND_TRUTH, source_topics)
        )
        t0 = time.perf_counter()
        bar = tqdm(items, total=sum(present[t] for t in wanted), disable=not progress,
                   unit="msg", desc=f"eval {Path(bag_path).name}", leave=False)  # fmt: skip
        for it in bar:
            _replay_one(res, pipeline, sources, source_topics, it, no_gnss)
        res.wall_s = time.perf_counter() - t0
    ltp = pipeline.estimator.ltp
    res.datum = (ltp.lat0_deg, ltp.lon0_deg, ltp.alt0_m) if ltp is not None else None
    res.resets = pipeline.resets
    res.counts = dict(pipeline.estimator.counts)
    return res


def _replay_one(
    res: ReplayResult,
    pipeline: FusionPipeline,
    sources: Sequence,
    source_topics: frozenset[str],
    it: Item,
    no_gnss: bool,
) -> None:
    """One converted bag message through the pipeline, as fusion_node would take it."""
    if it.topic == topics.GROUND_TRUTH:
        if it.item is not None:
            res.ground_truth.append(it.item)
        return
    name = BAG_INPUTS.get(it.topic)
    if name == "fix" and _withheld(res, it.stamp_s, no_gnss):
        return  # nor do the sources see it: no GNSS prior in an outage
    if it.topic in source_topics:
        _run_sources(res, pipeline, sources, it)
    if name is None or (it.item is None and it.rejected is None):
        _keep_keyframe(res, pipeline)
        return
    if it.rejected is not None:
        reason, text = it.rejected
        pipeline.count_rejected(name, reason)
        res.rejections.append(Rejection(it.stamp_s, name, reason, text))
    else:
        try:
            state = pipeline.feed(name, it.item)
        except InputRejected as exc:
            res.rejections.append(Rejection(it.stamp_s, name, exc.reason, str(exc)))
        else:
            if state is not None:  # one per output period, as fusion_node publishes
                res.published.append((state.t_s, state.p_m, state.q_xyzw))
        if name == "fix":
            _keep_fix(res, pipeline, it.item)
    _keep_keyframe(res, pipeline)


def _keep_keyframe(res: ReplayResult, pipeline: FusionPipeline) -> None:
    """Gating decisions so far, and the state if it is a new keyframe."""
    res.decisions.extend(pipeline.take_decisions())
    s = pipeline.output_state  # the keyframes fusion_node publishes (fix/filtered)
    if s is not None and (not res.fusion or s.t_s != res.fusion[-1].t_s):
        res.fusion.append(s)


def _run_sources(res: ReplayResult, pipeline: FusionPipeline, sources, it: Item) -> None:
    """Hand a message to the visual sources; feed the fixes they return to the fusion."""
    from geoloc_ros.io.convert import msg_from_posefix  # noqa: PLC0415
    from geoloc_ros.io.msgtypes import RosbagsTypes, default_typestore  # noqa: PLC0415

    for src in sources:
        if it.topic not in src.topics:
            continue
        try:
            fix = src.on_message(it.topic, it.msg, pipeline.output_state)  # as the nodes see it
            if fix is not None:
                msg = msg_from_posefix(fix, RosbagsTypes(default_typestore()))
                pipeline.handle(src.input_name, msg)
        except InputRejected as exc:
            if it.topic == topics.IMAGE:  # the fusion reports bad IMU messages itself
                res.rejections.append(Rejection(it.stamp_s, src.input_name, exc.reason, str(exc)))


def _withheld(res: ReplayResult, stamp_s: float, no_gnss: bool) -> bool:
    if no_gnss:
        res.withheld_fixes += 1
        return True
    if res.outage_s is not None and res.outage_s[0] <= stamp_s < res.outage_s[1]:
        res.withheld_fixes += 1
        return True
    return False


def _keep_fix(res: ReplayResult, pipeline: FusionPipeline, fix: GnssFix) -> None:
    """The raw baseline: every fix with a position, in the fusion's map frame."""
    ltp = pipeline.estimator.ltp
    if ltp is None or not fix.has_fix:
        return
    res.fixes_enu.append((fix.t_s, ltp.enu_from_geodetic(fix.lat_deg, fix.lon_deg, fix.alt_m)))


def read_sim_info(bag_path: str | Path) -> dict | None:
    """The simulator's latched JSON (world, seeds, sensor configs), if the bag has one."""
    with BagReader(bag_path) as bag:
        for m in bag.messages([topics.SIM_INFO]):
            return json.loads(m.msg.data)
    return None


__all__: Sequence[str] = ["BAG_INPUTS", "ReplayResult", "read_sim_info", "replay_fusion"]
