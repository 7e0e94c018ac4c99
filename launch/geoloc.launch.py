"""Start geoloc_ros for a platform: `ros2 launch geoloc_ros geoloc.launch.py platform:=car`.

Today this starts the GNSS-only pose node; the localizers and the fusion node join
as they land. Parameters come from config/<platform>.yaml.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PLATFORMS = ("car", "drone")


def _nodes(context, *args, **kwargs):
    platform = LaunchConfiguration("platform").perform(context)
    if platform not in PLATFORMS:
        raise RuntimeError(f"platform must be one of {PLATFORMS}, got {platform!r}")
    config = Path(get_package_share_directory("geoloc_ros")) / "config" / f"{platform}.yaml"
    use_sim_time = LaunchConfiguration("use_sim_time").perform(context).lower() == "true"
    return [
        Node(
            package="geoloc_ros",
            executable="gnss_pose_node",
            name="gnss_pose_node",
            parameters=[str(config), {"use_sim_time": use_sim_time}],
            remappings=[
                ("fix", LaunchConfiguration("fix_topic")),
                ("imu", LaunchConfiguration("imu_topic")),
            ],
            output="screen",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument("platform", default_value="car", choices=list(PLATFORMS)),
            DeclareLaunchArgument("use_sim_time", default_value="false"),
            DeclareLaunchArgument("fix_topic", default_value="fix"),
            DeclareLaunchArgument("imu_topic", default_value="imu"),
            OpaqueFunction(function=_nodes),
        ]
    )
