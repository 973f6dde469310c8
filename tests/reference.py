"""Shared checks of the model files against counted reference figures (see each test module's docstring for how
its figures were obtained)."""

TOLERANCE = 0.01  # DEVELOPERS.md: within 1 % of the reference implementation


def close(ours, ref, tol=TOLERANCE):
    if ref == 0:
        assert ours == 0, f"{ours} vs reference 0"
    else:
        assert abs(ours / ref - 1) <= tol, f"{ours} vs reference {ref} ({100 * (ours / ref - 1):+.3f} %)"


def stage(model, name):
    return next(s for s in model.stages if s.name == name)


def check_model(model_id, overrides, params, flops):
    """Parameters by stage and conv / linear / attention FLOPs by stage of a built-in model (built with math
    attention, as the references were counted) against the counted figures; returns the model."""
    from simulator import load_model
    model = load_model(model_id, dict(overrides), attention="math")
    for name, count in params.items():
        close(stage(model, name).params, count)
    for name, (conv, linear, attention) in flops.items():
        s = stage(model, name)
        # a stage whose shapes change per iteration (a tiled video decoder) is one reference call in all
        iterations = range(s.repeat) if s.iteration is not None else [0]
        got = {k: sum(s.flops_by_category(iteration=i)[k] for i in iterations) for k in ("conv", "linear", "attention")}
        close(got["conv"], conv)
        close(got["linear"], linear)
        close(got["attention"], attention)
    return model


def attention_roles(st):
    return {op.role for op in st.ops if op.kind == "attention"}
