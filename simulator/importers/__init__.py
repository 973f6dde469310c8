"""Network builders of `python -m simulator import`, one module per model family.

Each builder turns one config (`simulator.importer.Config`) into a `Part`: the blocks and ops of the built-in model
files of that class, with every dimension taken from the config. `pipelines.py` assembles a diffusers pipeline
(model_index.json) from its components as the pipeline runs them.
"""
