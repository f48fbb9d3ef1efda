"""One way to make a generation row in tests: the defaults of the studio form (kling-v1,
std, 5 s, 16:9, cfg 0.5), any field overridden by keyword."""

from generations.models import Generation

DEFAULTS = {
    "prompt": "a cat",
    "model_name": "kling-v1",
    "mode": "std",
    "duration": "5",
    "aspect_ratio": "16:9",
    "cfg_scale": 0.5,
}


def make_generation(owner, **fields) -> Generation:
    return Generation.objects.create(owner=owner, **(DEFAULTS | fields))
