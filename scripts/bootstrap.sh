#!/usr/bin/env bash
# Create or check the project's virtual environment at .venv (idempotent).
# First run: venv + pinned dependencies + editable install + tf2_msgs fallback.
# Later runs: verify the recorded inputs hash and that key modules resolve; nothing is installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv"
start=$(date +%s.%N)
elapsed() { awk -v a="$start" -v b="$(date +%s.%N)" -v f="$1" 'BEGIN { printf f "\n", b - a }'; }

inputs_hash() {
  { cat requirements/*.txt setup.py setup.cfg package.xml scripts/*.sh
    find ros_fallback -type f | sort | xargs cat; } | sha256sum | cut -c1-16
}

# A sourced ROS 2 installation provides rclpy, messages and tf2_msgs itself.
ros_system=0
if [ -n "${ROS_DISTRO:-}" ] && python3 -c "import rclpy" 2>/dev/null; then ros_system=1; fi

exec 9>"$root/.venv.lock"
flock 9

want="$(inputs_hash)-ros${ros_system}"
modules="geoloc_ros rclpy sensor_msgs nav_msgs diagnostic_msgs tf2_msgs gtsam torch cv2 rosbags pyproj rasterio evo shapely trimesh embreex"
check() {
  "$venv/bin/python" - "$modules" <<'PY' 2>/dev/null
import importlib.util, sys
missing = [m for m in sys.argv[1].split() if importlib.util.find_spec(m) is None]
sys.exit(1 if missing else 0)
PY
}
if [ -f "$venv/.bootstrap-hash" ] && [ "$(cat "$venv/.bootstrap-hash")" = "$want" ] && check; then
  elapsed "bootstrap: .venv up to date (checked in %.1f s)"
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  if [ "$ros_system" = 1 ]; then
    echo "bootstrap: ROS $ROS_DISTRO is sourced; the venv sees its rclpy and messages"
    python3 -m venv --system-site-packages "$venv"
  else
    py=$(command -v python3.11 || command -v python3)
    "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
      echo "bootstrap: the pip-only set-up needs Python 3.11 (the ROS wheels are cp311); found $("$py" --version)" >&2
      exit 1
    }
    "$py" -m venv "$venv"
  fi
fi
touch "$venv/COLCON_IGNORE"  # the venv holds ROS package.xml files colcon must not crawl
# The machine's pip config names local indexes that may be absent: drop pip's notes on them.
pipi() {
  "$venv/bin/python" -m pip install --disable-pip-version-check -q "$@" 2>&1 |
    { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}
echo "bootstrap: installing pinned dependencies into .venv"
reqs=(-r requirements/base.txt)
[ "$ros_system" = 1 ] || reqs+=(-r requirements/ros.txt)
pipi "${reqs[@]}"
pipi --no-deps --no-build-isolation -e .
if [ "$ros_system" = 0 ]; then
  scripts/build_tf2_msgs.sh "$venv"
fi
check || { echo "bootstrap: some modules of [$modules] do not resolve after install" >&2; exit 1; }
echo "$want" > "$venv/.bootstrap-hash"
elapsed "bootstrap: .venv ready (%.0f s)"
