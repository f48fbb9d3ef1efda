from django import forms

from . import capabilities as caps
from .models import Visibility

CAMERA_CHOICES = [("auto", "Automatic"), *caps.CAMERA_PRESETS.items(), ("simple", "Simple move")]


class GenerationForm(forms.Form):
    """The studio's prompt form. Field names follow the API; the capability matrix is
    enforced here as well as in the browser, so a refused combination never reaches CometAPI."""

    prompt = forms.CharField(
        max_length=caps.PROMPT_MAX,
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "A red fox runs through fresh snow at dawn, cinematic"}
        ),
        error_messages={
            "required": "Describe the video you want.",
            "max_length": f"Keep the prompt to {caps.PROMPT_MAX} characters or fewer.",
        },
    )
    negative_prompt = forms.CharField(
        required=False,
        max_length=caps.NEGATIVE_PROMPT_MAX,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "blurry, text, watermark"}),
        error_messages={
            "max_length": f"Keep it to {caps.NEGATIVE_PROMPT_MAX} characters or fewer."
        },
    )
    model_name = forms.ChoiceField(
        choices=[(k, v.label) for k, v in caps.MODELS.items()], initial=caps.DEFAULT_MODEL
    )
    mode = forms.ChoiceField(choices=list(caps.MODE_LABELS.items()), initial="std", required=False)
    duration = forms.ChoiceField(choices=list(caps.DURATIONS.items()), initial="5")
    aspect_ratio = forms.ChoiceField(choices=list(caps.ASPECT_RATIOS.items()), initial="16:9")
    cfg_scale = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        initial=0.5,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        error_messages={"invalid": "Use a number from 0 to 1."},
    )
    camera = forms.ChoiceField(choices=CAMERA_CHOICES, initial="auto", required=False)
    camera_axis = forms.ChoiceField(
        choices=[(a, a.capitalize()) for a in caps.CAMERA_AXES], required=False
    )
    camera_value = forms.FloatField(required=False, min_value=-10, max_value=10)
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.TEAM)

    def clean_prompt(self) -> str:
        prompt = self.cleaned_data["prompt"].strip()
        if not prompt:
            raise forms.ValidationError("Describe the video you want.")
        return prompt

    def clean(self) -> dict:
        data = super().clean()
        model = caps.MODELS.get(data.get("model_name", ""))
        if model is None:
            return data
        mode = data.get("mode") or ""
        if model.modes and mode not in model.modes:
            self.add_error("mode", f"{model.label} offers: {', '.join(model.modes)}.")
        if not model.modes:
            data["mode"] = ""
        if data.get("duration") and data["duration"] not in model.durations:
            self.add_error("duration", f"{model.label} makes {', '.join(model.durations)} s clips.")
        if not model.cfg_scale:
            data["cfg_scale"] = None
        camera = data.get("camera") or "auto"
        data["camera_control"] = None
        if camera != "auto":
            if not caps.camera_control_allowed(data["model_name"], mode, data.get("duration", "")):
                self.add_error("camera", "Camera control needs Kling 1.0, Standard mode and 5 s.")
            elif camera == "simple":
                axis, value = data.get("camera_axis"), data.get("camera_value")
                if not axis or not value:
                    self.add_error(
                        "camera_value", "Choose an axis and a non-zero value (−10 to 10)."
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
