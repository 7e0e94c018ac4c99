"""geoloc_ros: geo-localization for cars and drones (neural map, PoseNet, GTSAM fusion).

Library modules log through `logging.getLogger(__name__)`; applications (the CLI,
the nodes) configure handlers.
"""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
