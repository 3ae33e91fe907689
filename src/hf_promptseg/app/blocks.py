"""The Gradio app: four tabs over the library code in this package (`prompt`, `everything`, `prompt_free`,
`in_context`), with thin event handlers that tests can call without a browser.

Example:

```python
from hf_promptseg.app.blocks import AppModels, build_app

app = build_app(AppModels.load())  # the embedded demo SAM; adapter tab disabled; random-weight DINOv, labelled
# app.launch(server_name="127.0.0.1")  # blocks; `hf-promptseg app` does this
```
"""

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hf_promptseg.app import everything, in_context, prompt, prompt_free
from hf_promptseg.app.exports import write_mask_files
from hf_promptseg.app.uploads import MAX_PIXELS, load_upload
from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter


@dataclass
class AppModels:
    """The models behind the tabs: a SAM for prompts and Everything, optional prompt-free and in-context models."""

    sam: PromptedSegmenter
    sam_name: str
    adapter: object | None = None
    adapter_name: str | None = None
    dinov: object | None = None
    dinov_name: str | None = None
    everything_thresholds: dict = field(
        default_factory=lambda: {"pred_iou_thresh": 0.88, "stability_score_thresh": 0.95}
    )
    max_pixels: int = MAX_PIXELS

    @classmethod
    def load(cls, sam: str | os.PathLike | None = None, adapter: str | os.PathLike | None = None,
             dinov: str | os.PathLike | None = None, device: str = "cpu", max_pixels: int = MAX_PIXELS,
             encoder_backend: str = "default") -> "AppModels":  # fmt: skip
        """Load the models: `sam` defaults to the embedded demo SAM; without `adapter` the Prompt-free tab is
        disabled (with a message); `dinov` defaults to the embedded demo DINOv."""
        from hf_promptseg.assets import DEMO_SAM_MASK_GENERATION_THRESHOLDS, demo_dinov_path, demo_sam_path

        thresholds = {"pred_iou_thresh": 0.88, "stability_score_thresh": 0.95}
        if sam is None:
            sam, thresholds = demo_sam_path(), dict(DEMO_SAM_MASK_GENERATION_THRESHOLDS)
        return cls(
            sam=PromptedSegmenter(sam, device=device, encoder_backend=encoder_backend),
            sam_name=str(sam),
            adapter=None if adapter is None else prompt_free.load_prompt_free(adapter),
            adapter_name=None if adapter is None else str(adapter),
            dinov=in_context.load_in_context(demo_dinov_path() if dinov is None else dinov),
            dinov_name="the embedded demo DINOv (procedural shapes, 64² input)" if dinov is None else str(dinov),
            everything_thresholds=thresholds,
            max_pixels=max_pixels,
        )


def _user_error(err: Exception):
    import gradio as gr

    return gr.Error(str(err))


