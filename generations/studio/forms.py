from dataclasses import dataclass
from decimal import Decimal

from django import forms

from ..governance import costs
from ..kling import capabilities as caps
from ..models import Generation, Visibility
from ..validators import VisibleTextValidator

CAMERA_CHOICES = [("auto", "Automatic"), *caps.CAMERA_PRESETS.items(), ("simple", "Simple move")]
CFG_DEFAULT = 0.5


class RangeInput(forms.NumberInput):
    input_type = "range"


@dataclass(frozen=True)
class Estimate:
    """The price of one choice of model × mode × duration, or None when none is on file."""

    usd: Decimal
    units: Decimal | None
    confirmed: bool = True

    @property
    def label(self) -> str:
        text = format_estimate(self.usd, self.units)
        return text if self.confirmed else f"{text} (price not yet confirmed)"


def format_estimate(usd: Decimal, units: Decimal | None) -> str:
    text = costs.usd(usd, exact=True)
    if units is not None:
        n = units.normalize()
        text += f" · {n:f} unit{'' if n == 1 else 's'}"
    return text


def price_table() -> dict[str, Estimate]:
    """Every price on file, keyed as `capabilities.price_key`: one query."""
    return {key: Estimate(p.usd, p.units, p.confirmed) for key, p in costs.price_table().items()}


def price_labels(prices: dict[str, Estimate]) -> dict[str, str]:
    """The same, as text for the browser's estimate (json_script)."""
    return {key: est.label for key, est in prices.items()}


