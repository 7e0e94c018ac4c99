"""Start geoloc_ros for a platform: `ros2 launch geoloc_ros geoloc.launch.py platform:=car`.

Starts the fusion node (map -> odom -> base_link TF, odometry/global) and the GNSS-only
pose node as its baseline (odometry/gnss, no TF); posenet:=true adds posenet_node and
map:=DIR (a folder from `geoloc map build`) adds map_localizer_node on that map. Parameters
of all come from config/<platform>.yaml; so do the sensor mounts, published on /tf_static
unless extrinsics:=false (when robot_state_publisher already publishes them).
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
    parameters = [str(config), {"use_sim_time": use_sim_time}]
    sensors = [
        ("fix", LaunchConfiguration("fix_topic")),
        ("imu", LaunchConfiguration("imu_topic")),
    ]
    nodes = [
        Node(
            package="geoloc_ros",
            executable="fusion_node",
            name="fusion_node",
            parameters=parameters,
            remappings=[*sensors, ("wheel_odom", LaunchConfiguration("wheel_odom_topic"))],
            output="screen",
        ),
        Node(
            package="geoloc_ros",
            executable="gnss_pose_node",
            name="gnss_pose_node",
            parameters=parameters,
            remappings=sensors,
            output="screen",
        ),
    ]
    if LaunchConfiguration("posenet").perform(context).lower() == "true":
        nodes.append(
            Node(
                package="geoloc_ros",
                executable="posenet_node",
                name="posenet_node",
                parameters=parameters,
                remappings=[
                    ("image", LaunchConfiguration("image_topic")),
                    ("camera_info", LaunchConfiguration("camera_info_topic")),
                ],
                output="screen",
            )
        )
    if LaunchConfiguration("extrinsics").perform(context).lower() == "true":
        from geoloc_ros.extrinsics import static_transforms  # noqa: PLC0415 (only when asked)

        for tf in static_transforms(config):
            nodes.append(
                Node(
                    package="tf2_ros",
                    executable="static_transform_publisher",
                    name=f"extrinsics_{tf.child}",
                    arguments=tf.arguments(),
                    parameters=[{"use_sim_time": use_sim_time}],
                    output="log",
                )
            )
    map_dir = LaunchConfiguration("map").perform(context)
    if map_dir:
        if not Path(map_dir, "map.json").is_file():
            raise RuntimeError(f"map:={map_dir} has no map.json; build one with `geoloc map build`")
        nodes.append(
            Node(
                package="geoloc_ros",
                executable="map_localizer_node",
                name="map_localizer_node",
                parameters=[*parameters, {"map": map_dir}],
                remappings=[
                    *sensors,
                    ("image", LaunchConfiguration("image_topic")),
                    ("camera_info", LaunchConfiguration("camera_info_topic")),
                ],
                output="screen",
            )
        )
    return nodes


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument("platform", default_value="car", choices=list(PLATFORMS)),
            DeclareLaunchArgument("use_sim_time", default_value="false"),
            DeclareLaunchArgument("fix_topic", default_value="fix"),
            DeclareLaunchArgument("imu_topic", default_value="imu"),
            DeclareLaunchArgument("wheel_odom_topic", default_value="wheel_odom"),
            DeclareLaunchArgument("image_topic", default_value="image"),
            DeclareLaunchArgument("camera_info_topic", default_value="camera_info"),
            DeclareLaunchArgument(
                "posenet",
                default_value="false",
                choices=["true", "false"],
                description="run posenet_node (needs a model trained for this area)",
            ),
            DeclareLaunchArgument(
                "extrinsics",
                default_value="true",
                choices=["true", "false"],
                description="publish the config's sensor mounts on /tf_static",
            ),
            DeclareLaunchArgument(
                "map",
                default_value="",
                description="neural map folder (geoloc map build): runs map_localizer_node",
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