class Handlers:
    """The event handlers, as plain methods (Gradio calls them; so do the unit tests)."""

    def __init__(self, models: AppModels, output_dir: str | os.PathLike | None = None) -> None:
        self.models = models
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="hf-promptseg-app-"))

    def _image(self, upload, argument: str = "image") -> np.ndarray:
        try:
            return load_upload(upload, argument, max_pixels=self.models.max_pixels)
        except (ValueError, TypeError) as err:
            raise _user_error(err) from None

    # Prompt tab
    def prompt_upload(self, upload, progress=None):
        image = self._image(upload)
        start = time.perf_counter()
        if progress is not None:
            progress(0.1, desc="computing the image embedding")
        encoded = self.models.sam.set_image(image)
        seconds = time.perf_counter() - start
        message = f"image {image.shape[1]}×{image.shape[0]}: " + (
            f"embedding computed in {seconds:.2f} s — click on the object" if encoded else "embedding reused"
        )
        return image, prompt.PromptState(), prompt.render(image, prompt.PromptState(), None), [], None, message

    def _prompt_outputs(self, image, state):
        if image is None:
            raise _user_error(ValueError("no image: upload a PNG or JPEG first"))
        start = time.perf_counter()
        try:
            result = prompt.predict_masks(self.models.sam, image, state)
        except ValueError as err:
            raise _user_error(err) from None
        milliseconds = (time.perf_counter() - start) * 1e3
        view = prompt.render(image, state, result)
        if result is None:
            note = "first box corner set: click the opposite corner" if state.corner is not None else "no prompt"
            return state, view, [], None, note
        files = write_mask_files(result.mask, self.output_dir / f"{time.time_ns()}")
        note = (f"{len(result.masks)} candidate(s); shown: {result.chosen + 1} (predicted IoU "
                f"{result.iou_scores[result.chosen]:.3f}); {int(result.mask.sum())} pixels; {milliseconds:.0f} ms")  # fmt: skip
        if state.corner is not None:
            note += " — first box corner set: click the opposite corner"
        return state, view, prompt.candidate_gallery(image, result), list(files), note

    def prompt_click(self, image, state, mode, x: float, y: float):
        try:
            state = prompt.add_click(state, x, y, mode)
        except ValueError as err:
            raise _user_error(err) from None
        return self._prompt_outputs(image, state)

    def prompt_pick(self, image, state, index: int):
        return self._prompt_outputs(image, prompt.pick_candidate(state, index))

    def prompt_undo(self, image, state):
        return self._prompt_outputs(image, prompt.undo(state))

    def prompt_clear(self, image, state):
        return self._prompt_outputs(image, prompt.PromptState())

    # Everything tab
    def everything_generate(self, upload, cache, points_per_side, pred_iou, stability, nms, progress=None):
        image = self._image(upload)
        key = (self.models.sam.image_size, int(points_per_side), hash(image.tobytes()))
        if cache is None or cache[0] != key:
            start = time.perf_counter()
            report = None if progress is None else (lambda f: progress(f, desc="decoding the point grid"))
            candidates = everything.compute_candidates(self.models.sam, image, int(points_per_side), progress=report)
            cache = (key, image, candidates, time.perf_counter() - start)
        return (cache, *self.everything_filter(cache, pred_iou, stability, nms))

    def everything_filter(self, cache, pred_iou, stability, nms):
        if cache is None:
            return None, "upload an image and press Generate"
        _, image, candidates, seconds = cache
        start = time.perf_counter()
        masks = everything.filter_candidates(candidates, float(pred_iou), float(stability), float(nms))
        from hf_promptseg.utils.overlays import overlay

        view = overlay(image, masks)
        note = (f"{len(masks)} masks of {len(candidates.rles)} candidates (decoded once in {seconds:.1f} s; "
                f"this filter {1e3 * (time.perf_counter() - start):.0f} ms)")  # fmt: skip
        return view, note

    # Prompt-free tab
    def prompt_free_run(self, upload, threshold):
        if self.models.adapter is None:
            raise _user_error(ValueError("no SAM-Adapter model: start the app with --adapter DIR_OR_REPO"))
        image = self._image(upload)
        grey, view, mask = prompt_free.probability_and_mask(self.models.adapter, image, float(threshold))
        return grey, view, f"{int(mask.sum())} foreground pixels at threshold {float(threshold):.2f}"

    # In-context tab
    def reference_upload(self, upload):
        image = self._image(upload, "reference image")
        return image, [], image, "reference set: draw a prompt on it (click)"

    def reference_click(self, reference, clicks, kind, x: float, y: float):
        if reference is None:
            raise _user_error(ValueError("no reference image: upload one first"))
        clicks = [*clicks, (float(x), float(y))]
        if kind in ("box", "point", "mask"):
            clicks = clicks[-(2 if kind == "box" else 1) :]
        return clicks, self._reference_view(reference, clicks, kind), f"{kind} prompt: {len(clicks)} click(s)"

    def _reference_prompts(self, reference, clicks, kind):
        box = None
        if kind == "box" and len(clicks) == 2:
            (x0, y0), (x1, y1) = clicks
            box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        mask = None
        if kind == "mask" and clicks:  # a click becomes a mask through the SAM of the Prompt tab
            self.models.sam.set_image(reference)
            prediction = self.models.sam.predict(points=[clicks[0]], labels=[1])
            mask = prediction.masks[int(np.argmax(prediction.iou_scores))]
        return in_context.visual_prompts(kind, box=box, points=clicks, mask=mask)

    def _reference_view(self, reference, clicks, kind):
        from hf_promptseg.utils.overlays import overlay

        try:
            prompts = self._reference_prompts(reference, clicks, kind)
        except ValueError:
            return overlay(reference, [], points=clicks)
        from hf_promptseg.models.dinov.processing_dinov import rasterize_prompts

        drawn = rasterize_prompts(prompts, *reference.shape[:2])
        return overlay(reference, list(drawn), points=clicks)

    def target_upload(self, upload):
        target = self._image(upload, "target image")
        return target, "target set: press Find matches"

    def in_context_run(self, reference, clicks, kind, target_upload):
        if reference is None:
            raise _user_error(ValueError("no reference image: upload one first"))
        target = self._image(target_upload, "target image")
        try:
            prompts = self._reference_prompts(reference, clicks, kind)
        except ValueError as err:
            raise _user_error(err) from None
        try:
            view, matches = in_context.match(self.models.dinov, reference, prompts, target)
        except ValueError as err:
            raise _user_error(err) from None
        scores = ", ".join(f"{score:.2f}" for _, score in matches) or "none"
        return view, f"{len(matches)} match(es) in the target; scores {scores}"


