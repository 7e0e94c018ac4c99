"""ament_python package definition; also installs with plain pip (see README)."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "geoloc_ros"
HERE = Path(__file__).resolve().parent


def tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing every file under `folder` into share/geoloc_ros."""
    entries = []
    for path in sorted((HERE / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(HERE)
            entries.append((f"share/{PACKAGE}/{rel.parent}", [str(rel)]))
    return entries


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["models/*", "models/**/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *tree("launch"),
        *tree("config"),
        *tree("rviz"),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="geoloc_ros maintainers",
    maintainer_email="maintainers@geoloc-ros.dev",
    description="Neural map localizer, MC-dropout PoseNet and GTSAM fusion for geo-localization.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "geoloc = geoloc_ros.cli:main",
            "gnss_pose_node = geoloc_ros.nodes.gnss_pose_node:main",
            "fusion_node = geoloc_ros.nodes.fusion_node:main",
            "posenet_node = geoloc_ros.nodes.posenet_node:main",
            "map_localizer_node = geoloc_ros.nodes.map_localizer_node:main",
        ],
    },
)