class GenerationForm(forms.Form):
    """The studio's prompt form. Field names follow the API; the capability matrix is
    enforced here as well as in the browser, so a refused combination never reaches CometAPI."""

    prompt = forms.CharField(
        # A batch holds up to BATCH_MAX prompts; clean() holds each one to PROMPT_MAX.
        max_length=(caps.PROMPT_MAX + 1) * caps.BATCH_MAX,
        validators=[VisibleTextValidator("The prompt")],
        widget=forms.Textarea(
            attrs={
                "rows": 4,
                "placeholder": "A red fox runs through fresh snow at dawn, cinematic",
                "aria-describedby": "prompt-count",
                "data-counter": "prompt-count",
            }
        ),
        error_messages={
            "required": "Describe the video you want.",
            "max_length": f"A batch holds up to {caps.BATCH_MAX} prompts of "
            f"{caps.PROMPT_MAX} characters.",
        },
    )
    batch = forms.BooleanField(
        label=f"One prompt per line (a batch of up to {caps.BATCH_MAX})",
        required=False,
    )
    variations = forms.TypedChoiceField(
        label="Variations",
        coerce=int,
        choices=[(n, str(n)) for n in range(1, caps.VARIATIONS_MAX + 1)],
        initial=1,
        required=False,
        empty_value=1,
        widget=forms.RadioSelect,
        help_text="Jobs of the same prompt and settings, each its own clip.",
    )
    negative_prompt = forms.CharField(
        label="Negative prompt",
        required=False,
        max_length=caps.NEGATIVE_PROMPT_MAX,
        validators=[VisibleTextValidator("The negative prompt")],
        widget=forms.Textarea(
            attrs={
                "rows": 2,
                "placeholder": "blurry, text, watermark",
                "aria-describedby": "negative-count",
                "data-counter": "negative-count",
            }
        ),
        error_messages={
            "max_length": f"Keep it to {caps.NEGATIVE_PROMPT_MAX} characters or fewer."
        },
    )
    model_name = forms.ChoiceField(
        label="Model",
        choices=[(k, v.label) for k, v in caps.MODELS.items()],
        initial=caps.DEFAULT_MODEL,
    )
    mode = forms.ChoiceField(
        label="Mode",
        choices=list(caps.MODE_LABELS.items()),
        initial="std",
        required=False,
        widget=forms.RadioSelect,
    )
    duration = forms.ChoiceField(
        label="Duration",
        choices=list(caps.DURATIONS.items()),
        initial="5",
        widget=forms.RadioSelect,
    )
    aspect_ratio = forms.ChoiceField(
        label="Aspect ratio",
        choices=list(caps.ASPECT_RATIOS.items()),
        initial="16:9",
        widget=forms.RadioSelect,
    )
    cfg_scale = forms.FloatField(
        label="CFG scale",
        required=False,
        min_value=0.0,
        max_value=1.0,
        initial=CFG_DEFAULT,
        widget=RangeInput(attrs={"step": "0.05", "aria-describedby": "cfg-help"}),
        error_messages={"invalid": "Use a number from 0 to 1."},
    )
    camera = forms.ChoiceField(
        label="Camera",
        choices=CAMERA_CHOICES,
        initial="auto",
        required=False,
        widget=forms.RadioSelect,
    )
    camera_axis = forms.ChoiceField(
        label="Axis",
        choices=[(a, a.capitalize()) for a in caps.CAMERA_AXES],
        required=False,
        initial="zoom",
    )
    camera_value = forms.FloatField(
        label="Amount (−10 to 10)",
        required=False,
        min_value=-10,
        max_value=10,
        widget=forms.NumberInput(attrs={"step": "0.5"}),
    )
    visibility = forms.ChoiceField(
        label="Who can see it",
        choices=Visibility.choices,
        initial=Visibility.TEAM,
        widget=forms.RadioSelect,
    )

    @staticmethod
    def initial_from(gen: Generation) -> dict:
        """The form's values for a remix (or an edit-and-retry) of `gen`."""
        initial = {
            "prompt": gen.prompt,
            "negative_prompt": gen.negative_prompt,
            "model_name": gen.model_name,
            "mode": gen.mode or "std",
            "duration": gen.duration,
            "aspect_ratio": gen.aspect_ratio,
            "cfg_scale": CFG_DEFAULT if gen.cfg_scale is None else gen.cfg_scale,
            "camera": "auto",
            "visibility": gen.visibility,
        }
        control = gen.camera_control or {}
        if control.get("type") == "simple":
            axis, value = next(
                ((a, v) for a, v in (control.get("config") or {}).items() if v), ("zoom", None)
            )
            initial.update(camera="simple", camera_axis=axis, camera_value=value)
        elif control.get("type") in caps.CAMERA_PRESETS:
            initial["camera"] = control["type"]
        return initial

    def current(self, name: str) -> str:
        """A field's value as the member last saw it: submitted data, else the initial."""
        if self.is_bound:
            return str(self.data.get(name, "") or "")
        value = self.initial.get(name, self.fields[name].initial)
        return "" if value is None else str(value)

    def estimate(self, prices: dict[str, Estimate]) -> Estimate | None:
        key = caps.price_key(
            self.current("model_name"), self.current("mode"), self.current("duration")
        )
        return prices.get(key)

    def shows_advanced(self) -> bool:
        """Open the "more options" section when it holds an error or a non-default value."""
        fields = ("negative_prompt", "cfg_scale", "camera", "camera_axis", "camera_value")
        if any(self[f].errors for f in fields):
            return True
        if self.current("negative_prompt") or self.current("camera") not in ("", "auto"):
            return True
        try:
            return float(self.current("cfg_scale") or CFG_DEFAULT) != CFG_DEFAULT
        except ValueError:
            return True

    def full_clean(self) -> None:
        super().full_clean()
        # Screen readers read a field's error with the field (the template gives it this id).
        for name in self.errors:
            if name in self.fields:
                attrs = self.fields[name].widget.attrs
                attrs["aria-describedby"] = (
                    f"{attrs.get('aria-describedby', '')} {name}-error".strip()
                )

    def clean_prompt(self) -> str:
        prompt = self.cleaned_data["prompt"].strip()
        if not prompt:
            raise forms.ValidationError("Describe the video you want.")
        if not self.data.get("batch") and len(prompt) > caps.PROMPT_MAX:
            raise forms.ValidationError(
                f"Keep the prompt to {caps.PROMPT_MAX} characters or fewer (it has {len(prompt)})."
            )
        return prompt

    def prompts(self) -> list[str]:
        """The prompts of this submit: the one prompt, or a batch's non-empty lines."""
        prompt = self.cleaned_data.get("prompt", "")
        if not self.cleaned_data.get("batch"):
            return [prompt]
        return [line.strip() for line in prompt.splitlines() if line.strip()]

    def _check_batch(self) -> None:
        """Every bad line named, so one fix-up makes the whole batch go; nothing is created
        while any line is bad."""
        if not self.cleaned_data.get("batch") or "prompt" not in self.cleaned_data:
            return
        lines = self.prompts()
        problems = [
            f"Line {i}: keep it to {caps.PROMPT_MAX} characters (it has {len(line)})."
            for i, line in enumerate(lines, start=1)
            if len(line) > caps.PROMPT_MAX
        ]
        if len(lines) > caps.BATCH_MAX:
            problems.insert(
                0, f"A batch holds up to {caps.BATCH_MAX} prompts; this one has {len(lines)}."
            )
        for problem in problems:
            self.add_error("prompt", problem)

    def job_count(self) -> int:
        """How many jobs this submit makes, for the estimate (as the member last saw it)."""
        try:
            variations = max(1, min(caps.VARIATIONS_MAX, int(self.current("variations") or 1)))
        except ValueError:
            variations = 1
        if self.current("batch") in ("", "False", "false", "0"):
            return variations
        lines = [line for line in self.current("prompt").splitlines() if line.strip()]
        return variations * max(1, min(caps.BATCH_MAX, len(lines)))

    def jobs(self) -> list[dict]:
        """The create parameters of every job of this submit, for lifecycle.create_generations:
        each prompt, each variation in a row."""
        params = self.generation_params()
        return [
            params | {"prompt": prompt}
            for prompt in self.prompts()
            for _ in range(self.cleaned_data["variations"])
        ]

    def clean(self) -> dict:
        data = super().clean()
        self._check_batch()
        model = caps.MODELS.get(data.get("model_name", ""))
        if model is None:
            return data
        mode = data.get("mode") or ""
        if model.modes and mode not in model.modes:
            offered = " or ".join(caps.MODE_NAMES[m] for m in model.modes)
            self.add_error("mode", f"{model.label} needs a mode: {offered}.")
        if not model.modes:
            mode = data["mode"] = ""
        if data.get("duration") and data["duration"] not in model.durations:
            self.add_error("duration", f"{model.label} makes {', '.join(model.durations)} s clips.")
        if not model.cfg_scale:
            data["cfg_scale"] = None
        camera = data.get("camera") or "auto"
        data["camera_control"] = None
        if camera != "auto":
            if not caps.camera_control_allowed(data["model_name"], mode, data.get("duration", "")):
                self.add_error(
                    "camera", "Camera control needs Kling 1.0, Standard mode and 5 s clips."
                )
            elif camera == "simple":
                axis, value = data.get("camera_axis"), data.get("camera_value")
                if not axis or not value:
                    self.add_error(
                        "camera_value", "Choose an axis and a non-zero amount (−10 to 10)."
                    )
                else:
                    config = dict.fromkeys(caps.CAMERA_AXES, 0)
                    config[axis] = value
                    data["camera_control"] = {"type": "simple", "config": config}
            else:
                data["camera_control"] = {"type": camera}
        return data

    def generation_params(self) -> dict:
        d = self.cleaned_data
        return {
            "prompt": d["prompt"],
            "negative_prompt": d.get("negative_prompt", ""),
            "model_name": d["model_name"],
            "mode": d.get("mode", ""),
            "duration": d["duration"],
            "aspect_ratio": d["aspect_ratio"],
            "cfg_scale": d.get("cfg_scale"),
            "camera_control": d.get("camera_control"),
            "visibility": d["visibility"],
        }
