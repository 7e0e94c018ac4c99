#!/usr/bin/env bash
# Build and install tf2_msgs (TFMessage only) into a virtual environment, but only
# where `import tf2_msgs` fails: a real ROS 2 installation keeps its own package.
# Usage: scripts/build_tf2_msgs.sh VENV
set -euo pipefail
venv=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
py="$venv/bin/python"

if "$py" -c "import tf2_msgs.msg" 2>/dev/null; then
  exit 0
fi
echo "bootstrap: building the tf2_msgs fallback (TFMessage) into $venv"
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
export AMENT_PREFIX_PATH="$venv"
export PATH="$venv/bin:$PATH"
export LD_LIBRARY_PATH="$venv/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cmake -S "$here/ros_fallback/tf2_msgs" -B "$build" \
  -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" \
  -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
  > "$build/configure.log" 2>&1 || { tail -30 "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" > "$build/build.log" 2>&1 || { tail -30 "$build/build.log"; exit 1; }
cmake --install "$build" > "$build/install.log" 2>&1 || { tail -30 "$build/install.log"; exit 1; }
"$py" -c "import tf2_msgs.msg" || { echo "bootstrap: tf2_msgs built but does not import" >&2; exit 1; }
