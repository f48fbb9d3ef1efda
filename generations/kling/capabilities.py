"""What each Kling text-to-video model accepts, from the contract doc.

The form (browser and server) and the submit step read this one table, so the studio never
offers a combination that CometAPI would refuse with code 1201.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelCaps:
    label: str
    modes: tuple[str, ...]  # empty: the model has no std/pro split, so `mode` is not sent
    durations: tuple[str, ...] = ("5", "10")
    cfg_scale: bool = True  # the kling-v2.x models ignore or refuse cfg_scale


MODELS: dict[str, ModelCaps] = {
    "kling-v1": ModelCaps("Kling 1.0", ("std", "pro")),
    "kling-v1-6": ModelCaps("Kling 1.6", ("std", "pro")),
    "kling-v2-master": ModelCaps("Kling 2.0 Master", (), cfg_scale=False),
    "kling-v2-1-master": ModelCaps("Kling 2.1 Master", (), cfg_scale=False),
    "kling-v2-5-turbo": ModelCaps("Kling 2.5 Turbo", ("std", "pro"), cfg_scale=False),
    "kling-v2-6": ModelCaps("Kling 2.6", ("std", "pro"), cfg_scale=False),
    "kling-v3": ModelCaps("Kling 3.0", ("std", "pro"), cfg_scale=False),
}
# A current model, cheap enough to try things with (kling-v1 is the oldest).
DEFAULT_MODEL = "kling-v2-5-turbo"
# The one vocabulary for modes: cards, the detail page, filters, the price list and admin.
MODE_NAMES = {"std": "Standard", "pro": "Professional"}
MODE_LABELS = {"std": "Standard (faster)", "pro": "Professional (higher quality)"}
DURATIONS = {"5": "5 s", "10": "10 s"}
ASPECT_RATIOS = {"16:9": "Landscape 16:9", "9:16": "Portrait 9:16", "1:1": "Square 1:1"}
CAMERA_PRESETS = {
    "down_back": "Down and back",
    "forward_up": "Forward and up",
    "right_turn_forward": "Turn right, forward",
    "left_turn_forward": "Turn left, forward",
}
CAMERA_AXES = ("horizontal", "vertical", "pan", "tilt", "roll", "zoom")

PROMPT_MAX = 500  # CometAPI's documented limit (Kling's own is 2500)
BATCH_MAX = 20  # prompts in one batch submit, one per line
VARIATIONS_MAX = 4  # jobs of the same prompt and parameters in one submit
NEGATIVE_PROMPT_MAX = 200


# Kling: "camera_control is only supported in std mode with 5s duration and kling-v1".
CAMERA_COMBO = {"model_name": "kling-v1", "mode": "std", "duration": "5"}


def camera_control_allowed(model_name: str, mode: str, duration: str) -> bool:
    return (model_name, mode, duration) == tuple(CAMERA_COMBO.values())


# Shapes the form draws for each aspect ratio (CSS class suffix), widest first.
ASPECT_SHAPES = {"16:9": "wide", "9:16": "tall", "1:1": "square"}


def matrix() -> dict:
    """The whole table as plain data, for the browser (`json_script`): what each model
    offers, and the one combination that takes camera control."""
    return {
        "models": {
            name: {
                "label": m.label,
                "modes": list(m.modes),
                "durations": list(m.durations),
                "cfg_scale": m.cfg_scale,
            }
            for name, m in MODELS.items()
        },
        "camera": CAMERA_COMBO,
    }


def model_label(model_name: str) -> str:
    model = MODELS.get(model_name)
    return model.label if model else model_name


def mode_name(mode: str) -> str:
    return MODE_NAMES.get(mode, mode)


def choice_label(model_name: str, mode: str) -> str:
    """ "Kling 3.0 · Standard", or "Kling 2.0 Master" for a model without modes."""
    label = model_label(model_name)
    return f"{label} · {mode_name(mode)}" if mode else label


def price_key(model_name: str, mode: str, duration: str) -> str:
    """How the browser looks up a price: mode is empty for models without a std/pro split."""
    model = MODELS.get(model_name)
    if model is not None and not model.modes:
        mode = ""
    return f"{model_name}|{mode}|{duration}"