def build_app(models: AppModels, output_dir: str | os.PathLike | None = None):
    """The `gr.Blocks` app (not launched). Gradio's usage analytics are off unless the user turned them on."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    handlers = Handlers(models, output_dir)
    thresholds = models.everything_thresholds
    with gr.Blocks(title="hf_promptseg") as app:
        gr.Markdown(f"# hf_promptseg — interactive segmentation\nSAM: `{models.sam_name}`")
        with gr.Tab("Prompt", elem_id="tab-prompt"):
            image_state, prompt_state = gr.State(None), gr.State(prompt.PromptState())
            with gr.Row():
                with gr.Column():
                    upload = gr.Image(
                        label="Upload an image", type="filepath", sources=["upload"], elem_id="prompt-upload"
                    )
                    mode = gr.Radio(list(prompt.MODES), value="positive", label="A click adds", elem_id="prompt-mode")
                    with gr.Row():
                        undo = gr.Button("Undo", elem_id="prompt-undo")
                        clear = gr.Button("Clear", elem_id="prompt-clear")
                    files = gr.File(
                        label="Download the mask (PNG, COCO RLE)", file_count="multiple", elem_id="prompt-files"
                    )
                with gr.Column():
                    view = gr.Image(label="Click on the image", type="pil", interactive=False, elem_id="prompt-view")
                    status = gr.Markdown("upload an image", elem_id="prompt-status")
                    gallery = gr.Gallery(
                        label="Candidates (click one to show it)", columns=3, elem_id="prompt-candidates"
                    )
            outputs = [prompt_state, view, gallery, files, status]
            upload.upload(lambda u, progress=gr.Progress(): handlers.prompt_upload(u, progress), upload,  # noqa: B008
                          [image_state, prompt_state, view, gallery, files, status])  # fmt: skip

            def click(image, state, chosen_mode, evt: gr.SelectData):
                x, y = evt.index
                return handlers.prompt_click(image, state, chosen_mode, x, y)

            view.select(click, [image_state, prompt_state, mode], outputs)

            def pick(image, state, evt: gr.SelectData):
                return handlers.prompt_pick(image, state, evt.index)

            gallery.select(pick, [image_state, prompt_state], outputs)
            undo.click(handlers.prompt_undo, [image_state, prompt_state], outputs)
            clear.click(handlers.prompt_clear, [image_state, prompt_state], outputs)

        with gr.Tab("Everything", elem_id="tab-everything"):
            cache = gr.State(None)
            with gr.Row():
                with gr.Column():
                    e_upload = gr.Image(
                        label="Upload an image", type="filepath", sources=["upload"], elem_id="everything-upload"
                    )
                    side = gr.Slider(4, 32, value=16, step=1, label="points per side (changing it re-decodes)")
                    iou = gr.Slider(
                        0, 1, value=thresholds["pred_iou_thresh"], step=0.01, label="predicted IoU threshold"
                    )
                    stab = gr.Slider(
                        0, 1, value=thresholds["stability_score_thresh"], step=0.01, label="stability score threshold"
                    )
                    nms = gr.Slider(0, 1, value=0.7, step=0.01, label="box NMS IoU")
                    generate = gr.Button("Generate", variant="primary", elem_id="everything-generate")
                with gr.Column():
                    e_view = gr.Image(label="Masks", type="pil", interactive=False, elem_id="everything-view")
                    e_status = gr.Markdown(elem_id="everything-status")
            generate.click(lambda u, c, s, a, b, n, progress=gr.Progress(): handlers.everything_generate(u, c, s, a, b, n, progress),  # noqa: B008
                           [e_upload, cache, side, iou, stab, nms], [cache, e_view, e_status])  # fmt: skip
            for slider in (iou, stab, nms):
                slider.release(handlers.everything_filter, [cache, iou, stab, nms], [e_view, e_status])

        with gr.Tab("Prompt-free", elem_id="tab-prompt-free"):
            if models.adapter is None:
                gr.Markdown("**Disabled:** no SAM-Adapter model (none ships with hf_promptseg). Start the app with "
                            "`hf-promptseg app --adapter DIR_OR_REPO`.", elem_id="prompt-free-disabled")  # fmt: skip
            else:
                gr.Markdown(f"SAM-Adapter: `{models.adapter_name}`")
                with gr.Row():
                    with gr.Column():
                        f_upload = gr.Image(
                            label="Upload an image", type="filepath", sources=["upload"], elem_id="prompt-free-upload"
                        )
                        threshold = gr.Slider(0, 1, value=0.5, step=0.01, label="probability threshold")
                    with gr.Column():
                        probability = gr.Image(label="Foreground probability", type="pil", interactive=False)
                        f_view = gr.Image(label="Mask", type="pil", interactive=False, elem_id="prompt-free-view")
                        f_status = gr.Markdown()
                for event in (f_upload.upload, threshold.release):
                    event(handlers.prompt_free_run, [f_upload, threshold], [probability, f_view, f_status])

        with gr.Tab("In-context", elem_id="tab-in-context"):
            gr.Markdown(f"In-context model: {models.dinov_name}", elem_id="in-context-notice")
            reference_state, clicks_state = gr.State(None), gr.State([])
            with gr.Row():
                with gr.Column():
                    r_upload = gr.Image(
                        label="Reference image", type="filepath", sources=["upload"], elem_id="reference-upload"
                    )
                    kind = gr.Radio(
                        ["mask", "box", "point", "scribble"],
                        value="mask",
                        label="Prompt kind (mask: click the object, SAM outlines it)",
                        elem_id="reference-kind",
                    )
                    r_view = gr.Image(
                        label="Draw the prompt (click)", type="pil", interactive=False, elem_id="reference-view"
                    )
                with gr.Column():
                    t_upload = gr.Image(
                        label="Target image", type="filepath", sources=["upload"], elem_id="target-upload"
                    )
                    run = gr.Button("Find matches", variant="primary", elem_id="in-context-run")
                    t_view = gr.Image(label="Matches", type="pil", interactive=False, elem_id="in-context-view")
                    t_status = gr.Markdown(elem_id="in-context-status")
            r_upload.upload(handlers.reference_upload, r_upload, [reference_state, clicks_state, r_view, t_status])
            t_upload.upload(handlers.target_upload, t_upload, [t_view, t_status])

            def reference_click(reference, clicks, chosen_kind, evt: gr.SelectData):
                x, y = evt.index
                return handlers.reference_click(reference, clicks, chosen_kind, x, y)

            r_view.select(reference_click, [reference_state, clicks_state, kind], [clicks_state, r_view, t_status])
            kind.change(lambda r: ([], r, "prompt cleared"), reference_state, [clicks_state, r_view, t_status])
            run.click(handlers.in_context_run, [reference_state, clicks_state, kind, t_upload], [t_view, t_status])
    return app


def launch_app(app, host: str = "127.0.0.1", port: int | None = None, share: bool = False, block: bool = True,
               max_file_size: str = "25mb"):  # fmt: skip
    """Serve `app` on `host` (loopback by default; a public share link only with `share=True`)."""
    app.queue(default_concurrency_limit=1)
    return app.launch(server_name=host, server_port=port, share=share, max_file_size=max_file_size,
                      prevent_thread_lock=not block, inbrowser=False, show_error=True)  # fmt: skip


__all__ = ["AppModels", "Handlers", "build_app", "launch_app"]
