"""Typed exceptions of geoloc_ros, caught at one boundary (CLI, node callbacks).

Messages say what is wrong and, where possible, how to fix the input.
"""


class GeolocError(Exception):
    """Base of every error the project raises on purpose."""


class ConfigError(GeolocError):
    """A configuration file or parameter is missing, unknown or of the wrong type."""


class BagError(GeolocError):
    """A bag cannot be opened, read or written."""


class InputRejected(GeolocError):
    """A sensor message or value is invalid (NaN, impossible covariance, bad stamp...).

    Nodes count these in diagnostics and keep running; `reason` is a short slug
    (e.g. "nan", "covariance") used as the diagnostic key.
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class TimeJump(GeolocError):
    """Sensor time went backwards (bag loop, clock reset): estimators must reset."""
