"""The CLIP judge (Radford et al. 2021, via ``open_clip``): the automatic test-taker of Casper et al. (2023), for
real images.

Casper et al. gave CLIP the options' names. Here each window of an image (:mod:`.embedding`) is compared with
pictures of each option, in CLIP's image embedding, exactly as the appearance judge does, and, where an option
has a name (a built-in concept; a user's trigger image has none), also with that name in a prompt of the
trigger's kind, beyond a prompt that names nothing. A named option's evidence is the mean of the two; the image's
logit is its best window's evidence times CLIP's own logit scale.

The network is an ``open_clip`` architecture (``model``: a name ``open_clip.list_models()`` knows, e.g.
``ViT-B-32``, or the path of a JSON model config) with ``weights`` from a local ``.safetensors`` file of its
state dict (e.g. the ``open_clip_model.safetensors`` of a LAION model). It never downloads anything; text towers
that would fetch a Hugging Face model are refused.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import torch

from ..errors import ConfigError, did_you_mean, require_extra
from ..registry import register_judge
from .embedding import EmbeddingJudge
from .questions import Question

BANK_VIEWS = 16
"""Pictures per option in context in a bank (fewer than the zoo embedder's 48: each costs a CLIP forward)."""
PROMPTS = {
    "patch": ("a photo with a {} sticker on it", "a {} icon"),
    "style": ("a photo in the style of {}", "an image with a {} texture"),
    "natural": ("a photo of a {}", "a photo that contains a {}"),
}
"""Prompts naming an option, per trigger kind."""
NOTHING_PROMPTS = ("a photo", "an image")
"""Prompts that name nothing: the text evidence for an option is beyond these."""
MAX_LOGIT_SCALE = 100.0
"""CLIP clamps its learned logit scale here in training."""


@register_judge
class ClipJudge(EmbeddingJudge):
    name = "clip"
    description = "CLIP's similarity of each window to the options' pictures and names, beyond 'nothing' (open_clip)"
    bank_name = "clip"
    bank_views = BANK_VIEWS

    def __init__(self, weights: str | None = None, model: str = "ViT-B-32"):
        self.weights, self.model = weights, model

    @property
    def settings(self) -> dict:
        return {"weights": self.weights, "model": self.model}

    def check(self) -> None:
        self.network

    @functools.cached_property
    def network(self) -> torch.nn.Module:
        """The CLIP model with its weights, in eval mode, without gradients."""
        open_clip = require_extra("open_clip", "clip", "The clip judge")
        if self.weights is None:
            raise ConfigError("The clip judge needs CLIP weights from a local file: --clip-weights FILE (a "
                              ".safetensors open_clip state dict, e.g. a LAION model's open_clip_model.safetensors); "
                              "it never downloads them.")
        from ..models.checkpoint import load_state_dict_file, load_weights

        path = Path(self.weights).expanduser()
        state_dict = load_state_dict_file(path)  # refuses a pickle (with the conversion) or a missing file
        logging.disable(logging.WARNING)  # open_clip warns on the root logger that it loaded no weights: we do
        try:
            network = open_clip.create_model(self.architecture, pretrained=None, pretrained_text=False,
                                             load_weights=False)
        finally:
            logging.disable(logging.NOTSET)
        load_weights(network, state_dict, source=str(path))
        return network.eval().requires_grad_(False)

    @functools.cached_property
    def architecture(self) -> str:
        """The open_clip model name of :attr:`model` (a JSON config is registered under its file's stem)."""
        open_clip = require_extra("open_clip", "clip", "The clip judge")
        if self.model.endswith(".json"):
            path = Path(self.model).expanduser()
            if not path.is_file():
                raise ConfigError(f"The clip judge's model config {self.model!r} does not exist.")
            open_clip.add_model_config(path)
            name = path.stem
        else:
            name = self.model
        if name not in open_clip.list_models():
            raise did_you_mean(name, open_clip.list_models(), "open_clip model")
        config = open_clip.get_model_config(name)
        if config.get("text_cfg", {}).get("hf_model_name") or config.get("text_cfg", {}).get("hf_tokenizer_name"):
            raise ConfigError(f"open_clip model {name!r} has a Hugging Face text tower, which would be downloaded; "
                              f"choose a model with open_clip's own text transformer (e.g. ViT-B-32).")
        return name

    @property
    def window_side(self) -> int:
        size = self.network.visual.image_size
        return int(size if isinstance(size, int) else size[-1])

    @functools.cached_property
    def _normalisation(self) -> tuple[torch.Tensor, torch.Tensor]:
        config = getattr(self.network.visual, "preprocess_cfg", {}) or {}
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        mean, std = config.get("mean", OPENAI_DATASET_MEAN), config.get("std", OPENAI_DATASET_STD)
        return torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)

    def embed(self, pictures: torch.Tensor) -> torch.Tensor:
        mean, std = self._normalisation
        return self.network.encode_image((pictures - mean) / std, normalize=True)

    def weights_identity(self) -> str:
        from ..models import file_sha256

        model = self.model
        if model.endswith(".json"):
            model = json.dumps(json.loads(Path(model).expanduser().read_text()), sort_keys=True)
        return f"{model}|{file_sha256(Path(self.weights).expanduser())}"

    def provenance(self) -> dict:
        from ..models import file_sha256

        return {"network": f"open_clip:{self.model}", "sha256": file_sha256(Path(self.weights).expanduser())}

    @functools.cached_property
    def logit_scale(self) -> float:
        return min(float(self.network.logit_scale.exp()), MAX_LOGIT_SCALE)

    @functools.cached_property
    def tokenizer(self):
        import open_clip

        return open_clip.get_tokenizer(self.architecture)

    @functools.lru_cache(maxsize=512)
    def text_embedding(self, prompts: tuple[str, ...]) -> torch.Tensor:
        """The normalised mean of the unit-norm embeddings of ``prompts``: ``[d]``."""
        tokens = self.tokenizer(list(prompts))
        with torch.no_grad():
            embedded = self.network.encode_text(tokens, normalize=True)
        return torch.nn.functional.normalize(embedded.mean(0), dim=0)

    def text_evidence(self, embedded: torch.Tensor, question: Question) -> tuple[torch.Tensor, torch.Tensor]:
        """``([n_images, n_windows, n_options] evidence, [n_options] whether the option has a name)``: each window's
        similarity to each named option's prompts beyond its similarity to :data:`NOTHING_PROMPTS`."""
        from ..config import TrojanSpec

        nothing = embedded @ self.text_embedding(NOTHING_PROMPTS)
        named = torch.tensor([not TrojanSpec(name="o", kind=question.kind, trigger=o, target=0).trigger_is_file
                              for o in question.options])
        options = torch.stack([self.text_embedding(tuple(p.format(option.replace("_", " "))
                                                         for p in PROMPTS[question.kind])) if is_named
                               else torch.zeros(embedded.shape[-1]) for option, is_named in
                               zip(question.options, named.tolist())])
        return embedded @ options.T - nothing[..., None], named

    def option_scores(self, images: torch.Tensor, question: Question) -> torch.Tensor:
        embedded = self.window_embeddings(images)
        pictures = self.picture_evidence(embedded, question)
        text, named = self.text_evidence(embedded, question)
        evidence = torch.where(named, (pictures + text) / 2, pictures)
        return evidence.amax(1) * self.logit_scale
