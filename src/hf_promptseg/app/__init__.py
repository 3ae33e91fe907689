"""`hf-promptseg app`: an interactive Gradio front end (Prompt, Everything, Prompt-free, In-context tabs).

Gradio is an optional extra (`pip install "hf-promptseg[app]"`); only `blocks.build_app` imports it. The tab logic
(`prompt`, `everything`, `prompt_free`, `in_context`) and the upload checks are plain Python.
"""
