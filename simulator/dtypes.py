"""Data types: storage size, and which ones a matrix/vector unit can be rated for."""

BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int32": 4, "int64": 8, "bool": 1}

# Types a model can compute in (`--set dtype=...`); tf32 stores fp32 but multiplies in tf32 on matrix units.
COMPUTE = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
