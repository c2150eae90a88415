"""fwsurvey: measurements, verdicts and evidence for deep-learning framework comparisons."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fwsurvey")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"
