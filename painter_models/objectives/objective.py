"""The objective for painting a photograph, as the CLI and the benches build it."""
from __future__ import annotations

from .losses import FeatureLoss, PixelLoss, combine


def photo_objective(image, pixel: float = 1.0, feature: float = 0.0, backbone="efficientnet_lite0",
                    pixel_kind: str = "l2", blur_sigma: float = 0.0, mask=None):
    """Pixel distance to the photograph plus (optionally) a perceptual feature loss through `backbone`
    (a name or a built FeatureExtractor)."""
    terms = []
    if pixel:
        terms.append(("pixel", pixel, PixelLoss(image, kind=pixel_kind, blur_sigma=blur_sigma, mask=mask)))
    if feature:
        terms.append(("feature", feature, FeatureLoss(image, backbone=backbone, mask=mask)))
    if not terms:
        raise ValueError("a photograph's objective needs a positive pixel or feature weight")
    return combine(terms)
