"""Topic names of the bags the simulator and the importers write (DESIGN.md, absolute)."""

IMU = "/imu"
FIX = "/fix"
IMAGE = "/image"
CAMERA_INFO = "/camera_info"
WHEEL_ODOM = "/wheel_odom"
TF_STATIC = "/tf_static"
GROUND_TRUTH = "/ground_truth/odom"
SIM_INFO = (
    "/geoloc/sim_info"  # std_msgs/String, latched JSON: which world and settings made the bag
)
SOURCE_INFO = "/geoloc/source_info"  # std_msgs/String, latched JSON: what an importer read

TYPES = {
    IMU: "sensor_msgs/msg/Imu",
    FIX: "sensor_msgs/msg/NavSatFix",
    IMAGE: "sensor_msgs/msg/Image",
    CAMERA_INFO: "sensor_msgs/msg/CameraInfo",
    WHEEL_ODOM: "nav_msgs/msg/Odometry",
    TF_STATIC: "tf2_msgs/msg/TFMessage",
    GROUND_TRUTH: "nav_msgs/msg/Odometry",
    SIM_INFO: "std_msgs/msg/String",
}
