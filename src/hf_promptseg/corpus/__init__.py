"""SAM on one's own images at any size and number: image sources, tiled automatic mask generation, corpus runs
(sharded across processes, resumable, COCO JSON + parquet results) and prompted segmentation from prompt files.

The `hf-promptseg generate`, `segment` and `embed` commands are thin layers over this package; see
`docs/large-images-and-corpora.md`.
"""
