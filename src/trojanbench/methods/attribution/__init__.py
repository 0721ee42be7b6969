"""Attribution methods (the 16 Captum tools of Casper et al. 2023) and their baselines.

Importing this package registers them all (family ``"attribution"``); Captum itself is imported only
when a Captum method runs (``pip install 'trojanbench[captum]'``).
"""

from .base import AttributionMethod, check_maps
from .baselines import EdgeDetector, RandomMap, UniformMap
from .captum_methods import CAPTUM_METHODS, CaptumAttribution

__all__ = ["AttributionMethod", "CAPTUM_METHODS", "CaptumAttribution", "EdgeDetector", "RandomMap", "UniformMap",
           "check_maps"]
