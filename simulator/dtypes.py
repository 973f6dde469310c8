"""Data types: storage size, and which ones a matrix/vector unit can be rated for."""

# Bytes per element. int4 and fp4 pack two elements per byte (GPTQ/AWQ int4 and NVFP4 store 4-bit codes packed;
# their per-group scales are left out: one fp16 scale per 128 weights adds 1/64 byte per element), so sizes are
# fractional: byte totals are floats wherever a 4-bit type can appear.
BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "fp4": 0.5, "int4": 0.5, "int32": 4,
         "int64": 8, "bool": 1}

# Types a model can compute in (`--set dtype=...`); tf32 stores fp32 but multiplies in tf32 on matrix units.
COMPUTE = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
# Types a hardware file may give a peak rate for: the compute types plus the 4-bit ones some matrix units run
# (B200's FP4 tensor cores, A100's INT4), read only when a model quantises to them (simulator/quantisation.py).
RATED = COMPUTE + ("fp4", "int4")
