"""Model families and the registry (see :mod:`faceforge.models.registry` for how to add one)."""

from faceforge.models.registry import (InputSpec, ModelSpec, create_model, get_spec, list_models,
                                       register_model)
from faceforge.models import mini_xception  # noqa: F401  (registers mini_xception)
from faceforge.models import cyclegan  # noqa: F401  (registers cyclegan_resnet9, cyclegan_mobile)
from faceforge.models import stylegan2  # noqa: F401  (registers stylegan2)
from faceforge.models import stylegan2_convert  # noqa: F401  (stylegan2's loader: .pt/.pkl converters)
from faceforge.models import agenet  # noqa: F401  (registers age_resnet)
from faceforge.models import pix2pix  # noqa: F401  (registers pix2pix_unet256, pix2pix_unet128, pix2pix_mobile)
from faceforge.models import gpen  # noqa: F401  (registers gpen)
from faceforge.models import faceshifter  # noqa: F401  (registers faceshifter)
from faceforge.models import attributes  # noqa: F401  (registers attribute_net)

__all__ = ["InputSpec", "ModelSpec", "create_model", "get_spec", "list_models", "register_model"]
