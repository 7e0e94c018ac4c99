"""`geoloc demo --live`: the demo's drive over DDS into the real nodes, recorded.

fusion_node, map_localizer_node and posenet_node run as separate processes (as
`ros2 launch` starts them) with the platform's YAML and use_sim_time; this process
publishes the bag with /clock (BagPlayer) and records the nodes' outputs (Recorder)
to live/outputs.mcap; geoloc_ros.demo scores odometry/global from that bag exactly like
the offline rows. A node that dies leaves the others running; the report says which, when
and how (exit code and the end of its log).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoloc_ros.errors import GeolocError
from geoloc_ros.eval.trajectory import Trajectory

log = logging.getLogger(__name__)

RECORDED = (
    ("/odometry/global", "nav_msgs/msg/Odometry"),
    ("/fix/filtered", "sensor_msgs/msg/NavSatFix"),
    ("/map_localizer/fix", "geometry_msgs/msg/PoseWithCovarianceStamped"),
    ("/posenet/fix", "geometry_msgs/msg/PoseWithCovarianceStamped"),
    ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray"),
)
START_TIMEOUT_S = 120.0  # torch and GTSAM imports on a loaded 2-core machine


@dataclass
class NodeProcess:
    """One node in its own process, its output in a log file."""

    name: str
    args: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None
    died_at_bag_s: float | None = None
    cpu_s: float | None = None  # user + system time, read just before stopping

    def start(self, env: dict[str, str]) -> None:
        code = f"import sys; from geoloc_ros.nodes.{self.name} import main; sys.exit(main())"
        self._log = self.log_path.open("w")
        cmd = [sys.executable, "-c", code, "--ros-args", *self.args]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGINT, then SIGKILL after `timeout_s`; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.cpu_s = process_cpu_s(self.proc.pid)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def tail(self, lines: int = 5) -> list[str]:
        text = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
        return text.strip().splitlines()[-lines:]


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) a running process has used; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


@dataclass
class LiveRun:
    bag: Path  # the recorded outputs
    traj: Trajectory  # odometry/global in the map frame
    counts: dict[str, int]
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_s: float = 0.0
    player_cpu_s: float | None = None  # this process: player and recorder
    diagnostics: dict[str, dict[str, str]] = field(default_factory=dict)  # last, per status


def node_processes(out: Path, cfg_path: Path, datum: list[float], map_dir: Path,
                   map_model: str, posenet_model: str | None) -> list[NodeProcess]:  # fmt: skip
    """The three nodes with the platform's YAML and the demo's map, datum and models."""
    common = ["--params-file", str(cfg_path), "-p", "use_sim_time:=true"]
    d = "[" + ",".join(repr(float(v)) for v in datum) + "]"
    map_args = [*common, "-p", f"map:={map_dir}", "-p", f"model:={map_model}"]
    small = (os.cpu_count() or 1) <= 4  # player, recorder and three nodes share the cores:
    if small:  # torch's default threads would oversubscribe them
        map_args += ["-p", "threads:=1"]
    procs = [
        NodeProcess("fusion_node", [*common, "-p", f"datum:={d}"], out / "fusion_node.log"),
        NodeProcess("map_localizer_node", map_args, out / "map_localizer_node.log"),
    ]
    if posenet_model is not None:
        args = [*common, "-p", f"datum:={d}", *(["-p", "threads:=1"] if small else [])]
        if posenet_model:
            args += ["-p", f"model:={posenet_model}"]
        procs.append(NodeProcess("posenet_node", args, out / "posenet_node.log"))
    return procs


def run_live(bag: Path, out: Path, procs: list[NodeProcess], rate: float = 1.0,
             domain_id: int | None = None, progress: bool = True,
             on_bag_time: Callable[[float], None] | None = None) -> LiveRun:  # fmt: skip
    """Start the nodes, wait until they listen, play the bag, record, stop, read back;
    `on_bag_time(t)` is called with the bag time (from its start) as messages go out."""
    import rclpy  # noqa: PLC0415
    from rclpy.executors import SingleThreadedExecutor  # noqa: PLC0415

    from geoloc_ros.nodes.bag_player import BagPlayer  # noqa: PLC0415
    from geoloc_ros.nodes.recorder import Recorder  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    env = dds_environment(domain_id)
    # the player here too: Fast DDS reads the profile when this process's first participant starts
    os.environ.setdefault(FASTDDS_PROFILE_ENV, env[FASTDDS_PROFILE_ENV])
    t_wall = time.perf_counter()
    cpu0 = time.process_time()  # this process: player and recorder
    for p in procs:
        p.start(env)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=int(env.get("ROS_DOMAIN_ID", "0")))
    # one thread: rclpy's MultiThreadedExecutor.spin_once loop burnt 26 of 30 CPU seconds
    # here with only /clock coming in, a core the nodes then lacked (single: 3.9 s)
    executor = SingleThreadedExecutor(context=ctx)
    stop = threading.Event()
    try:
        from rclpy.parameter import Parameter  # noqa: PLC0415

        sim = [Parameter("use_sim_time", value=True)]
        recorder = Recorder(RECORDED, context=ctx, parameter_overrides=sim)
        player = BagPlayer(bag, rate=rate, context=ctx)
        executor.add_node(recorder)
        spinner = threading.Thread(target=_spin, args=(executor, stop), daemon=True)
        spinner.start()
        _wait_for_nodes(player, recorder, procs)

        def watch(t_bag: float, duration: float) -> None:
            for p in procs:
                if p.died_at_bag_s is None and not p.alive():
                    p.died_at_bag_s = t_bag
                    log.warning("%s died at %.1f s of the bag: %s", p.name, t_bag, p.tail(1))
            if progress:
                _progress(t_bag, duration)
            if on_bag_time is not None:
                on_bag_time(t_bag)

        player.play(watch)
        time.sleep(3.0)  # the last frames and keyframes leave the nodes
        if progress:
            print(file=sys.stderr)
        counts = recorder.counts()
        player_cpu = time.process_time() - cpu0
        path = recorder.write(out / "outputs.mcap")
    finally:
        stop.set()
        nodes = {}
        for p in procs:
            died = p.died_at_bag_s
            code = p.stop()
            tail = p.tail() if died is not None else []
            nodes[p.name] = {"exit_code": code, "died_at_bag_s": died, "log": str(p.log_path),
                             "log_tail": tail, "cpu_s": p.cpu_s}  # fmt: skip
        executor.shutdown()
        ctx.try_shutdown()
    return LiveRun(path, read_odometry(path), counts, nodes, time.perf_counter() - t_wall,
                   player_cpu, last_diagnostics(path))  # fmt: skip


FASTDDS_PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"


def dds_environment(domain_id: int | None) -> dict[str, str]:
    """The nodes' environment: the domain, and Fast DDS with a shared-memory segment that
    holds camera images (config/fastdds_shm.xml) unless the user chose a profile."""
    from geoloc_ros.config import shipped_config  # noqa: PLC0415

    env = dict(os.environ)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    env.setdefault(FASTDDS_PROFILE_ENV, str(shipped_config("fastdds_shm.xml")))
    return env


def _spin(executor, stop: threading.Event) -> None:
    while not stop.is_set():
        executor.spin_once(timeout_sec=0.05)


def _wait_for_nodes(player, recorder, procs: list[NodeProcess]) -> None:
    """Until each node subscribes to what it needs and the fusion publishes odometry."""
    need = {"/imu": 2, "/image": sum(p.name != "fusion_node" for p in procs)}
    end = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < end:
        dead = [p for p in procs if not p.alive()]
        if dead:
            p = dead[0]
            raise GeolocError(f"{p.name} exited at start (code {p.proc.returncode}): "
                              f"{' / '.join(p.tail(2))}; full log {p.log_path}")  # fmt: skip
        subs = {t: player.subscription_count(t) for t in need}
        if all(subs[t] >= n for t, n in need.items()) and (
            recorder.subs["/odometry/global"].get_publisher_count() > 0
        ):
            return
        time.sleep(0.2)
    raise GeolocError(f"the nodes did not come up in {START_TIMEOUT_S:.0f} s (logs in "
                      f"{procs[0].log_path.parent})")  # fmt: skip


def _progress(t_bag: float, duration: float) -> None:
    if int(t_bag * 2) != int((t_bag - 0.02) * 2):
        print(f"\rlive: {t_bag:5.1f} / {duration:.1f} s of the bag", end="", file=sys.stderr)


def read_odometry(path: Path) -> Trajectory:
    """odometry/global of a recorded bag as a trajectory with position covariances."""
    from geoloc_ros.errors import InputRejected  # noqa: PLC0415
    from geoloc_ros.io.bag import BagReader  # noqa: PLC0415
    from geoloc_ros.io.convert import navstate_from_odometry  # noqa: PLC0415

    states = []
    with BagReader(path) as bag:
        for m in bag.messages(["/odometry/global"]):
            try:
                s = navstate_from_odometry(m.msg)
            except InputRejected:
                continue
            if not states or s.t_s > states[-1].t_s:
                states.append(s)
    return Trajectory.from_states(states)


def last_diagnostics(path: Path) -> dict[str, dict[str, str]]:
    """The last values of every /diagnostics status in a recorded bag, by status name."""
    from geoloc_ros.io.bag import BagReader  # noqa: PLC0415

    out: dict[str, dict[str, str]] = {}
    with BagReader(path) as bag:
        for m in bag.messages(["/diagnostics"]):
            for status in m.msg.status:
                out[status.name] = {kv.key: kv.value for kv in status.values}
    return out
